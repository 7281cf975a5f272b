/**
 * The VXLAN overlay across three hosts (namespaces joined by an underlay bridge), each with its own netplumbd
 * running the overlay against a real etcd, two containers each attached by netplumb-bridge through the agent
 * with the network list the agent wrote; a container that vanished without DEL is released by its host's
 * agent; and, on the same underlay and etcd, two hosts whose underlay is IPv6 only. Oracles: `ip -j
 * route/neigh/link`, `bridge -j fdb`, `nft -j`, the IPAM store's files, ping and TCP echo.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  overlayLab,
  ping,
  sandboxed,
  startEchoServer,
  tcpSend,
  waitFor,
  type AgentProcess,
  type Container,
  type EchoServer,
  type OverlayLab,
  type OverlayLabHost,
  execPlugin,
} from '../../netns-harness/index.js';
import { NETPLUMB_BIN } from '../fixtures/cni-runtime.js';
import { addOverlayContainer, assertLargestPingCrosses, assertProgrammed, expectedTables as expectedOf, tablesOf as tablesOn } from '../fixtures/overlay.js';
import { attachmentsOf } from '../fixtures/storm.js';

await sandboxed();

// Short, for the test of a host leaving; long enough that three missed keepalives (one every TTL/3) on a loaded
// slow machine do not make a living host's lease lapse (at 4 s one run with four test files at once lost two).
const TTL = 6;
const DEVICE = 'np-vx1';

interface OverlayHost extends OverlayLabHost {
  agent: AgentProcess;
  containers: Container[];
  ips: string[];
}

let lab: OverlayLab;
const hosts: OverlayHost[] = [];

const stateOf = (h: OverlayHost) => lab.state(h);
const conflistOf = (h: OverlayHost) => JSON.parse(readFileSync(join(h.stateDir, 'ovl.conflist'), 'utf8'));
const tablesOf = (h: OverlayHost) => tablesOn(h, DEVICE);
const expectedTables = (others: OverlayHost[]) => expectedOf(lab, others);
const startAgentOn = (h: OverlayHost) => lab.startAgent(h);
const overlayAdd = (h: OverlayHost, ctr: Container, id: string) => lab.add(h, ctr, id);
const addContainer = (h: OverlayHost, name: string) => addOverlayContainer(lab, h, name);

test.before(async () => {
  lab = await overlayLab({ hosts: 3, ttlSeconds: TTL, agentArgs: ['--cleanup-grace', '0.5'] });
  for (const h of lab.hosts) {
    await lab.startAgent(h);
    hosts.push(Object.assign(h, { agent: h.agent!, containers: [], ips: [] }));
  }
});

test.after(async () => {
  await lab?.destroy();
});

test('three hosts lease distinct subnets in the network and program each other', async () => {
  const subnets = hosts.map((h) => stateOf(h).subnet);
  assert.is(new Set(subnets).size, 3, subnets.join(' '));
  for (const s of subnets) assert.match(s, /^10\.244\.\d+\.0\/24$/);
  for (const h of hosts) {
    const s = stateOf(h);
    assert.is(s.mtu, 1450, 'container MTU = underlay 1500 − 50');
    assert.is(conflistOf(h).plugins[0].type, 'netplumb-overlay');
    const [dev] = await h.host.ip<any[]>('-d', 'link', 'show', DEVICE);
    assert.equal([dev.mtu, dev.linkinfo.info_data.id, dev.linkinfo.info_data.local, dev.linkinfo.info_data.learning], [1450, 1, `192.0.2.${h.n}`, false]);
    await assertProgrammed(
      lab,
      h,
      hosts.filter((o) => o !== h),
      DEVICE,
    );
  }
});

test('containers on different hosts reach each other: ping and TCP echo for every pair, ping -M do at the MTU', async () => {
  for (const h of hosts) {
    for (const c of ['a', 'b']) {
      const { ctr, ip } = await addContainer(h, `h${h.n}${c}`);
      h.containers.push(ctr);
      h.ips.push(ip);
    }
    const [eth0] = await h.containers[0]!.ip<any[]>('link', 'show', 'eth0');
    assert.is(eth0.mtu, 1450);
  }
  const all = hosts.flatMap((h) => h.containers.map((ctr, i) => ({ h, ctr, ip: h.ips[i]! })));
  const servers: EchoServer[] = [];
  try {
    for (const x of all) servers.push(await startEchoServer(x.ctr, 7000, '0.0.0.0'));
    for (const from of all) {
      for (const to of all) {
        if (from.h === to.h) continue;
        const p = await ping(from.ctr, to.ip, { count: 1, timeoutSec: 3 });
        assert.ok(p.ok, `ping ${from.ctr.name} → ${to.ctr.name} (${to.ip}): ${p.output}`);
        const t = await tcpSend(from.ctr, to.ip, 7000, `${from.ip}>${to.ip}`);
        assert.ok(t.ok, `TCP ${from.ctr.name} → ${to.ctr.name}: ${t.error}`);
      }
    }
  } finally {
    for (const s of servers) await s.stop();
  }
  // the largest ICMP payload a 1450-byte MTU carries unfragmented: 1450 − 20 (IPv4) − 8 (ICMP) = 1422
  await assertLargestPingCrosses(all[0]!.ctr, all[2]!.ip, 1450);
});

test('an IPv6-only underlay: VTEPs and FDB destinations are IPv6, containers get MTU − 70 and reach each other', async () => {
  // two more hosts on the same underlay bridge and etcd, with IPv6 addresses only, in an overlay of their own
  const DEVICE6 = 'np-vx2';
  const overlay = { network: '10.245.0.0/16', vni: 2, etcd: { prefix: '/netplumb/overlay/ovl-v6/' } };
  const v6 = [await lab.addHost({ family: 6, overlay }), await lab.addHost({ family: 6, overlay })];
  // the first names its underlay by interface, the second by address, spelt long and in capitals
  const second = JSON.parse(readFileSync(v6[1]!.configPath, 'utf8'));
  writeFileSync(v6[1]!.configPath, JSON.stringify({ ...second, underlay: v6[1]!.underlayIp.toUpperCase().replace('::', ':0:0:0:0:0:') }));
  for (const h of v6) {
    assert.equal(
      (await h.host.ip<any[]>('-4', 'addr', 'show', 'dev', 'eth0')).flatMap((l) => l.addr_info),
      [],
      'no IPv4 on the underlay',
    );
    await lab.startAgent(h);
  }
  const ends: { ctr: Container; ip: string }[] = [];
  for (const h of v6) {
    const s = lab.state(h);
    assert.equal([s.vtepIp, s.mtu], [h.underlayIp, 1430], 'the VTEP is the IPv6 address; MTU = 1500 − 70');
    assert.match(s.subnet, /^10\.245\.\d+\.0\/24$/);
    const [dev] = await h.host.ip<any[]>('-d', 'link', 'show', DEVICE6);
    assert.equal([dev.mtu, dev.linkinfo.info_data.id, dev.linkinfo.info_data.local6 ?? dev.linkinfo.info_data.local], [1430, 2, h.underlayIp]);
    // the FDB entry of the other host: its MAC to its IPv6 underlay address (bridge -j fdb)
    const t = await assertProgrammed(
      lab,
      h,
      v6.filter((o) => o !== h),
      DEVICE6,
    );
    assert.ok(
      t.fdb.every((e) => e.split(' ')[1]!.includes(':')),
      t.fdb.join(' '),
    );
    const c = await addOverlayContainer(lab, h, `h${h.n}v6`);
    const [eth0] = await c.ctr.ip<any[]>('link', 'show', 'eth0');
    assert.is(eth0.mtu, 1430);
    ends.push(c);
  }
  const [a, b] = ends as [{ ctr: Container; ip: string }, { ctr: Container; ip: string }];
  for (const [from, to] of [
    [a, b],
    [b, a],
  ] as const) {
    const p = await ping(from.ctr, to.ip, { count: 1, timeoutSec: 3 });
    assert.ok(p.ok, `ping ${from.ctr.name} → ${to.ctr.name} (${to.ip}) over IPv6: ${p.output}`);
  }
  // 1430 − 28 = 1402 bytes of payload cross; the tunnel packet is 1402 + 28 + 70 = 1500, the underlay's MTU
  await assertLargestPingCrosses(a.ctr, b.ip, 1430);
  // a host with an IPv4 underlay joins this overlay by mistake: the IPv6 hosts leave it out (and say so),
  // and it leaves them out; nothing else changes
  const stray = await lab.addHost({ overlay });
  await lab.startAgent(stray);
  for (const [h, others] of [
    [v6[0]!, [stray]],
    [v6[1]!, [stray]],
    [stray, v6],
  ] as const) {
    const ignored = await waitFor(() => others.every((o) => h.agent!.events().some((e) => e.event === 'overlay-peer-ignored' && e.node === `h${o.n}`)), {
      timeoutMs: 15_000,
    });
    assert.ok(ignored, `h${h.n} ignores ${others.map((o) => `h${o.n}`).join(' ')}:\n${h.agent!.log()}`);
  }
  for (const h of v6)
    assert.equal(
      await tablesOn(h, DEVICE6),
      expectedOf(
        lab,
        v6.filter((o) => o !== h),
      ),
      `h${h.n} kept only its IPv6 peer`,
    );
  assert.equal(await tablesOn(stray, DEVICE6), { routes: [], neigh: [], fdb: [] }, 'the stray host programmed no IPv6 peer');
  const again = await ping(a.ctr, b.ip, { count: 1, timeoutSec: 3 });
  assert.ok(again.ok, again.output);
  // the IPv4 hosts' overlay is another one: none of its tables mention the IPv6 hosts
  for (const h of hosts) assert.equal(await tablesOf(h), expectedTables(hosts.filter((o) => o !== h)));
});

test('netplumb-overlay refuses bad input before touching anything: a relative stateDir (7), an unknown overlay (11)', async () => {
  const h = hosts[0]!;
  const ctr = await h.host.createContainer('bad');
  const run = (conf: Record<string, unknown>) =>
    execPlugin({
      file: join(NETPLUMB_BIN, 'netplumb-overlay'),
      netns: h.host.netnsPath,
      stdin: JSON.stringify({ cniVersion: '1.0.0', type: 'netplumb-overlay', ...conf }),
      env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'ovl-bad', CNI_NETNS: ctr.netnsPath, CNI_IFNAME: 'eth0', NETPLUMB_AGENT_SOCKET: h.agent.socket },
    });
  const rel = await run({ name: 'ovl', stateDir: 'run/x' });
  assert.equal([rel.exitCode, rel.json.code], [1, 7], rel.stdout);
  assert.match(rel.json.msg, /stateDir/);
  const unknown = await run({ name: 'nosuch', stateDir: h.stateDir });
  assert.equal([unknown.exitCode, unknown.json.code], [1, 11], unknown.stdout);
  assert.match(unknown.json.msg, /nosuch/);
  assert.equal(
    (await ctr.ip<any[]>('link', 'show')).map((l) => l.ifname),
    ['lo'],
  );
});

test('an agent killed: traffic still flows; restarted: the same subnet and nothing doubled', async () => {
  const h = hosts[0]!;
  const before = { state: stateOf(h), tables: await tablesOf(h) };
  h.agent.process.kill('SIGKILL');
  await h.agent.exited;
  const p = await ping(hosts[1]!.containers[0]!, h.ips[0]!, { count: 1, timeoutSec: 3 });
  assert.ok(p.ok, `h2 → h1 while h1's agent is down: ${p.output}`);
  const q = await ping(h.containers[0]!, hosts[2]!.ips[0]!, { count: 1, timeoutSec: 3 });
  assert.ok(q.ok, `h1 → h3 while h1's agent is down: ${q.output}`);
  h.agent = await startAgentOn(h);
  assert.is(stateOf(h).subnet, before.state.subnet);
  // programmed again from the store (the condition itself, not the first 'overlay-programmed': on a loaded
  // machine a reconcile may run more than once)
  await waitFor(async () => JSON.stringify(await tablesOf(h)) === JSON.stringify(before.tables), { timeoutMs: 15_000 });
  assert.equal(await tablesOf(h), before.tables);
  for (const o of hosts.slice(1)) assert.equal(await tablesOf(o), expectedTables(hosts.filter((x) => x !== o)));
  const r = await ping(h.containers[1]!, hosts[1]!.ips[1]!, { count: 1, timeoutSec: 3 });
  assert.ok(r.ok, r.output);
});

test('etcd stopped: traffic continues, a new ADD fails with 11 naming etcd; started again: ADD works', async () => {
  await lab.etcd.stop();
  for (const h of hosts) {
    const told = await waitFor(() => h.agent.events().some((e) => e.event === 'overlay-store-unreachable'), { timeoutMs: 20_000 });
    assert.ok(told, `h${h.n}'s agent noticed`);
  }
  const p = await ping(hosts[0]!.containers[0]!, hosts[1]!.ips[0]!, { count: 1, timeoutSec: 3 });
  assert.ok(p.ok, p.output);
  for (const h of hosts) assert.equal(await tablesOf(h), expectedTables(hosts.filter((o) => o !== h)), 'the tables were kept');
  const h1 = hosts[0]!;
  const late = await h1.host.createContainer('late');
  const refused = await overlayAdd(h1, late, 'ovl-late');
  assert.is(refused.exitCode, 1);
  assert.is(refused.json.code, 11, refused.stdout);
  assert.match(refused.json.msg, /etcd/);
  assert.equal(
    (await late.ip<any[]>('link', 'show')).map((l) => l.ifname),
    ['lo'],
    'nothing was attached',
  );
  await lab.etcd.start();
  const ok = await waitFor(() => h1.agent.events().some((e) => e.event === 'overlay-store-ok'), { timeoutMs: 20_000 });
  assert.ok(ok, 'the agent saw etcd again');
  const r = await overlayAdd(h1, late, 'ovl-late');
  assert.is(r.exitCode, 0, r.stdout);
  const q = await ping(hosts[2]!.containers[1]!, r.json.ips[0].address.split('/')[0], { count: 1, timeoutSec: 3 });
  assert.ok(q.ok, q.output);
});

test('a container whose namespace vanished without DEL: its agent releases veth, rules, lease and record; a late DEL succeeds', async () => {
  const h = hosts[1]!;
  const id = 'ovl-h2gone';
  const picture = async () => {
    const a = await attachmentsOf(h.host, lab.name, stateOf(h).bridge, join(h.stateDir, 'ipam', lab.name));
    const records = ['attachments', 'agent'].filter((d) => existsSync(`/run/netplumb/${d}/${id}`)).map((d) => `${d} record`);
    return {
      theirs: [...a.veths, ...a.rules, ...a.elements, ...a.reservations].filter((x) => !x.startsWith(`${id}/`)).sort(),
      mine: [...a.veths, ...a.reservations].filter((x) => x.startsWith(`${id}/`)).concat(records),
      strays: a.strays,
    };
  };
  const before = await picture();
  const { ctr } = await addContainer(h, 'h2gone');
  const attached = await picture();
  assert.equal(attached.mine, [`${id}/eth0`, `${id}/eth0`, 'attachments record', 'agent record']);
  await ctr.destroy(); // the runtime crashed: no DEL
  const told = () => h.agent.events().filter((e) => e.event === 'cleanup' && e.container === id);
  // the agent logs the release after its files are gone: wait for both
  const released = await waitFor(async () => (await picture()).mine.length === 0 && told().length > 0, { timeoutMs: 30_000 });
  assert.ok(released, `left: ${(await picture()).mine}\n${h.agent.log()}`);
  assert.equal(await picture(), before, "only the vanished container's were released");
  assert.equal(
    told().map((e) => [e.plugin, e.outcome]),
    [['netplumb-overlay', 'released']],
  );
  const late = await lab.add(h, ctr, id, 'DEL');
  assert.is(late.exitCode, 0, late.stdout);
});

test("a host that leaves (its lease expires) is gone from every other host's tables within the TTL", async () => {
  const gone = hosts[2]!;
  const goneState = stateOf(gone);
  gone.agent.process.kill('SIGKILL');
  await gone.agent.exited;
  const rest = hosts.slice(0, 2);
  // the lease lapses after at most TTL seconds without renewal; the watch then tells the others
  for (const h of rest) {
    const got = await assertProgrammed(
      lab,
      h,
      rest.filter((o) => o !== h),
      DEVICE,
      (TTL * 3 + 5) * 1000,
    );
    assert.not.ok(
      got.routes.some((r) => r.startsWith(goneState.subnet)),
      `h${h.n} forgot ${goneState.subnet}`,
    );
  }
  const p = await ping(rest[0]!.containers[0]!, rest[1]!.ips[0]!, { count: 1, timeoutSec: 3 });
  assert.ok(p.ok, p.output);
});

test.run();

/**
 * The VXLAN overlay across three hosts (namespaces joined by an underlay bridge), each with its own netplumbd
 * running the overlay against a real etcd, two containers each attached by netplumb-bridge through the agent
 * with the network list the agent wrote. Oracles: `ip -j route/neigh`, `bridge -j fdb`, ping and TCP echo.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
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

await sandboxed();

const TTL = 4;
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

async function tablesOf(h: OverlayHost): Promise<{ routes: string[]; neigh: string[]; fdb: string[] }> {
  const routes = (await h.host.ip<any[]>('route', 'show', 'dev', DEVICE)).map((r) => `${r.dst} via ${r.gateway}`).sort();
  const neigh = (await h.host.ip<any[]>('neigh', 'show', 'dev', DEVICE)).map((n) => `${n.dst} ${n.lladdr}`).sort();
  const r = await h.host.exec(['bridge', '-j', 'fdb', 'show', 'dev', DEVICE]);
  const fdb = (JSON.parse(r.stdout || '[]') as any[])
    .filter((e) => e.dst)
    .map((e) => `${e.mac} ${e.dst}`)
    .sort();
  return { routes, neigh, fdb };
}

/** What host `h`'s tables must hold for peers `others`, from the peers' state files. */
function expectedTables(others: OverlayHost[]): { routes: string[]; neigh: string[]; fdb: string[] } {
  const s = others.map(stateOf);
  const net = (x: any) => x.subnet.split('/')[0];
  return {
    routes: s.map((x) => `${x.subnet} via ${net(x)}`).sort(),
    neigh: s.map((x) => `${net(x)} ${x.vtepMac}`).sort(),
    fdb: s.map((x) => `${x.vtepMac} ${x.vtepIp}`).sort(),
  };
}

const startAgentOn = (h: OverlayHost) => lab.startAgent(h);
const overlayAdd = (h: OverlayHost, ctr: Container, id: string) => lab.add(h, ctr, id);

async function addContainer(h: OverlayHost, name: string): Promise<{ ctr: Container; ip: string }> {
  const ctr = await h.host.createContainer(name);
  const r = await overlayAdd(h, ctr, `ovl-${name}`);
  assert.is(r.exitCode, 0, `ADD ${name}: ${r.stdout} ${r.stderr}`);
  const ip = r.json.ips[0].address.split('/')[0];
  const subnet = stateOf(h).subnet.split('.').slice(0, 3).join('.');
  assert.ok(ip.startsWith(`${subnet}.`), `${ip} is from the leased ${stateOf(h).subnet}`);
  return { ctr, ip };
}

test.before(async () => {
  lab = await overlayLab({ hosts: 3, ttlSeconds: TTL });
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
    const want = expectedTables(hosts.filter((o) => o !== h));
    const got =
      (await waitFor(
        async () => {
          const t = await tablesOf(h);
          return JSON.stringify(t) === JSON.stringify(want) ? t : undefined;
        },
        { timeoutMs: 15_000 },
      )) || (await tablesOf(h));
    assert.equal(got, want, `h${h.n}'s tables`);
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
  // the largest ICMP payload a 1450-byte MTU carries unfragmented: 1450 − 20 (IPv4) − 8 (ICMP)
  const [a, b] = [all[0]!, all[2]!];
  const big = await a.ctr.exec(['ping', '-n', '-c', '1', '-W', '3', '-M', 'do', '-s', '1422', b.ip], { check: false });
  assert.is(big.exitCode, 0, big.stdout + big.stderr);
  const tooBig = await a.ctr.exec(['ping', '-n', '-c', '1', '-W', '1', '-M', 'do', '-s', '1423', b.ip], { check: false });
  assert.is.not(tooBig.exitCode, 0, 'one byte more does not fit');
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
  await waitFor(() => h.agent.events().some((e) => e.event === 'overlay-programmed'), { timeoutMs: 15_000 });
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

test("a host that leaves (its lease expires) is gone from every other host's tables within the TTL", async () => {
  const gone = hosts[2]!;
  const goneState = stateOf(gone);
  gone.agent.process.kill('SIGKILL');
  await gone.agent.exited;
  const rest = hosts.slice(0, 2);
  // the lease lapses after at most TTL seconds without renewal; the watch then tells the others
  for (const h of rest) {
    const want = expectedTables(rest.filter((o) => o !== h));
    const got =
      (await waitFor(
        async () => {
          const t = await tablesOf(h);
          return JSON.stringify(t) === JSON.stringify(want) ? t : undefined;
        },
        { timeoutMs: (TTL * 3 + 5) * 1000 },
      )) || (await tablesOf(h));
    assert.equal(got, want, `h${h.n} forgot ${goneState.subnet}`);
  }
  const p = await ping(rest[0]!.containers[0]!, rest[1]!.ips[0]!, { count: 1, timeoutSec: 3 });
  assert.ok(p.ok, p.output);
});

test.run();

/**
 * Concurrency of netplumb-bridge: a storm of mixed ADD, DEL and CHECK — NETPLUMB_STORM_OPS
 * operations (100), NETPLUMB_STORM_WIDTH at a time (16), on two networks with their own bridges and subnets —
 * with about 10 % of them failing on purpose (a fault point throwing, a fault point killing the plugin, or a
 * SIGKILL after a random delay). The test plays the runtime: it never runs two operations of one container at
 * once, follows every failed ADD or DEL with a DEL (sooner or later), and keeps a model of which containers
 * are attached. At the end — half the failed ones DELeted, the other half left to a GC naming the attached —
 * every oracle must say exactly what the model says: host veths (by alias) and bridge ports, nft rules and map
 * elements (by comment), IPAM reservations (and no torn or temporary file), one distinct address each, each
 * container's interface and address, pings within a bridge and none across.
 *
 * The seed (NETPLUMB_STORM_SEED) replays the random choices in the order the operations start; the
 * interleaving itself is the kernel's.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createHost,
  destroyAll,
  must,
  ping,
  runningAgent,
  sandboxed,
  TEST_AGENT_ENV,
  type Container,
  type Host,
  type PluginRun,
} from '../../netns-harness/index.js';
import { bridgeConf } from '../fixtures/bridge-lab.js';
import { cniRuntime, pool } from '../fixtures/cni-runtime.js';
import { STORM_OPS as OPS, STORM_WIDTH as WIDTH } from '../fixtures/budget.js';
import { ADD_POINTS, attachmentsOf, containerLinks, DEL_POINTS, seededRng, storeFiles } from '../fixtures/storm.js';

await sandboxed();

const rng = seededRng('NETPLUMB_STORM_SEED', 'storm-bridge');
const SLOTS_PER_NET = 12;
const FAULT_RATE = 0.1;
/**
 * Through the agent (NETPLUMB_TEST_AGENT=1, test/hardening/storm-agent.test.ts), with NETPLUMB_STORM_AGENT_KILLS=1
 * the agent is also SIGKILLed at random moments and restarted by the next plugin exec: operations it was serving
 * fail with error 11 (the runtime then DELs), and between a kill and the restart the forwarders run in process.
 */
const AGENT_KILLS = process.env[TEST_AGENT_ENV] === '1' && process.env.NETPLUMB_STORM_AGENT_KILLS === '1';

interface Net {
  name: string;
  bridge: string;
  conf: any;
  store: string;
}
const nets: Net[] = [
  { name: 'storm-a', bridge: 'npstorma', subnet: '10.91.0.0/24', macspoofchk: true },
  { name: 'storm-b', bridge: 'npstormb', subnet: '10.92.0.0/24', macspoofchk: false },
].map(({ name, bridge, subnet, macspoofchk }) => {
  const conf = bridgeConf({ name, bridge, subnet, isGateway: true, ipMasq: true, macspoofchk, routes: [{ dst: '0.0.0.0/0' }] });
  return { name, bridge, conf, store: join(conf.ipam.dataDir, name) };
});

type SlotState = 'free' | 'attached' | 'dirty';
interface Slot {
  id: string;
  net: Net;
  c: Container;
  state: SlotState;
  busy: boolean;
  result?: any;
}

let host: Host;
const slots: Slot[] = [];
const tally: Record<string, number> = {};
const unexpected: string[] = [];
const count = (k: string) => (tally[k] = (tally[k] ?? 0) + 1);

test.before(async () => {
  host = await createHost('storm');
  const all = nets.flatMap((net, n) => Array.from({ length: SLOTS_PER_NET }, (_, i) => ({ net, id: `${'ab'[n]}${i}` })));
  const made = await pool(all, 8, async ({ net, id }) => ({ id, net, c: await host.createContainer(id), state: 'free' as SlotState, busy: false }));
  slots.push(...made);
});

test.after(async () => {
  await destroyAll();
});

/** How long an undisturbed operation takes, to place random kills inside one. */
let opMs = 150;

function faultFor(kind: 'ADD' | 'DEL'): { env: Record<string, string>; killAfterMs?: number; label: string } | undefined {
  if (!rng.chance(FAULT_RATE)) return undefined;
  const points = kind === 'ADD' ? ADD_POINTS : DEL_POINTS;
  const how = rng.int(3);
  if (how === 2) {
    const ms = 1 + rng.int(opMs);
    return { env: {}, killAfterMs: ms, label: `kill after ${ms} ms` };
  }
  const point = rng.pick(points);
  const value = how === 1 ? `kill:${point}` : point;
  return { env: { NETPLUMB_FAULT: value }, label: value };
}

const attOf = (s: Slot) => ({ containerId: s.id, netns: s.c.netnsPath, ifname: 'eth0' });

async function operate(s: Slot): Promise<void> {
  const kind = s.state === 'free' ? 'ADD' : s.state === 'dirty' ? 'DEL' : rng.chance(0.4) ? 'CHECK' : 'DEL';
  const fault = kind === 'CHECK' ? undefined : faultFor(kind);
  const conf = kind === 'CHECK' ? { ...s.net.conf, prevResult: s.result } : s.net.conf;
  const r: PluginRun = await cniRuntime({ host }).exec(kind, conf, attOf(s), { env: fault?.env, timeoutMs: fault?.killAfterMs });
  const agentDied = AGENT_KILLS && r.exitCode === 1 && r.json?.code === 11;
  count(`${kind} ${r.ok ? 'ok' : r.killed ? 'killed' : agentDied ? 'agent killed' : 'failed'}${fault ? ' (fault)' : ''}`);
  if (!r.ok && !fault && !agentDied)
    unexpected.push(`${kind} ${s.id} (${s.state}): exit ${r.exitCode} ${r.signal ?? ''} ${r.stdout.trim()} ${r.stderr.trim().slice(0, 400)}`);
  if (kind === 'ADD') {
    s.state = r.ok ? 'attached' : 'dirty'; // the runtime DELs a failed ADD, whatever it left
    s.result = r.ok ? r.json : undefined;
  } else if (kind === 'DEL') {
    s.state = r.ok ? 'free' : 'dirty';
    s.result = undefined;
  }
}

test(`a storm of ${OPS} ADD/DEL/CHECK, ${WIDTH} at a time on two bridges, ~${FAULT_RATE * 100} % failing, ends with exactly the attached containers`, async () => {
  // Calibrate: one undisturbed ADD and DEL.
  const cal = slots[0]!;
  const t0 = Date.now();
  must(await cniRuntime({ host }).exec('ADD', cal.net.conf, attOf(cal)), 'calibration ADD');
  must(await cniRuntime({ host }).exec('DEL', cal.net.conf, attOf(cal)), 'calibration DEL');
  opMs = Math.max(20, Math.round((Date.now() - t0) / 2));

  let started = 0;
  let stormOver = false;
  const chaos = async () => {
    // Bounded: one kill per turn, at most OPS / 10 turns, and none once the storm is over.
    for (let turn = 0; turn < Math.ceil(OPS / 10) && !stormOver; turn++) {
      await sleep(1 + rng.int(opMs * 4));
      const agent = await runningAgent(host);
      if (agent && !stormOver) {
        agent.process.kill('SIGKILL');
        count('agent SIGKILL');
      }
    }
  };
  const chaosDone = AGENT_KILLS ? chaos() : Promise.resolve();
  await Promise.all(
    Array.from({ length: WIDTH }, async () => {
      // Bounded: every turn starts one operation; there are more slots than workers, so one is always idle.
      while (started < OPS) {
        const idle = slots.filter((s) => !s.busy);
        const s = rng.pick(idle);
        s.busy = true;
        started++;
        try {
          await operate(s);
        } finally {
          s.busy = false;
        }
      }
    }),
  );
  stormOver = true;
  await chaosDone;
  process.stdout.write(`storm: ${JSON.stringify(tally)}\n`);
  assert.equal(unexpected, [], 'no operation failed without an injected fault');

  // The runtime catches up: half of the failed attachments get their DEL, the other half are left to GC.
  const dirty = slots.filter((s) => s.state === 'dirty');
  for (const s of dirty) {
    if (rng.chance(0.5)) continue;
    must(await cniRuntime({ host }).exec('DEL', s.net.conf, attOf(s)), `final DEL ${s.id}`);
    s.state = 'free';
  }
  for (const net of nets) {
    const valid = slots.filter((s) => s.net === net && s.state === 'attached').map((s) => ({ containerID: s.id, ifname: 'eth0' }));
    must(await cniRuntime({ host }).exec('GC', { ...net.conf, 'cni.dev/valid-attachments': valid }), `GC ${net.name}`);
  }
  for (const s of slots) if (s.state === 'dirty') s.state = 'free';
  const attached = slots.filter((s) => s.state === 'attached');
  process.stdout.write(`storm: ${attached.length} attached at the end (${dirty.length} left failed by the storm)\n`);

  // Every oracle says exactly what the model says.
  for (const net of nets) {
    const want = attached
      .filter((s) => s.net === net)
      .map((s) => `${s.id}/eth0`)
      .sort();
    const seen = await attachmentsOf(host, net.name, net.bridge, net.store);
    assert.equal(seen.veths, want, `${net.name}: host veths (by alias)`);
    assert.equal(seen.rules, want, `${net.name}: nft rules (by comment)`);
    assert.equal(seen.elements, want, `${net.name}: nft map elements`);
    assert.equal(seen.reservations, want, `${net.name}: IPAM reservations`);
    assert.equal(seen.strays, [], `${net.name}: no stray veth or chain`);
    const files = storeFiles(net.store);
    assert.equal(files.problems, [], `${net.name}: every IPAM file well formed`);
    assert.equal(files.temps, [], `${net.name}: no temporary IPAM file`);
    const ports = (await host.ip<any[]>('link', 'show', 'master', net.bridge)).length;
    assert.is(ports, want.length, `${net.name}: ports of ${net.bridge}`);
    const brAddrs = (await host.ip<any[]>('-4', 'addr', 'show', 'dev', net.bridge))[0]?.addr_info.map((a: any) => `${a.local}/${a.prefixlen}`);
    assert.equal(brAddrs, [net.conf.ipam.ranges[0][0].subnet.replace(/0\/24$/, '1/24')], `${net.name}: the bridge has only its gateway`);
  }
  const hostAddrs = (await host.ip<any[]>('-4', 'addr', 'show')).flatMap((x) => x.addr_info.map((a: any) => `${x.ifname} ${a.local}`));
  assert.equal(hostAddrs.sort(), ['lo 127.0.0.1', 'npstorma 10.91.0.1', 'npstormb 10.92.0.1'], 'no other address in the host');

  // Each attached container has its interface with the address of its Result, which its reservation names;
  // every other container has nothing but lo.
  const addrs = new Map<string, string>();
  for (const s of slots) {
    if (s.state !== 'attached') {
      assert.equal(await containerLinks(s.c), [], `${s.id} (not attached): nothing but lo`);
      continue;
    }
    const a = (await s.c.ip<any[]>('-4', 'addr', 'show', 'dev', 'eth0'))[0].addr_info.map((x: any) => `${x.local}/${x.prefixlen}`);
    assert.equal(a, [s.result.ips[0].address], `${s.id}: its address`);
    const ip = a[0].split('/')[0];
    assert.is(storeFiles(s.net.store).reservations.get(ip), `${s.id}/eth0`, `${s.id}: its reservation`);
    assert.not.ok(addrs.has(ip), `${ip} is held by ${addrs.get(ip)} and ${s.id}`);
    addrs.set(ip, s.id);
  }

  // netplumb's attachment records (when the plugin writes them) name exactly the attached containers.
  const recordDir = '/run/netplumb/attachments';
  const records = existsSync(recordDir)
    ? readdirSync(recordDir).flatMap((id) =>
        readdirSync(join(recordDir, id))
          .filter((f) => f.startsWith('bridge:'))
          .map((f) => `${id} ${f}`),
      )
    : [];
  if (records.length > 0) {
    assert.equal(records.sort(), attached.map((s) => `${s.id} bridge:${s.net.name}:eth0`).sort(), 'attachment records');
  }

  // Packets: a sample of pairs on one bridge reach each other; pairs across the two bridges do not.
  const ip4 = (s: Slot) => s.result.ips[0].address.split('/')[0];
  for (const net of nets) {
    const on = attached.filter((s) => s.net === net);
    for (let i = 0; i + 1 < on.length && i < 6; i += 2) {
      const p = await ping(on[i]!.c, ip4(on[i + 1]!));
      assert.ok(p.ok, `${on[i]!.id} → ${on[i + 1]!.id} on ${net.bridge}: ${p.output}`);
    }
  }
  const a = attached.filter((s) => s.net === nets[0]);
  const b = attached.filter((s) => s.net === nets[1]);
  for (let i = 0; i < Math.min(2, a.length, b.length); i++) {
    const p = await ping(a[i]!.c, ip4(b[i]!), { timeoutSec: 1 });
    assert.not.ok(p.ok, `${a[i]!.id} → ${b[i]!.id} across bridges must be dropped`);
  }
  // CHECK of every attached container passes after the storm.
  await pool(attached, 8, async (s) => must(await cniRuntime({ host }).exec('CHECK', { ...s.net.conf, prevResult: s.result }, attOf(s)), `CHECK ${s.id}`));
});

test.run();

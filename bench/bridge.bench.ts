/**
 * One ADD+DEL cycle of netplumb-bridge and of the reference `bridge` (host-local, ipMasq: true), side by side in
 * one run: the same machine, each in its own harness Host, executed exactly as a runtime executes them
 * (CniRuntime: nsenter + exec, config on stdin), alternating, several iterations, medians. netplumb's plugins
 * run with NETPLUMB_TIMING=1, so the breakdown of where their time goes comes from the processes themselves.
 *
 *   node dist/bench/run.js bridge            (NETPLUMB_BENCH_N=… iterations, default 30)
 */
import { createRequire } from 'node:module';
import { createHost, run, sandboxed, type Host } from '../netns-harness/index.js';
import { CniRuntime } from '../netns-harness/cni-runtime.js';
import { ensurePluginBins, NETPLUMB_BIN, REFERENCE_BIN } from '../test/fixtures/cni-runtime.js';
import { timedCycle } from './cycle.js';
import { median } from './stats.js';

await sandboxed();
ensurePluginBins();

const N = Number(process.env.NETPLUMB_BENCH_N ?? 30);
const WARMUP = 3;

interface Variant {
  label: string;
  type: string;
  ipam: string;
  env?: Record<string, string>;
  subnet: string;
  ipMasq?: boolean;
}

// The first two are the comparison; the others say where the time goes (the reference without masquerade:
// what its iptables execs cost; netplumb with the reference host-local: what an exec'd IPAM costs).
const VARIANTS: Variant[] = [
  { label: 'reference bridge + host-local', type: 'bridge', ipam: 'host-local', subnet: '10.10.0.0/16' },
  {
    label: 'netplumb-bridge + netplumb-host-local',
    type: 'netplumb-bridge',
    ipam: 'netplumb-host-local',
    subnet: '10.11.0.0/16',
    env: { NETPLUMB_TIMING: '1' },
  },
  { label: 'netplumb-bridge + host-local (exec)', type: 'netplumb-bridge', ipam: 'host-local', subnet: '10.12.0.0/16', env: { NETPLUMB_TIMING: '1' } },
  { label: 'reference, ipMasq: false', type: 'bridge', ipam: 'host-local', subnet: '10.13.0.0/16', ipMasq: false },
  {
    label: 'netplumb, ipMasq: false',
    type: 'netplumb-bridge',
    ipam: 'netplumb-host-local',
    subnet: '10.14.0.0/16',
    ipMasq: false,
    env: { NETPLUMB_TIMING: '1' },
  },
];

interface Run {
  host: Host;
  rt: CniRuntime;
  conf: any;
  add: number[];
  del: number[];
  phases: Record<'ADD' | 'DEL', Record<string, number[]>>;
  seq: number;
}

const runs = new Map<Variant, Run>();
for (const [i, v] of VARIANTS.entries()) {
  const host = await createHost(`h${i}`);
  const rt = new CniRuntime({ cniPath: [NETPLUMB_BIN, REFERENCE_BIN], host, env: v.env ?? {} });
  const conf = {
    cniVersion: '1.0.0',
    name: `bench${i}`,
    type: v.type,
    bridge: 'br-bench',
    isGateway: true,
    ipMasq: v.ipMasq ?? true,
    ipam: { type: v.ipam, dataDir: `/run/bench-ipam-${i}`, ranges: [[{ subnet: v.subnet }]], routes: [{ dst: '0.0.0.0/0' }] },
  };
  runs.set(v, { host, rt, conf, add: [], del: [], phases: { ADD: {}, DEL: {} }, seq: 0 });
}

function record(r: Run, verb: 'ADD' | 'DEL', wall: number, stderr: string): void {
  const line = stderr.split('\n').find((l) => l.startsWith('netplumb-timing '));
  if (!line) return;
  const p = r.phases[verb];
  let total = 0;
  for (const kv of line.split(' ').slice(3)) {
    const [k, v] = kv.split('=');
    if (k === 'total') total = Number(v);
    else (p[k!] ??= []).push(Number(v));
  }
  // Before Node's clock starts and after the last phase: exec, the dynamic loader, exit, and nsenter in front.
  (p['exec+exit'] ??= []).push(wall - total);
}

async function cycle(v: Variant, timed: boolean): Promise<void> {
  const r = runs.get(v)!;
  const { add, del, tAdd, tDel } = await timedCycle(v.label, r.host, r.rt, r.conf, `bench-${r.seq++}`);
  if (!timed) return;
  r.add.push(tAdd);
  r.del.push(tDel);
  record(r, 'ADD', tAdd, add.stderr);
  record(r, 'DEL', tDel, del.stderr);
}

for (let i = 0; i < WARMUP; i++) for (const v of VARIANTS) await cycle(v, false);
for (let i = 0; i < N; i++) for (const v of VARIANTS) await cycle(v, true);

// What nsenter + exec of a do-nothing program, and of an empty Node script, cost here (the floor of each kind).
const floor = async (argv: string[]) => {
  const xs: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t = performance.now();
    await run(argv, { netns: runs.get(VARIANTS[0]!)!.host.netnsPath, cleanEnv: true }); // as CniRuntime runs plugins
    xs.push(performance.now() - t);
  }
  return median(xs);
};
const floorTrue = await floor(['true']);
const floorNode = await floor([process.execPath, '-e', '0']);
const koffiPath = createRequire(import.meta.url).resolve('koffi');
const netlinkPath = createRequire(import.meta.url).resolve('netlink/dist/raw.js');
const floorNatives = await floor([process.execPath, '-e', `require(${JSON.stringify(koffiPath)}); require(${JSON.stringify(netlinkPath)})`]);

const f = (x: number) => x.toFixed(1).padStart(7);
const out = (s = '') => process.stdout.write(`${s}\n`);
out(`ADD+DEL cycle, ${N} iterations after ${WARMUP} warm-up, medians in ms (each exec includes nsenter, ~${floorTrue.toFixed(1)} ms)`);
out('');
out(`${'variant'.padEnd(42)}${'ADD'.padStart(7)}${'DEL'.padStart(7)}${'cycle'.padStart(7)}  vs reference`);
const ref = runs.get(VARIANTS[0]!)!;
const refCycle = median(ref.add.map((a, i) => a + ref.del[i]!));
for (const v of VARIANTS) {
  const r = runs.get(v)!;
  const c = median(r.add.map((a, i) => a + r.del[i]!));
  out(`${v.label.padEnd(42)}${f(median(r.add))}${f(median(r.del))}${f(c)}  ${(c / refCycle).toFixed(2)}×`);
}
out('');
out(`floor of one exec: nsenter + true ${floorTrue.toFixed(1)} ms; nsenter + node -e 0 ${floorNode.toFixed(1)} ms (Node's own start-up and exit);`);
out(`  nsenter + node loading koffi and netlink ${floorNatives.toFixed(1)} ms (the least any netplumb process that touches the kernel pays)`);
for (const v of VARIANTS.filter((x) => x.env?.NETPLUMB_TIMING)) {
  const r = runs.get(v)!;
  out('');
  out(`where ${v.label} spends its time (medians, ms; node = process start to the plugin's first line, exec+exit = the rest outside it):`);
  for (const verb of ['ADD', 'DEL'] as const) {
    const p = r.phases[verb];
    const parts = Object.entries(p).map(([k, xs]) => `${k} ${median(xs).toFixed(1)}`);
    out(`  ${verb}: ${parts.join(', ')}`);
  }
  // The same, grouped by what the time is spent on (sums of the phases' medians).
  const group = (names: string[]) =>
    (['ADD', 'DEL'] as const).reduce((sum, verb) => sum + names.reduce((s2, n) => s2 + (r.phases[verb][n] ? median(r.phases[verb][n]!) : 0), 0), 0);
  const groups: [string, string[]][] = [
    ['Node start-up and exit', ['node', 'exec+exit']],
    ['module loading', ['modules']],
    ['IPAM', ['ipam']],
    ['netlink and sysctls (kernel included)', ['preflight', 'bridge', 'veth', 'host', 'container', 'port-up', 'garp']],
    ['nftables', ['firewall']],
    ['CNI parsing and the Result', ['parse', 'result', 'other']],
  ];
  out(`  per cycle: ${groups.map(([label, names]) => `${label} ${group(names).toFixed(1)}`).join(', ')}`);
}
for (const r of runs.values()) await r.host.destroy();

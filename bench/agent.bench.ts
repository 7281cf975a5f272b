/**
 * netplumb-bridge through netplumbd (the compiled forwarder + the resident agent) against the reference
 * bridge + host-local, ADD alone and the ADD+DEL cycle, with and without ipMasq, at 0 containers attached and
 * again with NETPLUMB_BENCH_ATTACHED (300) already attached to each network. Each variant in its own harness
 * Host (its agent in that Host's namespace), executed as a runtime executes them (CniRuntime: nsenter + exec,
 * config on stdin), alternating, medians. A last variant runs netplumb without an agent (the forwarder finds
 * no socket and execs the Node plugin), for "no slower than today".
 *
 *   node dist/bench/run.js agent          (NETPLUMB_BENCH_N=… iterations, default 15; NETPLUMB_BENCH_ATTACHED=300;
 *                                          NETPLUMB_BENCH_SETTLE=15 seconds of rest after attaching)
 */
import { createHost, sandboxed, startAgentProcess, type AgentProcess, type Container, type Host } from '../netns-harness/index.js';
import { CniRuntime } from '../netns-harness/cni-runtime.js';
import { ensurePluginBins, NETPLUMB_BIN, pool, REFERENCE_BIN } from '../test/fixtures/cni-runtime.js';
import { timedCycle } from './cycle.js';
import { median } from './stats.js';
import { setTimeout as sleep } from 'node:timers/promises';

await sandboxed();
ensurePluginBins();

const N = Number(process.env.NETPLUMB_BENCH_N ?? 15);
const ATTACHED = Number(process.env.NETPLUMB_BENCH_ATTACHED ?? 300);
const WARMUP = 3;

interface Variant {
  label: string;
  type: string;
  ipam: string;
  ipMasq: boolean;
  /** through an agent in the host's namespace */
  agent: boolean;
  /** compared with */
  ref?: string;
}
const VARIANTS: Variant[] = [
  { label: 'reference, ipMasq', type: 'bridge', ipam: 'host-local', ipMasq: true, agent: false },
  { label: 'netplumb agent, ipMasq', type: 'netplumb-bridge', ipam: 'netplumb-host-local', ipMasq: true, agent: true, ref: 'reference, ipMasq' },
  { label: 'reference, no masquerade', type: 'bridge', ipam: 'host-local', ipMasq: false, agent: false },
  { label: 'netplumb agent, no masquerade', type: 'netplumb-bridge', ipam: 'netplumb-host-local', ipMasq: false, agent: true, ref: 'reference, no masquerade' },
  { label: 'netplumb no agent, ipMasq', type: 'netplumb-bridge', ipam: 'netplumb-host-local', ipMasq: true, agent: false, ref: 'reference, ipMasq' },
];

interface Run {
  v: Variant;
  host: Host;
  rt: CniRuntime;
  conf: any;
  agent?: AgentProcess;
  seq: number;
  add: Record<number, number[]>;
  cycle: Record<number, number[]>;
  kept: Container[];
}

const runs: Run[] = [];
for (const [i, v] of VARIANTS.entries()) {
  const host = await createHost(`h${i}`);
  const agent = v.agent ? await startAgentProcess({ socket: `/run/bench-agent-${i}/netplumbd.sock`, netns: host.netnsPath }) : undefined;
  const env: Record<string, string> = { NETPLUMB_AGENT_SOCKET: agent?.socket ?? '' };
  const rt = new CniRuntime({ cniPath: [NETPLUMB_BIN, REFERENCE_BIN], host, env });
  const conf = {
    cniVersion: '1.0.0',
    name: `bench${i}`,
    type: v.type,
    bridge: 'br-bench',
    isGateway: true,
    ipMasq: v.ipMasq,
    ipam: { type: v.ipam, dataDir: `/run/bench-ipam-${i}`, ranges: [[{ subnet: `10.${20 + i}.0.0/16` }]], routes: [{ dst: '0.0.0.0/0' }] },
  };
  runs.push({ v, host, rt, conf, ...(agent ? { agent } : {}), seq: 0, add: {}, cycle: {}, kept: [] });
}

async function cycle(r: Run, level: number | undefined): Promise<void> {
  const { tAdd, tDel } = await timedCycle(r.v.label, r.host, r.rt, r.conf, `bench-${r.seq++}`);
  if (level === undefined) return;
  (r.add[level] ??= []).push(tAdd);
  (r.cycle[level] ??= []).push(tAdd + tDel);
}

/** Attaches containers (kept) to every variant's network until `count` are attached. */
async function attachUpTo(count: number): Promise<void> {
  for (const r of runs) {
    const ids = Array.from({ length: count - r.kept.length }, (_, i) => `keep-${r.kept.length + i}`);
    const made = await pool(ids, 4, async (id) => {
      const c = await r.host.createContainer(id);
      const a = await r.rt.exec('ADD', r.conf, { containerId: id, netns: c.netnsPath, ifname: 'eth0' });
      if (!a.ok) throw new Error(`${r.v.label} attach ${id}: ${a.stdout}`);
      return c;
    });
    r.kept.push(...made);
  }
}

/**
 * After attaching, the kernel keeps busy for seconds: every new interface's IPv6 duplicate address detection and
 * MLD reports (flooded to every port of its bridge), the RCU callbacks of 1 500 new devices. Measuring inside that
 * wave measures the wave (every variant, the reference too, came out 1.4–1.8× slower at 300): wait it out.
 */
const SETTLE_MS = Number(process.env.NETPLUMB_BENCH_SETTLE ?? 15) * 1000;

for (let i = 0; i < WARMUP; i++) for (const r of runs) await cycle(r, undefined);
const levels = ATTACHED > 0 ? [0, ATTACHED] : [0];
for (const level of levels) {
  if (level > 0) {
    await attachUpTo(level);
    await sleep(SETTLE_MS);
  }
  for (let i = 0; i < N; i++) for (const r of runs) await cycle(r, level);
}

const f = (x: number) => x.toFixed(1).padStart(8);
const out = (s = '') => process.stdout.write(`${s}\n`);
out(`ADD alone and ADD+DEL cycle, ${N} iterations per level after ${WARMUP} warm-up, medians in ms (each exec includes nsenter)`);
for (const level of levels) {
  out('');
  out(`with ${level} containers attached to each network:`);
  out(`${'variant'.padEnd(34)}${'ADD'.padStart(8)}${'cycle'.padStart(8)}   ADD ratio  cycle ratio`);
  for (const r of runs) {
    const ref = r.v.ref ? runs.find((x) => x.v.label === r.v.ref) : undefined;
    const a = median(r.add[level]!);
    const c = median(r.cycle[level]!);
    const ratios = ref ? `${(a / median(ref.add[level]!)).toFixed(2).padStart(9)}× ${(c / median(ref.cycle[level]!)).toFixed(2).padStart(10)}×` : '';
    out(`${r.v.label.padEnd(34)}${f(a)}${f(c)}   ${ratios}`);
  }
}
if (levels.length > 1) {
  out('');
  for (const r of runs) out(`${r.v.label.padEnd(34)} cycle at ${ATTACHED} / at 0: ${(median(r.cycle[ATTACHED]!) / median(r.cycle[0]!)).toFixed(2)}×`);
}
for (const r of runs) await r.agent?.stop();

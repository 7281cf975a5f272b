/**
 * What allow rules cost on an `icc: false` network: the ADD+DEL cycle of netplumb-bridge with 1000 rules on
 * the network (among 20 attached neighbours) against the same network and neighbours with none (alternating,
 * medians), and iperf3 TCP throughput between two containers allowed by a rule against two on an `icc: true`
 * network (when iperf3 is installed).
 *
 *   node dist/bench/run.js policy            (NETPLUMB_BENCH_N=… cycles per side, default 20;
 *                                             NETPLUMB_BENCH_ONLY=cycles or iperf for one half)
 */
import { spawn } from 'node:child_process';
import { createHost, run, sandboxed, type Container, type Host } from '../netns-harness/index.js';
import { CniRuntime } from '../netns-harness/cni-runtime.js';
import { setAllowRules, type AllowRule } from '../lib/firewall/index.js';
import { ensurePluginBins, NETPLUMB_BIN } from '../test/fixtures/cni-runtime.js';
import { bridgeConf } from '../test/fixtures/bridge-lab.js';
import { timedCycle } from './cycle.js';
import { median } from './stats.js';

await sandboxed();
ensurePluginBins();

const N = Number(process.env.NETPLUMB_BENCH_N ?? 20);
const RULES = 1000;

const NEIGHBOURS = 20;

/**
 * `n` rules among the attached neighbours, from each to each other in turn, each its own port: `n` allow4
 * elements (rules name attached containers only). None names the container the cycle adds and deletes.
 */
function rules(n: number, addrs: readonly string[]): AllowRule[] {
  const pairs = addrs.flatMap((f) => addrs.filter((t) => t !== f).map((t) => [f, t] as const));
  return Array.from({ length: n }, (_, i) => ({
    from: [pairs[i % pairs.length]![0]],
    to: [pairs[i % pairs.length]![1]],
    ports: [{ protocol: 'tcp' as const, port: 1000 + i }],
  }));
}

async function cycles(): Promise<void> {
  const hosts: Host[] = [];
  try {
    const sides = [];
    for (const [label, n] of [
      ['icc: false, no rules', 0],
      [`icc: false, ${RULES} rules`, RULES],
    ] as const) {
      const host = await createHost(`pol${n}`);
      hosts.push(host);
      const conf = bridgeConf({ bridge: 'br-bench', isGateway: true, ipMasq: true, icc: false, subnet: '10.40.0.0/16' });
      const rt = new CniRuntime({ cniPath: [NETPLUMB_BIN], host });
      // The same neighbours on both sides, so that the rules are the only difference.
      const addrs: string[] = [];
      for (let i = 0; i < NEIGHBOURS; i++) {
        const ctr = await host.createContainer(`n${i}`);
        const r = await rt.exec('ADD', conf, { containerId: `n${i}`, netns: ctr.netnsPath, ifname: 'eth0' });
        if (!r.ok) throw new Error(`neighbour ADD: ${r.stdout} ${r.stderr}`);
        addrs.push(r.json.ips[0].address.split('/')[0]);
      }
      await timedCycle(label, host, rt, conf, 'warm-0');
      if (n > 0) await setAllowRules('br-bench', rules(n, addrs), { netns: host.netnsPath });
      sides.push({ label, host, rt, conf, add: [] as number[], del: [] as number[], total: [] as number[] });
    }
    for (let i = 0; i < N + 2; i++) {
      // each side first every other round, so that neither pays for what the other leaves behind
      for (const s of i % 2 === 0 ? sides : [...sides].reverse()) {
        const c = await timedCycle(s.label, s.host, s.rt, s.conf, `c${i}`);
        if (i < 2) continue; // warm-up
        s.add.push(c.tAdd);
        s.del.push(c.tDel);
        s.total.push(c.tAdd + c.tDel);
      }
    }
    const [none, many] = sides;
    for (const s of sides)
      process.stdout.write(
        `${s.label.padEnd(28)} ADD ${median(s.add).toFixed(1)} ms  DEL ${median(s.del).toFixed(1)} ms  cycle ${median(s.total).toFixed(1)} ms\n`,
      );
    const ratio = (k: 'add' | 'del' | 'total') => (median(many![k]) / median(none![k])).toFixed(3);
    process.stdout.write(`with ${RULES} rules / without (medians of ${N}): cycle ${ratio('total')}×  ADD ${ratio('add')}×  DEL ${ratio('del')}×\n`);
  } finally {
    for (const h of hosts) await h.destroy();
  }
}

async function iperf(server: Container, client: Container, address: string): Promise<number> {
  const srv = spawn('nsenter', [`--net=${server.netnsPath}`, '--', 'iperf3', '-s', '-1', '-p', '5201'], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 50; i++) {
      const r = await run(['iperf3', '-c', address, '-p', '5201', '-t', '5', '-J'], { netns: client.netnsPath, check: false, timeoutMs: 30_000 });
      const out = r.stdout ? JSON.parse(r.stdout) : {};
      if (r.exitCode === 0 && out.end?.sum_received) return out.end.sum_received.bits_per_second / 1e9;
      if (i === 49) throw new Error(`iperf3 to ${address}: ${out.error ?? r.stderr}`);
      await new Promise((res) => setTimeout(res, 100)); // the server is not listening yet
    }
    throw new Error(`iperf3 never connected to ${address}`);
  } finally {
    srv.kill();
  }
}

async function throughput(): Promise<void> {
  if ((await run(['iperf3', '--version'], { check: false })).exitCode !== 0) {
    process.stdout.write('iperf3 not installed (apt-get install iperf3): throughput not measured\n');
    return;
  }
  const results: Record<string, number[]> = {};
  for (let round = 0; round < 3; round++) {
    for (const icc of [true, false]) {
      const host = await createHost(`perf${icc}`);
      try {
        const conf = bridgeConf({ bridge: 'br-perf', isGateway: true, icc, subnet: '10.41.0.0/24' });
        const rt = new CniRuntime({ cniPath: [NETPLUMB_BIN], host });
        const ctrs = [await host.createContainer('a'), await host.createContainer('b')];
        const ips: string[] = [];
        for (const [i, c] of ctrs.entries()) {
          const r = await rt.exec('ADD', conf, { containerId: `p${i}`, netns: c.netnsPath, ifname: 'eth0' });
          ips.push(r.json.ips[0].address.split('/')[0]);
        }
        if (!icc) await setAllowRules('br-perf', [{ from: [ips[0]!], to: [ips[1]!], ports: [{ protocol: 'tcp', port: 5201 }] }], { netns: host.netnsPath });
        (results[icc ? 'icc: true' : 'icc: false + allow rule'] ??= []).push(await iperf(ctrs[1]!, ctrs[0]!, ips[1]!));
      } finally {
        await host.destroy();
      }
    }
  }
  for (const [k, v] of Object.entries(results)) process.stdout.write(`iperf3 ${k.padEnd(26)} ${median(v).toFixed(2)} Gbit/s (median of ${v.length})\n`);
  const [open, allowed] = [median(results['icc: true']!), median(results['icc: false + allow rule']!)];
  process.stdout.write(`throughput allowed / icc: true: ${(allowed / open).toFixed(3)}×\n`);
}

if (process.env.NETPLUMB_BENCH_ONLY !== 'iperf') await cycles();
if (process.env.NETPLUMB_BENCH_ONLY !== 'cycles') await throughput();

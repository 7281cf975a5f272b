/**
 * N veth pairs (default 500, `--n N`): host side on a bridge and up, an address on the other side, inside a
 * harness host; built by the library, by `ip -batch` and by pyroute2 in one run, each in a fresh host. Prints
 * wall times and ratios, and checks every result with `ip -j`.
 *
 *   node dist/bench/run.js links [--n 500] [--rounds 3]
 *
 * Each method runs in a fresh harness host with an empty bridge; the rounds interleave the methods and the
 * medians are compared, since the machine is shared and timings wander.
 *
 * Library: timed in-process (socket opened inside the timing) and as a fresh `node` process (startup and module
 * loading included), the fair comparison with `ip -batch` and `python3`, which are timed as processes.
 *
 * Where the time goes, per method (medians): user CPU (our JavaScript, node-netlink's receive path, garbage
 * collection; for `ip` its parsing), system CPU (the kernel: rtnetlink handles each request inside the
 * sendmsg that carries it, so creating the links is system time of the sender), and the rest of the wall time,
 * spent neither in user nor kernel code of the method's own threads (waiting for the CPU on a busy machine, for
 * the RTNL lock other namespaces' work holds, for kernel workers). In process: process.cpuUsage() around the
 * call, and garbage collection from the `gc` performance entries; processes: getrusage(RUSAGE_CHILDREN) around
 * their run. The machine's load average is printed with them, since on a shared machine it decides the wall times.
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { PerformanceObserver } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { sandboxed, createHost, run, type Host } from '../netns-harness/index.js';
import { openHandleSync } from '../lib/net/handle.js';
import { createLink } from '../lib/net/link.js';
import { childrenCpuUsage } from '../lib/sys/libc.js';
import { buildPairs, pairAddress as addr } from './links-lib.js';
import { median } from './stats.js';

const WORKER = fileURLToPath(new URL('./links-worker.js', import.meta.url));

await sandboxed();
const { values } = parseArgs({ options: { n: { type: 'string', default: '500' }, rounds: { type: 'string', default: '3' } } });
const N = Number(values.n);
const ROUNDS = Number(values.rounds);

/** One timed run of a method: wall, user and system CPU (ms), and for the in-process library its GC pauses (wall). */
interface Timing {
  wall: number;
  user: number;
  sys: number;
  gc?: number;
}

let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });

/** The library, in this process (opening the socket included). */
async function library(host: Host): Promise<Timing> {
  const gc0 = gcMs;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await buildPairs(host.pid, N);
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  // gc entries are delivered after the fact: let them arrive
  await sleep(0);
  return { wall, user: c.user / 1e3, sys: c.system / 1e3, gc: gcMs - gc0 };
}

/** Times `fn`, which runs one child process to its end: wall time and that child's CPU. */
async function timedChild(fn: () => Promise<unknown>): Promise<Timing> {
  const c0 = childrenCpuUsage();
  const t0 = performance.now();
  await fn();
  const wall = performance.now() - t0;
  const c1 = childrenCpuUsage();
  return { wall, user: (c1.user - c0.user) / 1e3, sys: (c1.system - c0.system) / 1e3 };
}

function libraryProcess(host: Host): Promise<Timing> {
  // A clean environment, as a tool is started: NODE_EXTRA_CA_CERTS (set on some machines) makes Node parse a
  // CA bundle at start-up, ~30 ms that no netlink program needs.
  return timedChild(() => run([process.execPath, WORKER, String(host.pid), String(N)], { timeoutMs: 600_000, cleanEnv: true }));
}

async function ipBatch(host: Host): Promise<Timing> {
  const lines: string[] = [];
  for (let i = 0; i < N; i++) {
    lines.push(`link add vh${i} type veth peer name vc${i}`, `link set vh${i} master br0 up`, `addr add ${addr(i)} dev vc${i}`);
  }
  const file = `/run/links-bench-${host.pid}.batch`;
  writeFileSync(file, lines.join('\n') + '\n');
  return timedChild(() => host.exec(['ip', '-batch', file], { timeoutMs: 600_000 }));
}

const PY = `
import sys, time
t0 = time.monotonic()
from pyroute2 import IPRoute
n = int(sys.argv[1])
ipr = IPRoute()
br = ipr.link_lookup(ifname='br0')[0]
def addr(i):
    return '10.%d.%d.%d' % (100 + (i >> 16), (i >> 8) & 255, i & 255)
for i in range(n):
    ipr.link('add', ifname='vh%d' % i, kind='veth', peer='vc%d' % i)
    ipr.link('set', index=ipr.link_lookup(ifname='vh%d' % i)[0], master=br, state='up')
    ipr.addr('add', index=ipr.link_lookup(ifname='vc%d' % i)[0], address=addr(i), prefixlen=32)
ipr.close()
print('%.1f' % ((time.monotonic() - t0) * 1000))
`;

const pyInside: number[] = [];
async function pyroute2(host: Host): Promise<Timing> {
  return timedChild(async () => {
    const r = await host.exec(['/usr/bin/python3', '-c', PY, String(N)], { timeoutMs: 600_000 });
    pyInside.push(Number(r.stdout.trim()));
  });
}

/** Independent check with iproute2: N veth pairs, host sides up on br0, N addresses. */
async function verify(host: Host, label: string): Promise<void> {
  const links = await host.ip<any[]>('-d', 'link', 'show');
  const br = links.find((l) => l.ifname === 'br0');
  const hostSides = links.filter((l) => /^vh\d+$/.test(l.ifname));
  const ok = hostSides.filter((l) => l.master === 'br0' && l.flags.includes('UP')).length;
  const addrs = await host.ip<any[]>('-4', 'addr', 'show');
  const withAddr = addrs.filter((l) => /^vc\d+$/.test(l.ifname) && l.addr_info.length === 1).length;
  if (!br || hostSides.length !== N || ok !== N || withAddr !== N) {
    throw new Error(`${label}: expected ${N} pairs on br0 and ${N} addresses, found ${hostSides.length} pairs, ${ok} up on br0, ${withAddr} addresses`);
  }
}

/**
 * Each method gets a fresh host with an empty bridge. Afterwards its links are deleted synchronously and the
 * machine is given a moment: a dying namespace is torn down by a kernel worker that holds the RTNL lock, and
 * tearing down 1000 links that way would slow down whichever method runs next.
 */
async function fresh<T>(fn: (h: Host) => Promise<T>, label: string): Promise<T> {
  const host = await createHost('bench');
  try {
    const h = openHandleSync({ pid: host.pid });
    await createLink(h, { kind: 'bridge', name: 'br0', up: true });
    h.close();
    const r = await fn(host);
    await verify(host, label);
    const del = Array.from({ length: N }, (_, i) => `link del vh${i}`);
    writeFileSync(`/run/links-bench-${host.pid}.del`, del.join('\n') + '\n');
    await host.exec(['ip', '-batch', `/run/links-bench-${host.pid}.del`], { timeoutMs: 600_000 });
    return r;
  } finally {
    await host.destroy();
    await sleep(500);
  }
}

const methods: [string, (h: Host) => Promise<Timing>][] = [
  ['netplumb (in process)', library],
  ['netplumb (node process)', libraryProcess],
  ['ip -batch', ipBatch],
  ['pyroute2', pyroute2],
];
const times = new Map<string, Timing[]>(methods.map(([m]) => [m, []]));
const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
process.stdout.write(`${N} veth pairs: host side on bridge br0 and up, a /32 on the peer; ${ROUNDS} rounds, each in a fresh host\n`);
process.stdout.write(`load average before: ${load()}\n`);
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, fn] of methods) {
    times.get(name)!.push(await fresh(fn, name));
  }
}
process.stdout.write(`load average after:  ${load()}\n`);
const med = new Map([...times].map(([k, v]) => [k, median(v.map((t) => t.wall))]));
for (const [name, xs] of times) {
  process.stdout.write(`${name.padEnd(26)} median ${med.get(name)!.toFixed(0).padStart(6)} ms   (${xs.map((x) => x.wall.toFixed(0)).join(', ')})\n`);
}
process.stdout.write('where the time goes (medians, ms): wall = user CPU + kernel CPU + other (waiting: for a CPU, the RTNL lock, GC helpers)\n');
process.stdout.write(`  ${'method'.padEnd(26)}  wall   user  kernel  other   GC pauses (wall)\n`);
for (const [name, xs] of times) {
  const m = (f: (t: Timing) => number) => median(xs.map(f)).toFixed(0).padStart(5);
  const gc = xs[0]!.gc === undefined ? '' : m((t) => t.gc!);
  process.stdout.write(`  ${name.padEnd(26)} ${m((t) => t.wall)}  ${m((t) => t.user)}  ${m((t) => t.sys)}  ${m((t) => t.wall - t.user - t.sys)}   ${gc}\n`);
}
process.stdout.write(`pyroute2 measured inside python (import included, interpreter start not): median ${median(pyInside).toFixed(0)} ms\n`);
const ip = med.get('ip -batch')!;
const py = med.get('pyroute2')!;
const cpu = (name: string) => median(times.get(name)!.map((t) => t.user + t.sys));
for (const lib of ['netplumb (in process)', 'netplumb (node process)']) {
  const t = med.get(lib)!;
  process.stdout.write(
    `${lib}: ${(t / ip).toFixed(2)}× ip -batch (target ≤ ${lib.includes('in process') ? '1.00' : '1.30'}; CPU ${(cpu(lib) / cpu('ip -batch')).toFixed(2)}×), ` +
      `pyroute2 takes ${(py / t).toFixed(2)}× as long (target ≥ 2)\n`,
  );
}

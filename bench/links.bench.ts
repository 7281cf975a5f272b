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
 */
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { sandboxed, createHost, run, type Host } from '../netns-harness/index.js';
import { openHandleSync } from '../lib/net/handle.js';
import { createLink } from '../lib/net/link.js';
import { buildPairs, pairAddress as addr } from './links-lib.js';
import { median } from './stats.js';

const WORKER = fileURLToPath(new URL('./links-worker.js', import.meta.url));

await sandboxed();
const { values } = parseArgs({ options: { n: { type: 'string', default: '500' }, rounds: { type: 'string', default: '3' } } });
const N = Number(values.n);
const ROUNDS = Number(values.rounds);

/** The library, in this process (opening the socket included). */
async function library(host: Host): Promise<number> {
  const t0 = performance.now();
  await buildPairs(host.pid, N);
  return performance.now() - t0;
}

async function libraryProcess(host: Host): Promise<number> {
  const t0 = performance.now();
  // A clean environment, as a tool is started: NODE_EXTRA_CA_CERTS (set on some machines) makes Node parse a
  // CA bundle at start-up, ~30 ms that no netlink program needs.
  await run([process.execPath, WORKER, String(host.pid), String(N)], { timeoutMs: 600_000, cleanEnv: true });
  return performance.now() - t0;
}

async function ipBatch(host: Host): Promise<number> {
  const lines: string[] = [];
  for (let i = 0; i < N; i++) {
    lines.push(`link add vh${i} type veth peer name vc${i}`, `link set vh${i} master br0 up`, `addr add ${addr(i)} dev vc${i}`);
  }
  const file = `/run/links-bench-${host.pid}.batch`;
  writeFileSync(file, lines.join('\n') + '\n');
  const t0 = performance.now();
  await host.exec(['ip', '-batch', file], { timeoutMs: 600_000 });
  return performance.now() - t0;
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
async function pyroute2(host: Host): Promise<number> {
  const t0 = performance.now();
  const r = await host.exec(['/usr/bin/python3', '-c', PY, String(N)], { timeoutMs: 600_000 });
  pyInside.push(Number(r.stdout.trim()));
  return performance.now() - t0;
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

const methods: [string, (h: Host) => Promise<number>][] = [
  ['netplumb (in process)', library],
  ['netplumb (node process)', libraryProcess],
  ['ip -batch', ipBatch],
  ['pyroute2', pyroute2],
];
const times = new Map<string, number[]>(methods.map(([m]) => [m, []]));
process.stdout.write(`${N} veth pairs: host side on bridge br0 and up, a /32 on the peer; ${ROUNDS} rounds, each in a fresh host\n`);
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, fn] of methods) {
    const ms = await fresh(fn, name);
    times.get(name)!.push(ms);
  }
}
const med = new Map([...times].map(([k, v]) => [k, median(v)]));
for (const [name, xs] of times) {
  process.stdout.write(`${name.padEnd(26)} median ${med.get(name)!.toFixed(0).padStart(6)} ms   (${xs.map((x) => x.toFixed(0)).join(', ')})\n`);
}
process.stdout.write(`pyroute2 measured inside python (import included, interpreter start not): median ${median(pyInside).toFixed(0)} ms\n`);
const ip = med.get('ip -batch')!;
const py = med.get('pyroute2')!;
for (const lib of ['netplumb (in process)', 'netplumb (node process)']) {
  const t = med.get(lib)!;
  process.stdout.write(`${lib}: ${(t / ip).toFixed(2)}× ip -batch (target ≤ 1.30), pyroute2 takes ${(py / t).toFixed(2)}× as long (target ≥ 2)\n`);
}

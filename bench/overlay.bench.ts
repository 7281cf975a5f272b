/**
 * The overlay at scale and its cost per byte. Scale: N hosts (namespaces on an underlay bridge, a real etcd,
 * one netplumbd with the overlay each) start together; reported is the time from starting the agents until
 * every agent has programmed every other host (its log's `overlay-programmed` with N−1 hosts), for each N of
 * `--hosts 5,10,20`. Throughput: iperf3 from a container on one host to a container on another across the
 * overlay, against the same between two namespaces joined by a plain veth pair, as a ratio.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { createHost, overlayLab, sandboxed, waitFor, type AgentProcess, type Container, type OverlayLab } from '../netns-harness/index.js';

await sandboxed();

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : dflt;
};
const sizes = arg('hosts', '5,10,20').split(',').map(Number);
const seconds = Number(arg('seconds', '3'));
const say = (s: string) => process.stdout.write(`${s}\n`);

/** N hosts whose agents start at once; the time until every one has programmed all the others. */
async function lab(n: number): Promise<{ lab: OverlayLab; ms: number }> {
  const l = await overlayLab({ hosts: n, name: 'bench' });
  const t0 = performance.now();
  const agents = await Promise.all(l.hosts.map((h) => l.startAgent(h)));
  const programmed = (a: AgentProcess) => {
    const ev = a.events().filter((e) => e.event === 'overlay-programmed');
    return ev.length > 0 && ev[ev.length - 1]!.hosts === n - 1;
  };
  const done = await waitFor(() => agents.every(programmed), { timeoutMs: 180_000, intervalMs: 25 });
  const ms = performance.now() - t0;
  if (!done) throw new Error(`${n} hosts: not every host programmed every other within 180 s`);
  return { lab: l, ms };
}

async function attach(l: OverlayLab, i: number, name: string): Promise<{ c: Container; ip: string }> {
  const h = l.hosts[i]!;
  const c = await h.host.createContainer(name);
  const r = await l.add(h, c, `bench-${name}`);
  if (!r.ok) throw new Error(`ADD ${name}: ${r.stdout}${r.stderr}`);
  return { c, ip: r.json.ips[0].address.split('/')[0] };
}

/** iperf3 from `client` to `server` at `ip` for `seconds`; bits per second received. */
async function iperf(server: Container, client: Container, ip: string): Promise<number> {
  const srv = server.exec(['iperf3', '-s', '-1', '-B', ip], { check: false, timeoutMs: (seconds + 30) * 1000 });
  let r;
  let j;
  for (let i = 0; i < 100; i++) {
    r = await client.exec(['iperf3', '-c', ip, '-t', String(seconds), '-J'], { check: false, timeoutMs: (seconds + 20) * 1000 });
    try {
      j = JSON.parse(r.stdout);
    } catch {
      j = undefined;
    }
    if (r.exitCode === 0 && j?.end?.sum_received) break;
    await sleep(50); // the server is not listening yet
  }
  await srv;
  if (!j?.end?.sum_received) throw new Error(`iperf3: ${j?.error ?? `${r?.stdout}${r?.stderr}`}`);
  return j.end.sum_received.bits_per_second as number;
}

const rows: string[] = [];
let throughputDone = false;
for (const n of sizes) {
  const { lab: l, ms } = await lab(n);
  rows.push(`${String(n).padStart(3)} hosts: every host programmed every other ${(ms / 1000).toFixed(2)} s after the agents started`);
  say(rows[rows.length - 1]!);
  if (!throughputDone && n >= 2) {
    throughputDone = true;
    const a = await attach(l, 0, 'ta');
    const b = await attach(l, 1, 'tb');
    const overlay = await iperf(b.c, a.c, b.ip);
    // the reference path: two namespaces on one veth pair
    const p = await createHost('plain');
    const x = await p.createContainer('x');
    const y = await p.createContainer('y');
    await x.exec(['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', String(y.pid)]);
    await x.exec(['ip', 'addr', 'add', '10.99.0.1/24', 'dev', 'eth0']);
    await y.exec(['ip', 'addr', 'add', '10.99.0.2/24', 'dev', 'eth0']);
    for (const c of [x, y]) {
      await c.exec(['ip', 'link', 'set', 'eth0', 'up']);
      await c.exec(['ip', 'link', 'set', 'lo', 'up']);
    }
    const plain = await iperf(y, x, '10.99.0.2');
    await p.destroy();
    say(`throughput: overlay ${(overlay / 1e9).toFixed(2)} Gbit/s, plain veth ${(plain / 1e9).toFixed(2)} Gbit/s, ratio ${(overlay / plain).toFixed(2)}`);
  }
  await l.destroy();
}

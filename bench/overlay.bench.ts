/**
 * The overlay at scale and its cost per byte. Scale: N hosts (namespaces on an underlay bridge, a real etcd,
 * one netplumbd with the overlay each) start together; reported is the time from starting the agents until
 * every agent has programmed every other host (its log's `overlay-programmed` with N−1 hosts), for each N of
 * `--hosts 5,10,20`. Throughput: iperf3 from a container on one host to a container on another across the
 * overlay, against the same between two namespaces joined by a plain veth pair, as a ratio.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createHost,
  etcdServer,
  execPlugin,
  sandboxed,
  startAgentProcess,
  waitFor,
  type AgentProcess,
  type Container,
  type Host,
} from '../netns-harness/index.js';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';

await sandboxed();

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : dflt;
};
const sizes = arg('hosts', '5,10,20').split(',').map(Number);
const seconds = Number(arg('seconds', '3'));
const PLUGINS = resolve(dirname(fileURLToPath(import.meta.url)), '../plugins');
const say = (s: string) => process.stdout.write(`${s}\n`);

interface Lab {
  underlay: Host;
  hosts: { host: Host; agent: AgentProcess; stateDir: string }[];
  destroy(): Promise<void>;
}

async function lab(n: number): Promise<{ lab: Lab; ms: number }> {
  const dir = mkdtempSync('/run/np-overlay-bench-');
  const underlay = await createHost('underlay');
  await underlay.exec(['ip', 'link', 'add', 'ul', 'type', 'bridge']);
  await underlay.exec(['ip', 'addr', 'add', '10.0.255.254/16', 'dev', 'ul']);
  await underlay.exec(['ip', 'link', 'set', 'ul', 'up']);
  const etcd = etcdServer(underlay, '10.0.255.254');
  await etcd.start();
  const made: { host: Host; config: string; stateDir: string }[] = [];
  for (let i = 1; i <= n; i++) {
    const host = await createHost(`h${i}`);
    await host.exec(['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `ul${i}`, 'netns', String(underlay.pid)]);
    await host.exec(['ip', 'addr', 'add', `10.0.0.${i}/16`, 'dev', 'eth0']);
    await host.exec(['ip', 'link', 'set', 'eth0', 'up']);
    await underlay.exec(['ip', 'link', 'set', `ul${i}`, 'master', 'ul', 'up']);
    const stateDir = join(dir, `h${i}`);
    const config = join(dir, `h${i}.json`);
    writeFileSync(
      config,
      JSON.stringify({ name: 'bench', network: '10.244.0.0/16', etcd: { endpoints: [etcd.endpoint] }, underlay: 'eth0', node: `h${i}`, stateDir }),
    );
    made.push({ host, config, stateDir });
  }
  const t0 = performance.now();
  const agents = await Promise.all(
    made.map((m, i) => startAgentProcess({ socket: join(dir, `h${i + 1}.sock`), netns: m.host.netnsPath, args: ['--overlay', m.config] })),
  );
  const programmed = (a: AgentProcess) => {
    const ev = a.events().filter((e) => e.event === 'overlay-programmed');
    return ev.length > 0 && ev[ev.length - 1]!.hosts === n - 1;
  };
  const done = await waitFor(() => agents.every(programmed), { timeoutMs: 180_000, intervalMs: 25 });
  const ms = performance.now() - t0;
  if (!done) throw new Error(`${n} hosts: not every host programmed every other within 180 s`);
  const hosts = made.map((m, i) => ({ host: m.host, agent: agents[i]!, stateDir: m.stateDir }));
  return {
    ms,
    lab: {
      underlay,
      hosts,
      async destroy() {
        await Promise.all(hosts.map((h) => h.agent.stop()));
        await etcd.stop();
        for (const h of hosts) await h.host.destroy();
        await underlay.destroy();
      },
    },
  };
}

async function attach(h: Lab['hosts'][number], name: string): Promise<{ c: Container; ip: string }> {
  const c = await h.host.createContainer(name);
  const list = JSON.parse(readFileSync(join(h.stateDir, 'bench.conflist'), 'utf8'));
  const conf = { cniVersion: list.cniVersion, name: list.name, ...list.plugins[0], dataDir: join(h.stateDir, 'ipam') };
  const r = await execPlugin({
    file: join(PLUGINS, 'netplumb-overlay'),
    netns: h.host.netnsPath,
    stdin: JSON.stringify(conf),
    env: {
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: `bench-${name}`,
      CNI_NETNS: c.netnsPath,
      CNI_IFNAME: 'eth0',
      CNI_PATH: `${PLUGINS}:/usr/lib/cni`,
      NETPLUMB_AGENT_SOCKET: h.agent.socket,
    },
  });
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
    const a = await attach(l.hosts[0]!, 'ta');
    const b = await attach(l.hosts[1]!, 'tb');
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

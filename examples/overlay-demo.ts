/**
 * The overlay demo: three throwaway hosts on an underlay bridge, a real etcd, netplumbd with the VXLAN overlay
 * on each host, two containers per host attached with netplumb-overlay; then every container pings and
 * TCP-echoes every container on the other hosts. Runs inside a netns-harness sandbox: the machine's own network
 * is never touched, and everything (namespaces, etcd, agents) is gone when it exits. docs/OVERLAY.md.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createHost,
  etcdServer,
  execPlugin,
  ping,
  sandboxed,
  startAgentProcess,
  startEchoServer,
  tcpSend,
  waitFor,
  type AgentProcess,
  type Container,
  type Host,
} from '../netns-harness/index.js';

await sandboxed();

const say = (s: string) => process.stdout.write(`${s}\n`);
const PLUGINS = resolve(dirname(fileURLToPath(import.meta.url)), '../plugins');
const dir = mkdtempSync('/run/np-overlay-demo-');

const underlay = await createHost('underlay');
await underlay.exec(['ip', 'link', 'add', 'ul', 'type', 'bridge']);
await underlay.exec(['ip', 'addr', 'add', '192.0.2.254/24', 'dev', 'ul']);
await underlay.exec(['ip', 'link', 'set', 'ul', 'up']);
const etcd = etcdServer(underlay, '192.0.2.254');
await etcd.start();
say(`etcd ${etcd.endpoint} (in the underlay namespace)`);

interface DemoHost {
  n: number;
  host: Host;
  agent: AgentProcess;
  stateDir: string;
  ctrs: { c: Container; ip: string }[];
}
const hosts: DemoHost[] = [];
let ok = true;
try {
  for (const n of [1, 2, 3]) {
    const host = await createHost(`host${n}`);
    await host.exec(['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `ul${n}`, 'netns', String(underlay.pid)]);
    await host.exec(['ip', 'addr', 'add', `192.0.2.${n}/24`, 'dev', 'eth0']);
    await host.exec(['ip', 'link', 'set', 'eth0', 'up']);
    await underlay.exec(['ip', 'link', 'set', `ul${n}`, 'master', 'ul', 'up']);
    const stateDir = join(dir, `host${n}`);
    const config = join(dir, `host${n}.json`);
    writeFileSync(
      config,
      JSON.stringify({
        name: 'demo',
        network: '10.244.0.0/16',
        subnetPrefix: 24,
        vni: 1,
        etcd: { endpoints: [etcd.endpoint] },
        underlay: 'eth0',
        node: `host${n}`,
        stateDir,
      }),
    );
    const agent = await startAgentProcess({ socket: join(dir, `host${n}.sock`), netns: host.netnsPath, args: ['--overlay', config] });
    const leased = await waitFor(() => agent.events().find((e) => e.event === 'overlay-leased'), { timeoutMs: 20_000 });
    if (!leased) throw new Error(`host${n}: no lease\n${agent.log()}`);
    say(`host${n}: underlay 192.0.2.${n}, leased ${leased.subnet}, VTEP ${leased.vtepMac}, container MTU ${leased.mtu}`);
    hosts.push({ n, host, agent, stateDir, ctrs: [] });
  }
  for (const h of hosts) {
    const list = JSON.parse(readFileSync(join(h.stateDir, 'demo.conflist'), 'utf8'));
    for (const name of ['a', 'b']) {
      const c = await h.host.createContainer(`${name}`);
      const conf = { cniVersion: list.cniVersion, name: list.name, ...list.plugins[0], dataDir: join(h.stateDir, 'ipam') };
      const r = await execPlugin({
        file: join(PLUGINS, 'netplumb-overlay'),
        netns: h.host.netnsPath,
        stdin: JSON.stringify(conf),
        env: {
          CNI_COMMAND: 'ADD',
          CNI_CONTAINERID: `demo-${h.n}${name}`,
          CNI_NETNS: c.netnsPath,
          CNI_IFNAME: 'eth0',
          CNI_PATH: `${PLUGINS}:/usr/lib/cni`,
          NETPLUMB_AGENT_SOCKET: h.agent.socket,
        },
      });
      if (!r.ok) throw new Error(`ADD on host${h.n}: ${r.stdout}${r.stderr}`);
      const ip = r.json.ips[0].address.split('/')[0];
      say(`host${h.n}/${name}: eth0 ${ip}`);
      h.ctrs.push({ c, ip });
    }
  }
  for (const h of hosts) {
    const want = hosts.length - 1;
    await waitFor(async () => (await h.host.ip<unknown[]>('route', 'show', 'dev', 'np-vx1')).length >= want, { timeoutMs: 15_000 });
    say(
      `host${h.n} routes via the tunnel: ${(await h.host.ip<{ dst: string; gateway: string }[]>('route', 'show', 'dev', 'np-vx1')).map((r) => `${r.dst} via ${r.gateway}`).join(', ')}`,
    );
  }
  const all = hosts.flatMap((h) => h.ctrs.map((x) => ({ ...x, h })));
  const servers = await Promise.all(all.map((x) => startEchoServer(x.c, 7000, '0.0.0.0')));
  for (const from of all) {
    const results: string[] = [];
    for (const to of all.filter((t) => t.h !== from.h)) {
      const p = await ping(from.c, to.ip, { count: 1, timeoutSec: 3 });
      const t = await tcpSend(from.c, to.ip, 7000);
      ok &&= p.ok && t.ok;
      results.push(`${to.ip} ${p.ok ? 'ping ok' : 'ping FAILED'}/${t.ok ? 'tcp ok' : 'tcp FAILED'}`);
    }
    say(`host${from.h.n} ${from.ip} → ${results.join(', ')}`);
  }
  for (const s of servers) await s.stop();
} catch (e) {
  ok = false;
  say(`demo failed: ${(e as Error).message}`);
} finally {
  for (const h of hosts) await h.agent.stop();
  await etcd.stop();
  for (const h of hosts) await h.host.destroy();
  await underlay.destroy();
}
say(ok ? 'every container reached every container on the other hosts; cleaned up' : 'FAILED (cleaned up)');
process.exitCode = ok ? 0 : 1;

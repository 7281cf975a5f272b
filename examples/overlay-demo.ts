/**
 * The overlay demo: three throwaway hosts on an underlay bridge, a real etcd, netplumbd with the VXLAN overlay
 * on each host, two containers per host attached with netplumb-overlay; then every container pings and
 * TCP-echoes every container on the other hosts. Runs inside a netns-harness sandbox: the machine's own network
 * is never touched, and everything (namespaces, etcd, agents) is gone when it exits. docs/OVERLAY.md.
 */
import { ping, sandboxed, startEchoServer, tcpSend, waitFor, overlayLab, type Container } from '../netns-harness/index.js';

await sandboxed();

const say = (s: string) => process.stdout.write(`${s}\n`);
const lab = await overlayLab({ hosts: 3, name: 'demo' });
say(`etcd ${lab.etcd.endpoint} (in the underlay namespace)`);
const ctrs = new Map<number, { c: Container; ip: string }[]>();
let ok = true;
try {
  for (const h of lab.hosts) {
    await lab.startAgent(h);
    const s = lab.state(h);
    say(`h${h.n}: underlay 192.0.2.${h.n}, leased ${s.subnet}, VTEP ${s.vtepMac}, container MTU ${s.mtu}`);
  }
  for (const h of lab.hosts) {
    ctrs.set(h.n, []);
    for (const name of ['a', 'b']) {
      const c = await h.host.createContainer(name);
      const r = await lab.add(h, c, `demo-${h.n}${name}`);
      if (!r.ok) throw new Error(`ADD on h${h.n}: ${r.stdout}${r.stderr}`);
      const ip = r.json.ips[0].address.split('/')[0];
      say(`h${h.n}/${name}: eth0 ${ip}`);
      ctrs.get(h.n)!.push({ c, ip });
    }
  }
  for (const h of lab.hosts) {
    const want = lab.hosts.length - 1;
    await waitFor(async () => (await h.host.ip<unknown[]>('route', 'show', 'dev', 'np-vx1')).length >= want, { timeoutMs: 15_000 });
    const routes = await h.host.ip<{ dst: string; gateway: string }[]>('route', 'show', 'dev', 'np-vx1');
    say(`h${h.n} routes via the tunnel: ${routes.map((r) => `${r.dst} via ${r.gateway}`).join(', ')}`);
  }
  const hosts = lab.hosts.map((h) => ({ n: h.n, ctrs: ctrs.get(h.n)! }));
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
    say(`h${from.h.n} ${from.ip} → ${results.join(', ')}`);
  }
  for (const s of servers) await s.stop();
} catch (e) {
  ok = false;
  say(`demo failed: ${(e as Error).message}`);
} finally {
  await lab.destroy();
}
say(ok ? 'every container reached every container on the other hosts; cleaned up' : 'FAILED (cleaned up)');
process.exitCode = ok ? 0 : 1;

/**
 * The main demo: a throwaway host with a bridge and two containers on it, who then talk.
 * The network is built with netplumb (no `ip` commands); the harness supplies the throwaway host, the
 * containers and the ping. Runs inside a netns-harness sandbox, so the machine's own network is never touched
 * and everything is gone when it exits.
 */
import { sandboxed, createHost, ping, tcpRoundTrip } from '../netns-harness/index.js';
import { openHandleSync, ensureBridge, createVethPair, addAddress, addRoute, setLinkUp, getLink, listAddresses, waitForOperUp } from '../lib/index.js';

await sandboxed();

const say = (s: string) => process.stdout.write(`${s}\n`);
const host = await createHost('demo-host');
say(`host namespace: ${host.netnsId} (pid ${host.pid})`);

const h = openHandleSync({ pid: host.pid });
await ensureBridge(h, 'netplumb0', { address: '10.88.0.1/24', up: true });
say('bridge netplumb0 10.88.0.1/24 up');

const containers = [];
for (const [i, name] of ['web', 'client'].entries()) {
  const c = await host.createContainer(name);
  const address = `10.88.0.${i + 2}`;
  const hc = openHandleSync({ pid: c.pid });
  // the container's end is created directly inside its namespace, already named eth0
  await createVethPair(h, { name: `veth-${name}`, master: 'netplumb0', up: true, peer: { name: 'eth0', netns: hc } });
  await setLinkUp(hc, 'lo');
  await addAddress(hc, { link: 'eth0', cidr: `${address}/24` });
  await setLinkUp(hc, 'eth0');
  await addRoute(hc, { dst: 'default', gateway: '10.88.0.1' });
  // both ends: the kernel lets a link transmit only once its link watch has seen the carrier
  await waitForOperUp(hc, 'eth0');
  await waitForOperUp(h, `veth-${name}`);
  const eth0 = await getLink(hc, 'eth0');
  const v4 = (await listAddresses(hc, { link: eth0.index, family: 4 }))[0]!;
  say(`container ${name} (pid ${c.pid}): eth0 ${eth0.mac} ${v4.cidr}`);
  hc.close();
  containers.push({ c, address });
}
h.close();

const [web, client] = containers as [(typeof containers)[0], (typeof containers)[0]];
const p = await ping(client.c, web.address, { count: 3, interval: 0.2 });
say(`ping ${client.c.name} -> ${web.c.name} (${web.address}): ${p.received}/${p.sent} replies`);
say(p.output.trim().split('\n').slice(-2).join('\n'));
const gw = await ping(web.c, '10.88.0.1');
say(`ping ${web.c.name} -> gateway 10.88.0.1: ${gw.ok ? 'ok' : 'FAILED'}`);
const tcp = await tcpRoundTrip(web.c, client.c, web.address, 8080);
say(`tcp ${client.c.name} -> ${web.c.name}:8080 echo: ${tcp.ok ? JSON.stringify(tcp.reply) : `FAILED ${tcp.error}`}`);

await host.destroy();
say('cleaned up: host, containers and bridge are gone');
process.exitCode = p.ok && gw.ok && tcp.ok ? 0 : 1;

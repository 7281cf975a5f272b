/**
 * The main demo: a throwaway host with a bridge and two containers on it, who then talk.
 * Runs inside a netns-harness sandbox, so the machine's own network is never touched and everything is
 * gone when it exits.
 */
import { sandboxed, createHost, ping, tcpRoundTrip } from '../netns-harness/index.js';

await sandboxed();

const say = (s: string) => process.stdout.write(`${s}\n`);
const host = await createHost('demo-host');
say(`host namespace: ${host.netnsId} (pid ${host.pid})`);

// TODO(issue 3): build the bridge and the veth pairs with the library instead of iproute2.
await host.exec(['ip', 'link', 'add', 'netplumb0', 'type', 'bridge']);
await host.exec(['ip', 'addr', 'add', '10.88.0.1/24', 'dev', 'netplumb0']);
await host.exec(['ip', 'link', 'set', 'netplumb0', 'up']);
say('bridge netplumb0 10.88.0.1/24 up');

const containers = [];
for (const [i, name] of ['web', 'client'].entries()) {
  const c = await host.createContainer(name);
  const address = `10.88.0.${i + 2}`;
  await host.exec(['ip', 'link', 'add', `veth-${name}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', String(c.pid)]);
  await host.exec(['ip', 'link', 'set', `veth-${name}`, 'master', 'netplumb0', 'up']);
  await c.exec(['ip', 'link', 'set', 'lo', 'up']);
  await c.exec(['ip', 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
  await c.exec(['ip', 'link', 'set', 'eth0', 'up']);
  await c.exec(['ip', 'route', 'add', 'default', 'via', '10.88.0.1']);
  const [eth0] = await c.ip<any[]>('addr', 'show', 'dev', 'eth0');
  const v4 = eth0.addr_info.find((a: any) => a.family === 'inet');
  say(`container ${name} (pid ${c.pid}): eth0 ${eth0.address} ${v4.local}/${v4.prefixlen}`);
  containers.push({ c, address });
}

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

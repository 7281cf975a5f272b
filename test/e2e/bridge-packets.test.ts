/**
 * Packets prove netplumb-bridge: containers on one bridge reach each other and the gateway; masquerade makes a
 * container's connections to the outside come from the host's address (whoami); a published port answers from
 * the host, from the outside, from another container and from the container itself (hairpin); containers on
 * two isolated netplumb bridges cannot reach each other unless both allow it; the spoof check drops a forged
 * MAC; the gratuitous ARP after ADD teaches the host the container's MAC before any traffic.
 *
 *   outside (Host)  eth0 192.0.2.2/24 ── up0 192.0.2.1/24  host (Host: plugins run here)
 *   containers      eth0 ── veth<hash> ── bridges of the networks under test
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHost, ping, sandboxed, startEchoServer, tcpSend, waitFor, type Host, must } from '../../netns-harness/index.js';
import { addContainer, bridgeConf, makeOutsideOf } from '../fixtures/bridge-lab.js';
import { cniRuntime } from '../fixtures/cni-runtime.js';

await sandboxed();

let host: Host;
let outside: Host;

test.before.each(async () => {
  host = await createHost('host');
  outside = await makeOutsideOf(host);
});
test.after.each(async () => {
  await outside.destroy();
  await host.destroy();
});

const attach = (conf: any, name: string, extra: Record<string, unknown> = {}) => addContainer(host, conf, name, extra);
const ipOf = (r: any) => r.ips[0].address.split('/')[0];

test('two containers on one bridge reach each other and the gateway; the outside sees the host through masquerade (IPv4 and IPv6)', async () => {
  const conf = bridgeConf({ isGateway: true, ipMasq: true, routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }], subnet: ['10.77.0.0/24', 'fd77::/64'] });
  const a = await attach(conf, 'a');
  const b = await attach(conf, 'b');
  assert.ok((await ping(a.ctr, ipOf(b.result), { count: 2, interval: 0.2 })).ok, 'a → b');
  assert.ok((await ping(b.ctr, ipOf(a.result), { count: 2, interval: 0.2 })).ok, 'b → a');
  assert.ok((await ping(a.ctr, '10.77.0.1')).ok, 'a → gateway');
  assert.ok((await ping(b.ctr, 'fd77::2')).ok, 'b → a over IPv6');
  const who = await startEchoServer(outside, 9000, '::', { whoami: true });
  try {
    const seen = await tcpSend(a.ctr, '192.0.2.2', 9000, 'hello');
    assert.is(seen.reply, '192.0.2.1', `the outside sees the host's address, not the container's: ${seen.reply} ${seen.error}`);
    const seen6 = await tcpSend(b.ctr, '2001:db8:ff::2', 9000, 'hello');
    assert.is(seen6.reply, '2001:db8:ff::1', `IPv6 too: ${seen6.reply} ${seen6.error}`);
  } finally {
    await who.stop();
  }
});

test('without ipMasq the outside cannot answer (it has no route to the containers): masquerade is what works', async () => {
  const conf = bridgeConf({ isGateway: true, routes: [{ dst: '0.0.0.0/0' }] });
  const a = await attach(conf, 'a');
  const who = await startEchoServer(outside, 9000, '0.0.0.0', { whoami: true });
  try {
    const seen = await tcpSend(a.ctr, '192.0.2.2', 9000, 'hello', 1500);
    assert.not.ok(seen.ok);
    assert.is(seen.reply, '');
  } finally {
    await who.stop();
  }
});

test('a published port answers from the host, 127.0.0.1, the outside, another container and the container itself', async () => {
  const conf = bridgeConf({ isGateway: true, ipMasq: true, routes: [{ dst: '0.0.0.0/0' }], capabilities: { portMappings: true } });
  const portMappings = [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }];
  const a = await attach(conf, 'a', { runtimeConfig: { portMappings } });
  const b = await attach(conf, 'b');
  const srv = await startEchoServer(a.ctr, 80);
  try {
    for (const [who, from, to] of [
      ['the host, to its uplink address', host, '192.0.2.1'],
      ['the host, to the bridge address', host, '10.77.0.1'],
      ['the host, to 127.0.0.1', host, '127.0.0.1'],
      ['the outside', outside, '192.0.2.1'],
      ['another container (hairpin through the host)', b.ctr, '192.0.2.1'],
      ['the container itself (hairpin mode on its port)', a.ctr, '192.0.2.1'],
    ] as const) {
      const r = await tcpSend(from, to, 8080, `via ${to}`);
      assert.ok(r.ok, `${who}: ${r.error}`);
      assert.is(r.reply, `via ${to}`);
    }
  } finally {
    await srv.stop();
  }
  must(await cniRuntime({ host }).exec('DEL', { ...conf, runtimeConfig: { portMappings } }, a.att));
  const gone = await tcpSend(host, '192.0.2.1', 8080, 'x', 1000);
  assert.not.ok(gone.ok, 'DEL unpublished the port');
});

test('containers on two isolated netplumb bridges cannot reach each other; both allowing it opens the way', async () => {
  const netA = bridgeConf({ name: 'neta', bridge: 'br-a', isGateway: true, ipMasq: true, routes: [{ dst: '0.0.0.0/0' }], subnet: '10.61.0.0/24' });
  const netB = bridgeConf({ name: 'netb', bridge: 'br-b', isGateway: true, ipMasq: true, routes: [{ dst: '0.0.0.0/0' }], subnet: '10.62.0.0/24' });
  const a = await attach(netA, 'a');
  const b = await attach(netB, 'b');
  assert.ok((await ping(a.ctr, '10.61.0.1')).ok, 'a reaches its gateway');
  assert.ok((await ping(b.ctr, '10.62.0.1')).ok, 'b reaches its gateway');
  assert.not.ok((await ping(a.ctr, ipOf(b.result), { timeoutSec: 1 })).ok, 'a cannot reach b');
  assert.not.ok((await ping(b.ctr, ipOf(a.result), { timeoutSec: 1 })).ok, 'b cannot reach a');
  const srv = await startEchoServer(b.ctr, 7000);
  try {
    assert.not.ok((await tcpSend(a.ctr, ipOf(b.result), 7000, 'x', 1000)).ok, 'no TCP either');
  } finally {
    await srv.stop();
  }
  const who = await startEchoServer(outside, 9000, '0.0.0.0', { whoami: true });
  try {
    assert.is((await tcpSend(a.ctr, '192.0.2.2', 9000)).reply, '192.0.2.1', 'isolation does not cut the way out');
  } finally {
    await who.stop();
  }

  // Two more networks that allow each other (each ADD rewrites its bridge's isolation).
  const netC = bridgeConf({ name: 'netc', bridge: 'br-c', isGateway: true, routes: [{ dst: '0.0.0.0/0' }], subnet: '10.63.0.0/24', allowBridges: ['br-d'] });
  const netD = bridgeConf({ name: 'netd', bridge: 'br-d', isGateway: true, routes: [{ dst: '0.0.0.0/0' }], subnet: '10.64.0.0/24', allowBridges: ['br-c'] });
  const c = await attach(netC, 'c');
  const d = await attach(netD, 'd');
  assert.ok((await ping(c.ctr, ipOf(d.result), { count: 2, interval: 0.2 })).ok, 'c reaches d: both allow it');
  assert.not.ok((await ping(c.ctr, ipOf(a.result), { timeoutSec: 1 })).ok, 'but not a');
  // isolate: false opens a bridge to the non-isolated ones only
});

test('the spoof check drops frames with a forged MAC', async () => {
  const conf = bridgeConf({ isGateway: true, macspoofchk: true });
  const a = await attach(conf, 'a');
  assert.ok((await ping(a.ctr, '10.77.0.1')).ok);
  await a.ctr.exec(['ip', 'link', 'set', 'eth0', 'address', '02:66:66:66:66:66']);
  await host.exec(['ip', 'neigh', 'flush', 'dev', 'netplumb0']);
  assert.not.ok((await ping(a.ctr, '10.77.0.1', { timeoutSec: 1 })).ok, 'a forged source MAC goes nowhere');
  await a.ctr.exec(['ip', 'link', 'set', 'eth0', 'address', a.result.interfaces[2].mac]);
  assert.ok((await ping(a.ctr, '10.77.0.1', { count: 3, interval: 0.3 })).ok, 'the real MAC works again');
});

test("the gratuitous ARP after ADD: the host knows the container's MAC before any traffic", async () => {
  await host.exec(['ip', 'link', 'add', 'netplumb0', 'type', 'bridge']);
  await host.exec(['sysctl', '-qw', 'net.ipv4.conf.netplumb0.arp_accept=1']);
  const conf = bridgeConf({ isGateway: true });
  const a = await attach(conf, 'a');
  let neigh: any[] = [];
  await waitFor(async () => (neigh = await host.ip<any[]>('neigh', 'show', 'dev', 'netplumb0')).some((n) => n.dst === '10.77.0.2'));
  const entry = neigh.find((n) => n.dst === '10.77.0.2');
  assert.ok(entry, `neighbour entry from the gratuitous ARP: ${JSON.stringify(neigh)}`);
  assert.is(entry.lladdr, a.result.interfaces[2].mac);
});

test.run();

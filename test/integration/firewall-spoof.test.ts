/**
 * lib/firewall spoof check (`macspoofchk`): a container's veth may send only frames with its
 * own MAC, and ARP/IPv4/IPv6 only from its own addresses. Forged frames are made by hand (AF_PACKET) and by
 * `arping` inside the container; the oracles are another container's UDP socket, the host's neighbour table
 * and the bridge's forwarding database. A container without the check proves the forgeries would work.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  createHost,
  destroyAll,
  ipJson,
  ping,
  run,
  sandboxed,
  sendRawFrames,
  startUdpServer,
  tcpRoundTrip,
  udpFrame,
  waitFor,
  type UdpServer,
} from '../../netns-harness/index.js';
import { addContainerRules, checkContainerRules, removeContainerRules, type ContainerFirewall } from '../../lib/firewall/index.js';
import { attachToBr0, enableForwarding, makeBridge, nftTable, type Attached } from '../fixtures/bridge-lab.js';

await sandboxed();

enableForwarding();
await makeBridge('br0', ['10.88.0.1/16', 'fd88::1/64']);
const lab = await createHost('lab');
const a = await attachToBr0(lab, 'a', 2);
const b = await attachToBr0(lab, 'b', 3);
const c = await attachToBr0(lab, 'c', 4);
const FORGED_MAC = '02:66:66:66:66:66';

function spec(x: Attached, id: string, spoofCheck: boolean): ContainerFirewall {
  return { containerId: id, ifname: x.ifname, network: 'spoofnet', bridge: 'br0', ips: x.ips, hostVeth: x.hostVeth, mac: x.mac, spoofCheck };
}

const v4 = (x: Attached) => x.ips[0]!.split('/')[0]!;
const v6 = (x: Attached) => x.ips[1]!.split('/')[0]!;

/**
 * Sends `forged` frames from `from` to b's UDP server, then one legitimate frame; once that arrives (the
 * frames share one path, so whatever was sent before has arrived too), returns the messages b got.
 */
async function deliver(srv: UdpServer, from: Attached, forged: { src?: string; srcIp?: string; family: 4 | 6; tag: string }[]): Promise<string[]> {
  const marker = `legit-${Math.random().toString(36).slice(2, 8)}`;
  const frames = forged.map((f) =>
    udpFrame({
      src: f.src ?? from.mac,
      dst: b.mac,
      srcIp: f.srcIp ?? (f.family === 4 ? v4(from) : v6(from)),
      dstIp: f.family === 4 ? v4(b) : v6(b),
      sport: 4000,
      dport: 5000,
      payload: f.tag,
    }),
  );
  frames.push(udpFrame({ src: from.mac, dst: b.mac, srcIp: v4(from), dstIp: v4(b), sport: 4000, dport: 5000, payload: marker }));
  await sendRawFrames(from.container, 'eth0', frames);
  await waitFor(() => srv.received().some((r) => r.message === marker));
  const got = srv.received().map((r) => r.message);
  assert.ok(got.includes(marker), `the legitimate frame from ${from.container.name} arrived (${got.join(',')})`);
  return got.filter((m) => forged.some((f) => f.tag === m));
}

async function hostNeighbour(address: string): Promise<string | undefined> {
  const n = await ipJson<any[]>(['neigh', 'show', address, 'dev', 'br0']);
  return n[0]?.lladdr;
}

async function fdbHas(mac: string): Promise<boolean> {
  const fdb = await run(['bridge', '-j', 'fdb', 'show', 'br', 'br0']);
  return (JSON.parse(fdb.stdout || '[]') as any[]).some((e) => e.mac === mac);
}

async function arping(from: Attached, o: { srcIp: string; srcMac?: string; target: string }) {
  const argv = ['arping', '-q', '-c', '1', '-w', '1', '-i', 'eth0', '-S', o.srcIp, ...(o.srcMac ? ['-s', o.srcMac] : []), o.target];
  await from.container.exec(argv, { check: false });
}

let srv: UdpServer;
test.before(async () => {
  srv = await startUdpServer(b.container, 5000);
  await addContainerRules(spec(a, 'ctr-a', true));
  await addContainerRules(spec(c, 'ctr-c', false));
});

test('control: without the check, forged MAC, IPv4 and IPv6 sources and ARP all get through', async () => {
  const got = await deliver(srv, c, [
    { src: FORGED_MAC, family: 4, tag: 'c-mac' },
    { srcIp: '10.88.0.99', family: 4, tag: 'c-ip4' },
    { srcIp: 'fd88::99', family: 6, tag: 'c-ip6' },
  ]);
  assert.equal(got.sort(), ['c-ip4', 'c-ip6', 'c-mac']);
  assert.ok(await fdbHas(FORGED_MAC), 'the bridge learned the forged MAC');
  await arping(c, { srcIp: '10.88.0.77', target: '10.88.0.1' });
  assert.is(await hostNeighbour('10.88.0.77'), c.mac, 'the host believed c owns 10.88.0.77');
  await arping(c, { srcIp: '10.88.0.76', srcMac: FORGED_MAC, target: '10.88.0.1' });
  assert.is(await hostNeighbour('10.88.0.76'), FORGED_MAC, 'and that 10.88.0.76 is at a forged MAC');
});

test('with the check: forged source MAC, IPv4 and IPv6 addresses are dropped; real ones pass', async () => {
  await run(['bridge', 'fdb', 'del', FORGED_MAC, 'dev', c.hostVeth, 'master'], { check: false });
  const got = await deliver(srv, a, [
    { src: FORGED_MAC, family: 4, tag: 'a-mac' },
    { src: FORGED_MAC, srcIp: v4(c), family: 4, tag: 'a-mac-ip' },
    { srcIp: '10.88.0.99', family: 4, tag: 'a-ip4' },
    { srcIp: v4(c), family: 4, tag: 'a-ip4-neighbour' },
    { srcIp: 'fd88::99', family: 6, tag: 'a-ip6' },
    { family: 6, tag: 'a-ip6-real' },
  ]);
  assert.equal(got, ['a-ip6-real'], 'only the real IPv6 source passed');
  assert.not.ok(await fdbHas(FORGED_MAC), 'the forged MAC was not even learned by the bridge');

  assert.ok((await ping(a.container, v4(b))).ok, 'ping v4');
  assert.ok((await ping(a.container, v6(b))).ok, 'ping v6');
  assert.ok((await ping(a.container, '10.88.0.1')).ok, 'ping the gateway');
  assert.ok((await tcpRoundTrip(b.container, a.container, v4(b), 7300)).ok, 'TCP');

  // The drop rules counted what they dropped (nft's own view).
  const rules = (await nftTable('bridge')).filter((o) => o.rule && /-spoof$/.test(o.rule.chain));
  const dropped = rules.reduce((n, o) => n + (o.rule.expr.find((e: any) => e.counter)?.counter.packets ?? 0), 0);
  assert.ok(dropped >= 5, `counters saw the forged frames (${dropped})`);
});

test('with the check: ARP claiming another address or another MAC is dropped (arping)', async () => {
  await run(['ip', 'neigh', 'flush', 'dev', 'br0', 'to', v4(a)], { check: false });
  await arping(a, { srcIp: '10.88.0.78', target: '10.88.0.1' });
  await arping(a, { srcIp: v4(c), target: '10.88.0.1' });
  await arping(a, { srcIp: v4(a), srcMac: FORGED_MAC, target: '10.88.0.1' });
  assert.is(await hostNeighbour(v4(a)), undefined, "a's own address with a forged MAC: ignored");
  await arping(a, { srcIp: v4(a), target: '10.88.0.1' }); // the real thing, last
  await waitFor(async () => (await hostNeighbour(v4(a))) !== undefined);
  assert.is(await hostNeighbour(v4(a)), a.mac, 'a real ARP from a is believed');
  assert.is(await hostNeighbour('10.88.0.78'), undefined, 'a claimed 10.88.0.78: ignored');
  assert.is.not(await hostNeighbour(v4(c)), a.mac, "a claimed c's address: ignored");
});

test('CHECK sees the spoof chain; DEL lifts it (forgeries pass again) and touches nothing else', async () => {
  assert.equal(await checkContainerRules(spec(a, 'ctr-a', true)), []);
  assert.ok(await removeContainerRules({ containerId: 'ctr-a', ifname: 'eth0', network: 'spoofnet' }));
  const got = await deliver(srv, a, [{ srcIp: '10.88.0.99', family: 4, tag: 'a-after-del' }]);
  assert.equal(got, ['a-after-del']);
  const spoofMap = (await nftTable('bridge')).find((o) => o.map?.name === 'spoof');
  assert.equal(spoofMap?.map.elem ?? [], [], 'no spoof entries left');
  assert.equal(await checkContainerRules(spec(c, 'ctr-c', false)), [], "c's rules intact");
});

test.after(async () => {
  await srv.stop();
  await destroyAll();
});

test.run();

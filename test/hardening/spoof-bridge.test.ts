/**
 * Spoofing through the executed netplumb-bridge:
 *  - `macspoofchk: true`: frames from the container with another source MAC, another source IPv4 or IPv6
 *    address (hand-made with netns-harness's raw frames), and ARP claiming another address (`arping`), never
 *    reach a second container or the host; genuine frames, pings and ARP do. A container of the same network
 *    without the check sends the same forgeries and they do arrive: the test can fail.
 *  - IPv6 router advertisements from a container are ignored by the host (accept_ra=0 on the bridge and the
 *    host veth, as the fix for CVE-2020-13401 does): the host gains no address, prefix route or default route
 *    — although the RA did reach the host's IPv6 input (an nft counter says so). The same RA on the same
 *    bridge with accept_ra=2 gives the host a SLAAC address and a default route: the test can fail. Another
 *    container on the bridge ignores it too (accept_ra=0 on its interface), and takes the prefix once its
 *    accept_ra is back at the kernel's default.
 * Oracles: a UDP server in the victim, the host's neighbour table (`ip -j neigh`), `ip -j -6 addr/route`,
 * /proc/sys read through nsenter, nft counters.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  createHost,
  destroyAll,
  ping,
  routerAdvertFrame,
  run,
  sandboxed,
  sendRawFrames,
  startUdpServer,
  udpFrame,
  waitFor,
  must,
  type Container,
  type Host,
  type UdpServer,
} from '../../netns-harness/index.js';
import { bridgeConf, sysctl } from '../fixtures/bridge-lab.js';
import { cniRuntime } from '../fixtures/cni-runtime.js';

await sandboxed();

const BRIDGE = 'npspoof0';
const FORGED_MAC = '02:66:66:66:66:66';
const ROGUE_PREFIX = '2001:db8:bad::';

interface Member {
  c: Container;
  id: string;
  mac: string;
  hostVeth: string;
  v4: string;
  v6: string;
}

let host: Host;
let attacker: Member; // macspoofchk: true
let victim: Member;
let control: Member; // the same network without the check
let srv: UdpServer;

const dual = bridgeConf({ name: 'spoofnet', bridge: BRIDGE, isGateway: true, subnet: ['10.93.0.0/24', 'fd93::/64'] });

async function attach(id: string, macspoofchk: boolean): Promise<Member> {
  const c = await host.createContainer(id);
  const r = must(await cniRuntime({ host }).exec('ADD', { ...dual, macspoofchk }, { containerId: id, netns: c.netnsPath, ifname: 'eth0' }), `ADD ${id}`).json;
  const addr = (f: string) => r.ips.map((i: any) => i.address.split('/')[0]).find((a: string) => a.includes(f));
  return { c, id, mac: r.interfaces[2].mac, hostVeth: r.interfaces[1].name, v4: addr('.'), v6: addr(':') };
}

test.before(async () => {
  host = await createHost('spoof');
  attacker = await attach('attacker', true);
  victim = await attach('victim', true);
  control = await attach('control', false);
  srv = await startUdpServer(victim.c, 5000);
});

test.after(async () => {
  await srv?.stop();
  await destroyAll();
});

/**
 * Sends `forged` UDP frames from `from` to the victim, then a genuine one; once that has arrived (one path,
 * so the earlier ones have too), returns which forged tags the victim got.
 */
async function deliver(from: Member, forged: { src?: string; srcIp?: string; family: 4 | 6; tag: string }[]): Promise<string[]> {
  const marker = `genuine-${from.id}-${Math.random().toString(36).slice(2, 8)}`;
  const frame = (f: { src?: string; srcIp?: string; family: 4 | 6 }, payload: string) =>
    udpFrame({
      src: f.src ?? from.mac,
      dst: victim.mac,
      srcIp: f.srcIp ?? (f.family === 4 ? from.v4 : from.v6),
      dstIp: f.family === 4 ? victim.v4 : victim.v6,
      sport: 4000,
      dport: 5000,
      payload,
    });
  await sendRawFrames(from.c, 'eth0', [...forged.map((f) => frame(f, f.tag)), frame({ family: 4 }, marker)]);
  await waitFor(() => srv.received().some((r) => r.message === marker));
  const got = srv.received().map((r) => r.message);
  assert.ok(got.includes(marker), `the genuine frame from ${from.id} arrived (${got.join(',')})`);
  return got.filter((m) => forged.some((f) => f.tag === m)).sort();
}

const neighbour = async (address: string): Promise<string | undefined> => (await host.ip<any[]>('neigh', 'show', address, 'dev', BRIDGE))[0]?.lladdr;

async function arping(from: Member, o: { srcIp: string; srcMac?: string }): Promise<void> {
  await from.c.exec(['arping', '-q', '-c', '1', '-w', '1', '-i', 'eth0', '-S', o.srcIp, ...(o.srcMac ? ['-s', o.srcMac] : []), '10.93.0.1'], { check: false });
}

test('control: without macspoofchk, a forged source MAC, IPv4 and IPv6 address and a forged ARP all get through', async () => {
  const got = await deliver(control, [
    { src: FORGED_MAC, family: 4, tag: 'control-mac' },
    { srcIp: '10.93.0.99', family: 4, tag: 'control-ip4' },
    { srcIp: attacker.v4, family: 4, tag: 'control-ip4-of-another' },
    { srcIp: 'fd93::99', family: 6, tag: 'control-ip6' },
  ]);
  assert.equal(got, ['control-ip4', 'control-ip4-of-another', 'control-ip6', 'control-mac']);
  await arping(control, { srcIp: '10.93.0.77' });
  await waitFor(async () => (await neighbour('10.93.0.77')) !== undefined);
  assert.is(await neighbour('10.93.0.77'), control.mac, 'the host believed the control owns 10.93.0.77');
});

test('macspoofchk: forged source MAC, IPv4 and IPv6 addresses never reach another container; genuine frames do', async () => {
  const got = await deliver(attacker, [
    { src: FORGED_MAC, family: 4, tag: 'mac' },
    { src: control.mac, family: 4, tag: 'mac-of-another' },
    { srcIp: '10.93.0.99', family: 4, tag: 'ip4' },
    { srcIp: control.v4, family: 4, tag: 'ip4-of-another' },
    { srcIp: 'fd93::99', family: 6, tag: 'ip6' },
    { src: FORGED_MAC, srcIp: control.v6, family: 6, tag: 'mac-and-ip6' },
    { family: 6, tag: 'genuine-ip6' },
  ]);
  assert.equal(got, ['genuine-ip6'], 'only the genuine IPv6 frame arrived');
  assert.ok((await ping(attacker.c, victim.v4)).ok, 'ping the victim (IPv4)');
  assert.ok((await ping(attacker.c, victim.v6)).ok, 'ping the victim (IPv6)');
  assert.ok((await ping(attacker.c, '10.93.0.1')).ok, 'ping the gateway');
  // nft's own count of what the attacker's spoof chain dropped
  const r = await run(['nft', '-j', 'list', 'table', 'bridge', 'netplumb'], { netns: host.netnsPath });
  const dropped = (JSON.parse(r.stdout).nftables as any[])
    .filter((o) => o.rule && /-spoof$/.test(o.rule.chain) && String(o.rule.comment).includes(`id=${attacker.id} `))
    .reduce((n, o) => n + (o.rule.expr.find((e: any) => e.counter)?.counter.packets ?? 0), 0);
  assert.ok(dropped >= 6, `the attacker's spoof chain counted the forged frames (${dropped})`);
});

test('macspoofchk: ARP claiming another address or from another MAC (arping) does not reach the host; genuine ARP does', async () => {
  await host.exec(['ip', 'neigh', 'flush', 'dev', BRIDGE], { check: false });
  await arping(attacker, { srcIp: '10.93.0.78' });
  await arping(attacker, { srcIp: control.v4 });
  await arping(attacker, { srcIp: attacker.v4, srcMac: FORGED_MAC });
  await arping(attacker, { srcIp: attacker.v4 }); // the genuine one, last: once it is seen, so would the others be
  await waitFor(async () => (await neighbour(attacker.v4)) !== undefined);
  assert.is(await neighbour(attacker.v4), attacker.mac, 'a genuine ARP from the attacker is believed');
  assert.is(await neighbour('10.93.0.78'), undefined, 'a claim of 10.93.0.78: ignored');
  assert.is.not(await neighbour(control.v4), attacker.mac, "a claim of the control's address: ignored");
});

// ── router advertisements ─────────────────────────────────────────────────────────────────────────────

/**
 * An IPv4-only network in a host of its own, so the host does not forward IPv6 (which alone would make it
 * ignore RAs, and the dual-stack network above turned on net.ipv6.conf.all.forwarding).
 */
const v4only = bridgeConf({ name: 'ranet', bridge: 'npra0', isGateway: true, subnet: '10.94.0.0/24' });

let raHost: Host;
/** Counts router advertisements reaching the IPv6 input of `where` (an nft counter, set up by countRAs). */
async function countRAs(where: Host | Container, iif: string): Promise<void> {
  for (const cmd of [
    ['add', 'table', 'inet', 'ratest'],
    ['add', 'chain', 'inet', 'ratest', 'input', '{ type filter hook input priority 0; }'],
    ['add', 'rule', 'inet', 'ratest', 'input', 'iifname', iif, 'icmpv6', 'type', 'nd-router-advert', 'counter'],
  ])
    await run(['nft', ...cmd], { netns: where.netnsPath });
}
const raCount = async (where: Host | Container = raHost): Promise<number> => {
  const r = await run(['nft', '-j', 'list', 'table', 'inet', 'ratest'], { netns: where.netnsPath });
  return (JSON.parse(r.stdout).nftables as any[])
    .filter((o) => o.rule)
    .reduce((n, o) => n + (o.rule.expr.find((e: any) => e.counter)?.counter.packets ?? 0), 0);
};
const rogueState = async () => ({
  addrs: (await raHost.ip<any[]>('-6', 'addr', 'show', 'dev', 'npra0'))[0].addr_info.filter((a: any) => a.scope !== 'link').map((a: any) => a.local),
  routes: (await raHost.ip<any[]>('-6', 'route', 'show'))
    .filter((r) => r.dst === 'default' || String(r.dst).startsWith(ROGUE_PREFIX))
    .map((r) => `${r.dst} ${r.protocol}`),
});

test('router advertisements from a container are ignored by the host and the other containers; with accept_ra on they are not', async () => {
  raHost = await createHost('ra');
  const c = await raHost.createContainer('rogue');
  const r = must(await cniRuntime({ host: raHost }).exec('ADD', v4only, { containerId: 'rogue', netns: c.netnsPath, ifname: 'eth0' }), 'ADD rogue').json;
  const mac: string = r.interfaces[2].mac;
  const hostVeth: string = r.interfaces[1].name;
  // A second container on the bridge, to show what the host's accept_ra does not cover.
  const bystander = await raHost.createContainer('bystander');
  must(await cniRuntime({ host: raHost }).exec('ADD', v4only, { containerId: 'bystander', netns: bystander.netnsPath, ifname: 'eth0' }), 'ADD bystander');
  assert.is(await sysctl(raHost, 'net/ipv6/conf/npra0/accept_ra'), '0', 'accept_ra off on the bridge');
  assert.is(await sysctl(raHost, `net/ipv6/conf/${hostVeth}/accept_ra`), '0', 'accept_ra off on the host veth');
  assert.is(await sysctl(raHost, 'net/ipv6/conf/npra0/forwarding'), '0', 'the host does not forward IPv6 here (else RAs are ignored anyway)');
  // A counter of RAs reaching the host's own IPv6 input: proves the RA was delivered, and then ignored.
  await countRAs(raHost, 'npra0');
  await countRAs(bystander, 'eth0');
  // The container's link-local address, as the source an RA must have.
  await c.exec(['ip', 'link', 'set', 'lo', 'up']);
  const ra = routerAdvertFrame({ src: mac, srcIp: 'fe80::bad:1', prefix: ROGUE_PREFIX });

  await sendRawFrames(c, 'eth0', [ra]);
  assert.ok(await waitFor(async () => (await raCount()) >= 1), 'the RA reached the host');
  assert.equal(await rogueState(), { addrs: [], routes: [] }, 'no SLAAC address, prefix route or default route from the RA');
  // The RA is flooded to the other ports too; netplumb-bridge sets accept_ra=0 on the containers' interfaces,
  // so a bystander container ignores it. The kernel acts on an RA (SLAAC adds the address) in the same pass
  // that delivers it past the input hook, so once the bystander's counter has it, any address would be there.
  const rogueInBystander = async () =>
    (await bystander.ip<any[]>('-6', 'addr', 'show', 'dev', 'eth0'))[0]?.addr_info.filter((a: any) => String(a.local).startsWith('2001:db8:bad:')).length ?? 0;
  assert.is(await sysctl(bystander, 'net/ipv6/conf/eth0/accept_ra'), '0', 'accept_ra off in the bystander container');
  assert.ok(await waitFor(async () => (await raCount(bystander)) >= 1), 'the RA reached the bystander');
  assert.is(await rogueInBystander(), 0, 'the bystander container took no address from the rogue RA');
  // Control: with the kernel's default (accept_ra=1) the same RA does configure the bystander.
  await bystander.exec(['sysctl', '-q', '-w', 'net.ipv6.conf.eth0.accept_ra=1']);
  await sendRawFrames(c, 'eth0', [ra]);
  await waitFor(async () => (await rogueInBystander()) > 0);
  assert.is(await rogueInBystander(), 1, 'with accept_ra=1 the bystander takes an address from the same RA (the test can fail)');

  // The same bridge, the same frame, accept_ra=2: now the host obeys the container.
  await raHost.exec(['sysctl', '-q', '-w', 'net.ipv6.conf.npra0.accept_ra=2']);
  await sendRawFrames(c, 'eth0', [ra]);
  let state = await rogueState();
  await waitFor(async () => {
    state = await rogueState();
    return state.addrs.length > 0 && state.routes.length >= 2;
  });
  assert.ok(
    state.addrs.some((a: string) => a.startsWith('2001:db8:bad:')),
    `with accept_ra=2 the RA gives the host an address (${JSON.stringify(state)})`,
  );
  assert.ok(state.routes.includes('default ra'), `and a default route (${JSON.stringify(state)})`);
  await raHost.exec(['sysctl', '-q', '-w', 'net.ipv6.conf.npra0.accept_ra=0']);
});

test.run();

/** Links against the kernel; every result checked with `ip -j` (iproute2) or packets, never with the library. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertRejects } from '../fixtures/assert.js';
import { openSync, closeSync } from 'node:fs';
import { sandboxed, ping, waitFor, type Host, type Container } from '../../netns-harness/index.js';
import { netlinkLab, type NetlinkLab } from '../fixtures/netlink-lab.js';
import {
  openHandleSync,
  createLink,
  createVethPair,
  deleteLink,
  getLink,
  findLink,
  listLinks,
  setLink,
  setLinkUp,
  setLinkDown,
  setLinkMtu,
  setLinkMac,
  renameLink,
  setLinkMaster,
  setLinkNoMaster,
  setLinkAlias,
  setLinkPromisc,
  moveLink,
  setBridgePort,
  setHairpin,
  ensureBridge,
  addAddress,
  NetlinkError,
  NetplumbError,
  openNetnsSync,
  getNetnsId,
  setNetnsId,
  type Handle,
} from '../../lib/index.js';

await sandboxed();

let host: Host;
let c1: Container;
let h: Handle;
const ipLink = async (where: Host | Container, name: string) => (await where.ip<any[]>('-d', 'link', 'show', 'dev', name))[0];
const names = async (where: Host | Container) => (await where.ip<any[]>('link', 'show')).map((l) => l.ifname).sort();

let lab: NetlinkLab;

test.before.each(async () => {
  lab = await netlinkLab(['c1']);
  ({ host, h } = lab);
  c1 = lab.ctr.c1!;
});
test.after.each(() => lab.destroy());

test('a veth pair whose peer is created inside the container with its name and MAC', async () => {
  await createVethPair(h, { name: 'veth-c1', up: true, peer: { name: 'eth0', mac: '02:42:ac:11:00:02', netns: { pid: c1.pid }, up: true } });
  assert.equal(await names(host), ['lo', 'veth-c1'], 'the peer never shows in the host');
  const eth0 = await ipLink(c1, 'eth0');
  assert.is(eth0.address, '02:42:ac:11:00:02');
  assert.is(eth0.linkinfo.info_kind, 'veth');
  assert.is(eth0.ifalias, undefined);
  assert.ok(eth0.flags.includes('UP'));
  const hostSide = await ipLink(host, 'veth-c1');
  assert.ok(hostSide.flags.includes('UP'));
  // what the library parses, against what iproute2 printed
  const l = await getLink(h, 'veth-c1');
  assert.is(l.kind, 'veth');
  assert.is(l.index, hostSide.ifindex);
  assert.is(l.mac, hostSide.address);
  if (l.kind === 'veth') assert.is(l.peerIndex, eth0.ifindex, 'peer index is the container-side ifindex');
  assert.is(l.linkNetnsId, hostSide.link_netnsid);
  assert.is(l.operstate, hostSide.operstate.toLowerCase());
  assert.ok(l.stats !== undefined && typeof l.stats.rxPackets === 'number');
  // the namespace id the host gives the container: the one the veth reports, and iproute2's
  assert.is(await getNetnsId(h, { pid: c1.pid }), l.linkNetnsId);
  const ids = (await host.exec(['ip', '-j', 'netns', 'list-id'])).stdout;
  assert.ok(JSON.parse(ids).some((x: any) => x.nsid === l.linkNetnsId));
});

test('namespace ids: none until assigned, then the one asked for', async () => {
  const c2 = await host.createContainer('c2');
  assert.is(await getNetnsId(h, { pid: c2.pid }), undefined);
  assert.is(await setNetnsId(h, { pid: c2.pid }, 42), 42);
  assert.is(await getNetnsId(h, { path: c2.netnsPath }), 42);
  const c3 = await host.createContainer('c3');
  const auto = await setNetnsId(h, { pid: c3.pid });
  assert.ok(auto >= 0 && auto !== 42);
  const listed = JSON.parse((await host.exec(['ip', '-j', 'netns', 'list-id'])).stdout)
    .map((x: any) => x.nsid)
    .sort((a: number, b: number) => a - b);
  assert.equal(
    listed,
    [auto, 42].sort((a, b) => a - b),
  );
  await assertRejects(() => setNetnsId(h, { pid: c2.pid }, 43), { code: 'EEXIST' });
});

test('creating an existing link is EEXIST, deleting a missing one ENODEV, and a missing link inside a verb names the verb', async () => {
  await createLink(h, { kind: 'bridge', name: 'br0' });
  {
    const e = await assertRejects(() => createLink(h, { kind: 'bridge', name: 'br0' }), { instance: NetlinkError }, 'second create must fail');
    assert.instance(e, NetplumbError);
    const ne = e as NetlinkError;
    assert.is(ne.code, 'EEXIST');
    assert.is(ne.op, 'RTM_NEWLINK');
    assert.is(ne.object, 'br0');
    assert.match(ne.message, /create link br0: EEXIST \(File exists\)/);
  }
  {
    const e = await assertRejects(() => deleteLink(h, 'nosuch0'), {}, 'delete of a missing link must fail');
    const ne = e as NetlinkError;
    assert.is(ne.code, 'ENODEV');
    assert.is(ne.op, 'RTM_DELLINK');
    assert.match(ne.message, /nosuch0: ENODEV/);
  }
  {
    const e = await assertRejects(() => setLinkMtu(h, 'br0', 1_000_000), { code: 'EINVAL' });
    assert.ok((e as NetlinkError).extack, 'the kernel explained itself through the extended ACK');
    assert.match((e as NetlinkError).message, /br0.*EINVAL.*: \S/);
  }
  // A lookup inside a compound verb fails as that verb, saying what it was doing; the lookup is the cause.
  const cases: [string, () => Promise<unknown>, string, string, RegExp][] = [
    [
      'rename of a missing link',
      () => setLink(h, 'nosuch0', { name: 'other0' }),
      'setLink',
      'nosuch0',
      /^set link nosuch0 name other0: get link nosuch0: ENODEV/,
    ],
    ['a missing master', () => setLinkMaster(h, 'br0', 'nosuch0'), 'setLink', 'br0', /^set link br0 master nosuch0: get link nosuch0: ENODEV/],
    ['bringing up a missing link', () => setLinkUp(h, 'nosuch0'), 'setLink', 'nosuch0', /^set link nosuch0 up: get link nosuch0: ENODEV/],
    [
      'creating a port of a missing master',
      () => createLink(h, { kind: 'bridge', name: 'br9', master: 'nosuch0' }),
      'createLink',
      'br9',
      /^create link br9: get link nosuch0: ENODEV/,
    ],
  ];
  for (const [what, call, op, object, message] of cases) {
    const e = await assertRejects<NetplumbError>(call, { instance: NetplumbError, code: 'ENODEV', message }, what);
    assert.equal([e.op, e.object], [op, object], what);
    assert.is((e.cause as NetlinkError).op, 'RTM_GETLINK', `${what}: the lookup that failed is the cause`);
  }
  assert.is(await findLink(h, 'br9'), undefined, 'a create that failed left nothing');
  assert.is(await findLink(h, 'nosuch0'), undefined);
});

test('bridge options as created, checked with ip -d', async () => {
  await createLink(h, { kind: 'bridge', name: 'br1', stp: true, forwardDelay: 4, ageingTime: 120, priority: 4096 });
  const br = await ipLink(host, 'br1');
  assert.is(br.linkinfo.info_kind, 'bridge');
  assert.is(br.linkinfo.info_data.stp_state, 1);
  assert.is(br.linkinfo.info_data.forward_delay, 400);
  assert.is(br.linkinfo.info_data.ageing_time, 12000);
  assert.is(br.linkinfo.info_data.priority, 4096);
  const l = await getLink(h, 'br1');
  assert.is(l.kind, 'bridge');
  if (l.kind === 'bridge') assert.equal(l.bridge, { stp: true, forwardDelay: 4, ageingTime: 120, vlanFiltering: false, priority: 4096, nfCall: false });
  try {
    await createLink(h, { kind: 'bridge', name: 'br2', vlanFiltering: true });
    assert.ok((await ipLink(host, 'br2')).linkinfo.info_data.vlan_filtering === 1);
  } catch (e) {
    // this kernel has no VLAN filtering in its bridge (field notes): iproute2 is refused the same way
    assert.is((e as NetlinkError).code, 'EOPNOTSUPP');
    console.log(`  skip: bridge vlan_filtering not supported by this kernel (${(e as Error).message})`);
  }
});

test('an alias given at creation is set (the kernel ignores IFLA_IFALIAS in a create request)', async () => {
  await createVethPair(h, { name: 'va', alias: 'netplumb test', peer: { name: 'vb' } });
  assert.is((await ipLink(host, 'va')).ifalias, 'netplumb test');
  await createLink(h, { kind: 'bridge', name: 'br0', alias: 'a bridge', netns: { pid: c1.pid } });
  assert.is((await ipLink(c1, 'br0')).ifalias, 'a bridge');
});

test('up, down, MTU, MAC, alias, promisc, rename, master and nomaster', async () => {
  await createLink(h, { kind: 'bridge', name: 'br0' });
  await createVethPair(h, { name: 'va', peer: { name: 'vb' } });
  await setLinkUp(h, 'va');
  assert.ok((await ipLink(host, 'va')).flags.includes('UP'));
  await setLinkDown(h, 'va');
  assert.not.ok((await ipLink(host, 'va')).flags.includes('UP'));
  await setLinkMtu(h, 'va', 1400);
  assert.is((await ipLink(host, 'va')).mtu, 1400);
  await setLinkMac(h, 'va', '02:00:00:aa:bb:cc');
  assert.is((await ipLink(host, 'va')).address, '02:00:00:aa:bb:cc');
  await setLinkAlias(h, 'va', 'container web');
  assert.is((await ipLink(host, 'va')).ifalias, 'container web');
  assert.is((await getLink(h, 'va')).alias, 'container web');
  await setLinkAlias(h, 'va', null);
  assert.is((await ipLink(host, 'va')).ifalias, undefined);
  await setLinkPromisc(h, 'va', true);
  assert.ok((await ipLink(host, 'va')).flags.includes('PROMISC'));
  await setLinkPromisc(h, 'va', false);
  const index = (await getLink(h, 'va')).index;
  await renameLink(h, 'va', 'vx');
  assert.is((await ipLink(host, 'vx')).ifindex, index);
  await setLinkMaster(h, 'vx', 'br0');
  assert.is((await ipLink(host, 'vx')).master, 'br0');
  assert.is((await getLink(h, index)).masterIndex, (await getLink(h, 'br0')).index);
  assert.equal(
    (await listLinks(h, { master: 'br0' })).map((l) => l.name),
    ['vx'],
  );
  await setLinkNoMaster(h, 'vx');
  assert.is((await ipLink(host, 'vx')).master, undefined);
  // several changes in one request
  await setLink(h, index, { up: true, mtu: 1300, name: 'vy', master: 'br0' });
  const vy = await ipLink(host, 'vy');
  assert.is(vy.mtu, 1300);
  assert.is(vy.master, 'br0');
  assert.ok(vy.flags.includes('UP'));
});

test('list by kind and get by name or index agree with ip -j', async () => {
  await createLink(h, { kind: 'bridge', name: 'br0' });
  await createVethPair(h, { name: 'v0', peer: { name: 'v1' } });
  const mine = await listLinks(h);
  const theirs = await host.ip<any[]>('link', 'show');
  assert.equal(
    mine.map((l) => [l.index, l.name, l.mtu, l.mac]),
    theirs.map((l) => [l.ifindex, l.ifname, l.mtu, l.address]),
  );
  assert.equal((await listLinks(h, { kind: 'veth' })).map((l) => l.name).sort(), ['v0', 'v1']);
  const byIndex = await getLink(h, theirs.find((l) => l.ifname === 'v1').ifindex);
  assert.is(byIndex.name, 'v1');
  assert.is((await getLink(h, 'lo')).kind, 'loopback');
});

test('move a link to another namespace by path, by PID and by fd', async () => {
  const c2 = await host.createContainer('c2');
  const c3 = await host.createContainer('c3');
  await createVethPair(h, { name: 'm1', peer: { name: 'm2' } });
  await createVethPair(h, { name: 'm3', peer: { name: 'm4' } });
  await moveLink(h, 'm1', { path: c1.netnsPath });
  await moveLink(h, 'm2', { pid: c2.pid }, { name: 'eth0' });
  const fd = openSync(c3.netnsPath, 'r');
  try {
    await moveLink(h, 'm3', { fd });
  } finally {
    closeSync(fd);
  }
  assert.equal(await names(host), ['lo', 'm4']);
  assert.equal(await names(c1), ['lo', 'm1']);
  assert.equal(await names(c2), ['eth0', 'lo'], 'renamed on arrival');
  assert.equal(await names(c3), ['lo', 'm3']);
  // and back, into a namespace given as a handle
  const hc3 = openHandleSync({ pid: c3.pid });
  try {
    await moveLink(hc3, 'm3', h);
  } finally {
    hc3.close();
  }
  assert.equal(await names(host), ['lo', 'm3', 'm4']);
});

test('bridge port options travel as slave data: hairpin, learning, flood, isolated', async () => {
  await createLink(h, { kind: 'bridge', name: 'br0' });
  await createVethPair(h, { name: 'p0', master: 'br0', peer: { name: 'p1' } });
  await setBridgePort(h, 'p0', { hairpin: true, learning: false, flood: false, isolated: true, cost: 7 });
  let sd = (await ipLink(host, 'p0')).linkinfo.info_slave_data;
  assert.equal([sd.hairpin, sd.learning, sd.flood, sd.isolated, sd.cost], [true, false, false, true, 7]);
  const l = await getLink(h, 'p0');
  assert.equal(l.bridgePort && [l.bridgePort.hairpin, l.bridgePort.learning, l.bridgePort.flood, l.bridgePort.isolated, l.bridgePort.cost], [
    true,
    false,
    false,
    true,
    7,
  ]);
  await setHairpin(h, 'p0', false);
  sd = (await ipLink(host, 'p0')).linkinfo.info_slave_data;
  assert.is(sd.hairpin, false);
});

test('ports enslaved as they are created start disabled while their peer is down', async () => {
  // The kernel reports a fresh link's operstate as "unknown" (counted as up) until its link watch runs; a port
  // enslaved before then would be put in forwarding state without a carrier. The library syncs first.
  await createLink(h, { kind: 'bridge', name: 'br0', up: true });
  await Promise.all([0, 1, 2, 3, 4].map((i) => createVethPair(h, { name: `p${i}`, master: 'br0', up: true, peer: { name: `q${i}` } })));
  const ports = (await host.exec(['bridge', '-j', 'link', 'show'])).stdout;
  assert.equal(
    JSON.parse(ports).map((p: any) => [p.ifname, p.master, p.state]),
    [0, 1, 2, 3, 4].map((i) => [`p${i}`, 'br0', 'disabled']),
  );
  // and a port whose peer comes up starts forwarding (STP is off)
  await setLinkUp(h, 'q0');
  let state = '';
  await waitFor(async () => (state = JSON.parse((await host.exec(['bridge', '-j', 'link', 'show', 'dev', 'p0'])).stdout)[0].state) === 'forwarding');
  assert.is(state, 'forwarding');
});

test('macvlan and vxlan, with their parameters', async () => {
  await createVethPair(h, { name: 'up0', peer: { name: 'up1' } });
  await createLink(h, { kind: 'macvlan', name: 'mv0', parent: 'up0', mode: 'bridge', mac: '02:00:00:00:01:01' });
  const mv = await ipLink(host, 'mv0');
  assert.is(mv.linkinfo.info_kind, 'macvlan');
  assert.is(mv.linkinfo.info_data.mode, 'bridge');
  assert.is(mv.link, 'up0');
  const l = await getLink(h, 'mv0');
  if (l.kind !== 'macvlan') throw new Error(`kind ${l.kind}`);
  assert.is(l.mode, 'bridge');
  assert.is(l.parentIndex, (await getLink(h, 'up0')).index);

  await createLink(h, { kind: 'vxlan', name: 'vx0', vni: 42, port: 4789, parent: 'up0', local: '10.0.0.1', learning: false });
  const vx = (await ipLink(host, 'vx0')).linkinfo.info_data;
  assert.equal([vx.id, vx.port, vx.link, vx.local, vx.learning], [42, 4789, 'up0', '10.0.0.1', false]);
  const x = await getLink(h, 'vx0');
  if (x.kind !== 'vxlan') throw new Error(`kind ${x.kind}`);
  assert.equal([x.vxlan.vni, x.vxlan.port, x.vxlan.local, x.vxlan.learning], [42, 4789, '10.0.0.1', false]);
});

for (const [kind, cfg] of [
  ['dummy', { kind: 'dummy', name: 'd0' }],
  ['vlan', { kind: 'vlan', name: 'up0.10', parent: 'up0', id: 10 }],
  ['ipvlan', { kind: 'ipvlan', name: 'ipv0', parent: 'up0', mode: 'l3' }],
] as const) {
  test(`${kind} links, where the kernel has them`, async () => {
    await createVethPair(h, { name: 'up0', peer: { name: 'up1' } });
    try {
      await createLink(h, cfg);
    } catch (e) {
      if ((e as NetlinkError).code === 'EOPNOTSUPP') {
        console.log(`  skip: this kernel has no ${kind} links (${(e as Error).message})`);
        return;
      }
      throw e;
    }
    const l = await ipLink(host, cfg.name);
    assert.is(l.linkinfo.info_kind, kind);
    assert.is((await getLink(h, cfg.name)).kind, kind);
    if (kind === 'vlan') assert.is(l.linkinfo.info_data.id, 10);
  });
}

test('ensureBridge creates once with its address, and refuses a non-bridge of that name', async () => {
  const a = await ensureBridge(h, 'cni0', { address: '10.22.0.1/24', up: true });
  assert.ok(a.created);
  const b = await ensureBridge(h, 'cni0', { address: '10.22.0.1/24', up: true });
  assert.not.ok(b.created);
  assert.is(b.link.index, a.link.index);
  const [br] = await host.ip<any[]>('addr', 'show', 'dev', 'cni0');
  assert.equal(
    br.addr_info.filter((x: any) => x.family === 'inet').map((x: any) => `${x.local}/${x.prefixlen}`),
    ['10.22.0.1/24'],
  );
  await createVethPair(h, { name: 'notbr', peer: { name: 'notbr1' } });
  await assertRejects(() => ensureBridge(h, 'notbr'), { code: 'ERR_LINK_KIND', message: /notbr.*not a bridge/ });
});

test('two containers on a bridge built by the library ping each other', async () => {
  const c2 = await host.createContainer('c2');
  await ensureBridge(h, 'br0', { up: true });
  const containers = [c1, c2];
  for (const [i, c] of containers.entries()) {
    await createVethPair(h, { name: `veth${i}`, master: 'br0', up: true, peer: { name: 'eth0', netns: { pid: c.pid } } });
    const hc = openHandleSync({ pid: c.pid });
    try {
      await addAddress(hc, { link: 'eth0', cidr: `10.50.0.${i + 2}/24` });
      await setLinkUp(hc, 'eth0');
    } finally {
      hc.close();
    }
  }
  const p = await ping(c1, '10.50.0.3', { count: 2, interval: 0.2 });
  assert.ok(p.ok, p.output);
  await deleteLink(h, 'veth1');
  const lost = await ping(c1, '10.50.0.3', { timeoutSec: 1 });
  assert.not.ok(lost.ok, 'with the veth deleted the other container is unreachable');
  assert.equal(await names(c2), ['lo'], 'deleting the host side took the peer');
});

test('a link can be created directly in another namespace', async () => {
  const ns = openNetnsSync({ pid: c1.pid });
  try {
    await createLink(h, { kind: 'bridge', name: 'inside0', netns: ns });
  } finally {
    ns.close();
  }
  assert.equal(await names(c1), ['inside0', 'lo']);
  assert.equal(await names(host), ['lo']);
});

test.run();

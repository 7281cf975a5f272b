/** The forwarding database, VXLAN options, route metrics, address lifetimes and peers, FDB events: checked against `bridge -j fdb` and `ip -j -d`. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertRejects } from '../fixtures/assert.js';
import { sandboxed, waitFor, ping } from '../../netns-harness/index.js';
import { netlinkLab, type NetlinkLab } from '../fixtures/netlink-lab.js';
import {
  createLink,
  createVethPair,
  addAddress,
  listAddresses,
  addRoute,
  listRoutes,
  getLink,
  linkIndex,
  setLinkUp,
  addFdbEntry,
  appendFdbEntry,
  replaceFdbEntry,
  deleteFdbEntry,
  listFdb,
  listNeighbours,
  addNeighbour,
  deleteNeighbour,
  watch,
  addRule,
  deleteRule,
  setNetnsId,
  type NetEvent,
} from '../../lib/index.js';

await sandboxed();

let lab: NetlinkLab;
test.before.each(async () => {
  lab = await netlinkLab(['a', 'b']);
});
test.after.each(() => lab.destroy());

const bridgeFdb = async (lab: NetlinkLab, dev: string): Promise<any[]> => {
  const r = await lab.ctr.a!.exec(['bridge', '-j', 'fdb', 'show', 'dev', dev]);
  return JSON.parse(r.stdout || '[]');
};

test('fdb on a VXLAN device: add, append, replace, delete, list, as `bridge fdb` sees them', async () => {
  const h = lab.hc.a!;
  await createVethPair(h, { name: 'under0', up: true, peer: { name: 'under1', up: true } });
  await addAddress(h, { link: 'under0', cidr: '192.0.2.1/24' });
  await createLink(h, { kind: 'vxlan', name: 'vx0', vni: 42, port: 4789, local: '192.0.2.1', parent: 'under0', learning: false });
  await addFdbEntry(h, { link: 'vx0', mac: '02:00:00:00:00:01', dst: '192.0.2.2', vni: 43, port: 4790, via: 'under0' });
  await appendFdbEntry(h, { link: 'vx0', mac: '00:00:00:00:00:00', dst: '192.0.2.2' });
  await appendFdbEntry(h, { link: 'vx0', mac: '00:00:00:00:00:00', dst: '192.0.2.3' });
  await assertRejects(() => addFdbEntry(h, { link: 'vx0', mac: '02:00:00:00:00:01', dst: '192.0.2.9' }), { code: 'EEXIST' });

  let theirs = await bridgeFdb(lab, 'vx0');
  const one = theirs.find((e) => e.mac === '02:00:00:00:00:01');
  assert.equal([one.dst, one.vni, one.port, one.viaIf, one.flags, one.state], ['192.0.2.2', 43, 4790, 'under0', ['self'], 'permanent']);
  assert.equal(
    theirs
      .filter((e) => e.mac === '00:00:00:00:00:00')
      .map((e) => e.dst)
      .sort(),
    ['192.0.2.2', '192.0.2.3'],
  );

  const vx = await linkIndex(h, 'vx0');
  const mine = await listFdb(h, { link: 'vx0' });
  const m1 = mine.find((e) => e.mac === '02:00:00:00:00:01')!;
  assert.equal(
    [m1.linkIndex, m1.dst, m1.vni, m1.port, m1.viaIndex, m1.self, m1.master],
    [vx, '192.0.2.2', 43, 4790, await linkIndex(h, 'under0'), true, false],
  );
  assert.is(m1.state, 'permanent');
  assert.is(mine.filter((e) => e.mac === '00:00:00:00:00:00').length, 2);
  // the FDB is not the ARP table
  assert.not.ok((await listNeighbours(h)).some((n) => n.linkIndex === vx));

  await replaceFdbEntry(h, { link: 'vx0', mac: '02:00:00:00:00:01', dst: '192.0.2.4' });
  theirs = await bridgeFdb(lab, 'vx0');
  assert.is(theirs.find((e) => e.mac === '02:00:00:00:00:01').dst, '192.0.2.4');

  await deleteFdbEntry(h, { link: 'vx0', mac: '00:00:00:00:00:00', dst: '192.0.2.2' });
  theirs = await bridgeFdb(lab, 'vx0');
  assert.equal(
    theirs.filter((e) => e.mac === '00:00:00:00:00:00').map((e) => e.dst),
    ['192.0.2.3'],
  );
  await deleteFdbEntry(h, { link: 'vx0', mac: '02:00:00:00:00:01' });
  await assertRejects(() => deleteFdbEntry(h, { link: 'vx0', mac: '02:00:00:00:00:01' }), { code: 'ENOENT' });
  await assertRejects(() => addFdbEntry(h, { link: 'vx0', mac: 'zz', dst: '192.0.2.2' }), { code: 'ERR_INVALID_MAC' });
  assert.is((await bridgeFdb(lab, 'vx0')).filter((e) => e.mac === '02:00:00:00:00:01').length, 0);
});

test('fdb on a bridge port: master entries, static and with extern_learn; the bridge filter', async () => {
  const h = lab.hc.a!;
  await createLink(h, { kind: 'bridge', name: 'br0', up: true });
  await createVethPair(h, { name: 'p0', master: 'br0', up: true, peer: { name: 'p1' } });
  await addFdbEntry(h, { link: 'p0', mac: '02:00:00:00:00:aa', master: true, state: 'static' });
  await addFdbEntry(h, { link: 'p0', mac: '02:00:00:00:00:bb', master: true, externLearned: true, state: 'static' });
  const theirs = await bridgeFdb(lab, 'p0');
  const aa = theirs.find((e) => e.mac === '02:00:00:00:00:aa');
  assert.equal([aa.master, aa.state, aa.flags], ['br0', 'static', []]);
  assert.ok(theirs.find((e) => e.mac === '02:00:00:00:00:bb').flags.includes('extern_learn'));
  const br = await linkIndex(h, 'br0');
  const mine = await listFdb(h, { bridge: 'br0' });
  const a = mine.find((e) => e.mac === '02:00:00:00:00:aa')!;
  assert.equal([a.master, a.self, a.masterIndex, a.state, a.externLearned], [true, false, br, 'static', false]);
  assert.ok(mine.find((e) => e.mac === '02:00:00:00:00:bb')!.externLearned);
  await deleteFdbEntry(h, { link: 'p0', mac: '02:00:00:00:00:aa', master: true, state: 'static' });
  assert.not.ok((await bridgeFdb(lab, 'p0')).some((e) => e.mac === '02:00:00:00:00:aa'));
});

test('VXLAN options are set as `ip -d link` reads them back, and read back by getLink', async () => {
  const h = lab.hc.a!;
  await createLink(h, {
    kind: 'vxlan',
    name: 'vx1',
    vni: 7,
    port: 4789,
    srcPortRange: [40000, 50000],
    l2miss: true,
    l3miss: true,
    proxy: true,
    udpCsum: true,
    ttl: 9,
    tos: 1,
    df: 'inherit',
    learning: false,
    ageing: 120,
    maxAddresses: 50,
  });
  await createLink(h, { kind: 'vxlan', name: 'vx2', vni: 0, external: true, udp6ZeroCsumTx: true, udp6ZeroCsumRx: true, port: 4790 });
  const [d] = await lab.ctr.a!.ip<any[]>('-d', 'link', 'show', 'vx1');
  const x = d.linkinfo.info_data;
  assert.equal(
    [x.id, x.port, x.port_range, x.l2miss, x.l3miss, x.proxy, x.udp_csum, x.ttl, x.tos, x.df, x.learning, x.ageing, x.limit],
    [7, 4789, { low: 40000, high: 50000 }, true, true, true, true, 9, '0x1', 'inherit', false, 120, 50],
  );
  const [d2] = await lab.ctr.a!.ip<any[]>('-d', 'link', 'show', 'vx2');
  const x2 = d2.linkinfo.info_data;
  assert.equal([x2.external, x2.udp_zero_csum6_tx, x2.udp_zero_csum6_rx], [true, true, true]);
  const l = await getLink(h, 'vx1');
  assert.is(l.kind, 'vxlan');
  if (l.kind !== 'vxlan') return;
  assert.equal(
    [l.vxlan.srcPortRange, l.vxlan.l2miss, l.vxlan.l3miss, l.vxlan.proxy, l.vxlan.udpCsum, l.vxlan.tos, l.vxlan.df, l.vxlan.ageing, l.vxlan.maxAddresses],
    [[40000, 50000], true, true, true, true, 1, 'inherit', 120, 50],
  );
  const l2 = await getLink(h, 'vx2');
  assert.ok(l2.kind === 'vxlan' && l2.vxlan.external);
});

test('two namespaces joined by VXLAN with static FDB and neighbour entries talk; route metrics carry MTU and advmss', async () => {
  const [ha, hb] = [lab.hc.a!, lab.hc.b!];
  await createVethPair(ha, { name: 'u0', up: true, peer: { name: 'u0', netns: hb, up: true } });
  await addAddress(ha, { link: 'u0', cidr: '192.0.2.1/24' });
  await addAddress(hb, { link: 'u0', cidr: '192.0.2.2/24' });
  const macs: string[] = [];
  for (const [h, local, me] of [
    [ha, '192.0.2.1', '10.9.1.1'],
    [hb, '192.0.2.2', '10.9.2.1'],
  ] as const) {
    await createLink(h, { kind: 'vxlan', name: 'vx0', vni: 1, port: 4789, local, parent: 'u0', learning: false, mtu: 1450 });
    await addAddress(h, { link: 'vx0', cidr: `${me}/32` });
    await setLinkUp(h, 'vx0');
    macs.push((await getLink(h, 'vx0')).mac!);
  }
  // as an overlay programs a peer: route to its subnet via its VTEP address, neighbour for the VTEP, FDB to its underlay
  await addRoute(ha, { dst: '10.9.2.0/24', gateway: '10.9.2.1', link: 'vx0', onlink: true, mtu: 1400, advmss: 1360 });
  await addNeighbour(ha, { link: 'vx0', address: '10.9.2.1', lladdr: macs[1]! });
  await addFdbEntry(ha, { link: 'vx0', mac: macs[1]!, dst: '192.0.2.2' });
  await addRoute(hb, { dst: '10.9.1.0/24', gateway: '10.9.1.1', link: 'vx0', onlink: true });
  await addNeighbour(hb, { link: 'vx0', address: '10.9.1.1', lladdr: macs[0]! });
  await addFdbEntry(hb, { link: 'vx0', mac: macs[0]!, dst: '192.0.2.1' });
  const r = await ping(lab.ctr.a!, '10.9.2.1', { count: 1 });
  assert.is(r.received, 1, 'a reaches b through the tunnel');
  const [theirs] = await lab.ctr.a!.ip<any[]>('route', 'show', '10.9.2.0/24');
  assert.equal([theirs.metrics?.[0]?.mtu ?? theirs.mtu, theirs.metrics?.[0]?.advmss ?? theirs.advmss], [1400, 1360]);
  const mine = (await listRoutes(ha)).find((x) => x.dst === '10.9.2.0/24')!;
  assert.equal([mine.mtu, mine.advmss], [1400, 1360]);
});

test('address lifetimes and point-to-point peers', async () => {
  const h = lab.hc.a!;
  await createVethPair(h, { name: 'pp0', up: true, peer: { name: 'pp1', up: true } });
  await addAddress(h, { link: 'pp0', cidr: '10.7.0.1/32', peer: '10.7.0.2' });
  await addAddress(h, { link: 'pp0', cidr: '10.8.0.1/24', validLifetime: 600, preferredLifetime: 300 });
  const theirs = (await lab.ctr.a!.ip<any[]>('addr', 'show', 'dev', 'pp0'))[0].addr_info;
  const p = theirs.find((x: any) => x.local === '10.7.0.1');
  assert.is(p.address, '10.7.0.2');
  const lft = theirs.find((x: any) => x.local === '10.8.0.1');
  assert.ok(lft.valid_life_time > 0 && lft.valid_life_time <= 600, `valid ${lft.valid_life_time}`);
  assert.ok(lft.preferred_life_time > 0 && lft.preferred_life_time <= 300, `preferred ${lft.preferred_life_time}`);
  const mine = await listAddresses(h, { link: 'pp0' });
  assert.is(mine.find((x) => x.address === '10.7.0.1')!.peer, '10.7.0.2');
  const m = mine.find((x) => x.address === '10.8.0.1')!;
  assert.ok(m.validLifetime! <= 600 && m.preferredLifetime! <= 300);
  assert.ok((await lab.ctr.a!.ip<any[]>('route', 'show', '10.7.0.2')).length === 1, 'the peer has its route');
});

test('watch reports FDB entries apart from neighbours, existing ones first', async () => {
  const h = lab.hc.a!;
  await createLink(h, { kind: 'vxlan', name: 'vx0', vni: 5, port: 4789, learning: false });
  await addFdbEntry(h, { link: 'vx0', mac: '02:00:00:00:00:01', dst: '192.0.2.7' });
  const w = watch(h, { fdb: true, listExisting: true });
  const seen: NetEvent[] = [];
  const reader = (async () => {
    for await (const ev of w) {
      seen.push(ev);
      if (ev.type === 'fdb' && ev.action === 'del') break;
    }
  })();
  await waitFor(() => seen.some((e) => e.type === 'fdb' && e.fdb.mac === '02:00:00:00:00:01'));
  await addFdbEntry(h, { link: 'vx0', mac: '02:00:00:00:00:02', dst: '192.0.2.8' });
  await deleteFdbEntry(h, { link: 'vx0', mac: '02:00:00:00:00:02' });
  await reader;
  assert.ok(seen.every((e) => e.type === 'fdb'));
  const two = seen.filter((e) => e.type === 'fdb' && e.fdb.mac === '02:00:00:00:00:02').map((e) => e.action);
  assert.equal(two, ['new', 'del']);
});

test('watch reports rules and namespace ids when asked for, and only then', async () => {
  const [ha, hb] = [lab.hc.a!, lab.hc.b!];
  const w = watch(ha, { rule: true, nsid: true });
  const seen: NetEvent[] = [];
  const reader = (async () => {
    for await (const ev of w) {
      seen.push(ev);
      if (ev.type === 'rule' && ev.action === 'del') break;
    }
  })();
  const id = await setNetnsId(ha, hb, 7);
  await addRule(ha, { priority: 1234, src: '10.5.0.0/16', table: 100 });
  await deleteRule(ha, { priority: 1234, src: '10.5.0.0/16', table: 100 });
  await reader;
  assert.is(id, 7);
  const nsid = seen.find((e) => e.type === 'nsid');
  assert.ok(nsid && nsid.type === 'nsid' && nsid.action === 'new' && nsid.nsid === 7, JSON.stringify(seen));
  const rules = seen.filter((e) => e.type === 'rule').map((e) => (e.type === 'rule' ? `${e.action} ${e.rule.priority} ${e.rule.src}` : ''));
  assert.equal(rules, ['new 1234 10.5.0.0/16', 'del 1234 10.5.0.0/16']);
  // the default watch (every kind) leaves rules out
  const plain = watch(ha, { persistent: false });
  await addRule(ha, { priority: 1235, src: '10.6.0.0/16', table: 100 });
  await addAddress(ha, { link: 'lo', cidr: '10.6.0.1/32' });
  for await (const ev of plain) {
    assert.is.not(ev.type, 'rule');
    if (ev.type === 'address') break;
  }
});

test('proxy neighbour entries: add, list apart from the ARP table, delete', async () => {
  const h = lab.hc.a!;
  await createVethPair(h, { name: 'px0', up: true, peer: { name: 'px1', up: true } });
  await addNeighbour(h, { link: 'px0', address: '10.3.0.50', proxy: true });
  const theirs = await lab.ctr.a!.ip<any[]>('neigh', 'show', 'proxy', 'dev', 'px0');
  assert.equal(
    theirs.map((n) => n.dst),
    ['10.3.0.50'],
  );
  const mine = await listNeighbours(h, { proxy: true, link: 'px0' });
  assert.equal(
    mine.map((n) => [n.address, n.proxy]),
    [['10.3.0.50', true]],
  );
  assert.not.ok((await listNeighbours(h, { link: 'px0' })).some((n) => n.address === '10.3.0.50'));
  await deleteNeighbour(h, { link: 'px0', address: '10.3.0.50', proxy: true });
  assert.equal(await lab.ctr.a!.ip<any[]>('neigh', 'show', 'proxy', 'dev', 'px0'), []);
});

test.run();

/** Addresses, routes and rules against the kernel, checked with `ip -j` and ping. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertRejects } from '../fixtures/assert.js';
import { sandboxed, ping, type Host, type Container } from '../../netns-harness/index.js';
import { netlinkLab, type NetlinkLab } from '../fixtures/netlink-lab.js';
import {
  openHandleSync,
  createVethPair,
  setLinkUp,
  addAddress,
  replaceAddress,
  deleteAddress,
  listAddresses,
  flushAddresses,
  addRoute,
  replaceRoute,
  deleteRoute,
  listRoutes,
  getRoute,
  addRule,
  deleteRule,
  listRules,
  getLink,
  createLink,
  type Handle,
  type NetlinkError,
  type NetplumbError,
} from '../../lib/index.js';

await sandboxed();

let host: Host;
let c: Container;
let h: Handle; // the host
let hc: Handle; // the container

let lab: NetlinkLab;

test.before.each(async () => {
  lab = await netlinkLab(['c']);
  ({ host, h } = lab);
  c = lab.ctr.c!;
  hc = lab.hc.c!;
  await createVethPair(h, { name: 'veth0', up: true, peer: { name: 'eth0', netns: hc, up: true } });
});
test.after.each(() => lab.destroy());

const ipAddrs = async (where: Host | Container, dev: string) => (await where.ip<any[]>('addr', 'show', 'dev', dev))[0].addr_info as any[];

test('IPv4 and IPv6 addresses with broadcast, scope, label, nodad, noprefixroute', async () => {
  await addAddress(hc, { link: 'eth0', cidr: '10.1.0.2/24', broadcast: true, label: 'eth0:web' });
  await addAddress(hc, { link: 'eth0', cidr: '10.9.0.2/16', scope: 'link', noprefixroute: true });
  await addAddress(hc, { link: 'eth0', cidr: 'fd00:1::2/64', nodad: true });
  const ai = await ipAddrs(c, 'eth0');
  const a = ai.find((x) => x.local === '10.1.0.2');
  assert.equal([a.prefixlen, a.broadcast, a.label, a.scope], [24, '10.1.0.255', 'eth0:web', 'global']);
  const b = ai.find((x) => x.local === '10.9.0.2');
  assert.equal([b.prefixlen, b.scope, b.noprefixroute], [16, 'link', true]);
  const v6 = ai.find((x) => x.local === 'fd00:1::2');
  assert.ok(v6.nodad, 'nodad set');
  assert.not.ok(v6.tentative, 'usable at once: no DAD');
  // no prefix route for the noprefixroute address, one for the other
  const routes = await c.ip<any[]>('-4', 'route', 'show');
  assert.ok(routes.some((r) => r.dst === '10.1.0.0/24'));
  assert.not.ok(routes.some((r) => r.dst === '10.9.0.0/16'));

  const mine = await listAddresses(hc, { link: 'eth0' });
  const web = mine.find((x) => x.address === '10.1.0.2')!;
  assert.equal([web.cidr, web.broadcast, web.label, web.scope, web.family], ['10.1.0.2/24', '10.1.0.255', 'eth0:web', 'universe', 4]);
  const six = mine.find((x) => x.address === 'fd00:1::2')!;
  assert.ok(six.nodad && six.permanent && !six.tentative);
  assert.ok(mine.find((x) => x.address === '10.9.0.2')!.noprefixroute);
  assert.equal(
    (await listAddresses(hc, { family: 6, link: 'eth0' })).map((x) => x.family).filter((f) => f !== 6),
    [],
  );

  await assertRejects(() => addAddress(hc, { link: 'eth0', cidr: '10.1.0.2/24' }), { code: 'EEXIST', message: /add address 10\.1\.0\.2\/24 to eth0: EEXIST/ });
  // replace: no EEXIST for an existing address (and no duplicate), and adds a missing one
  await replaceAddress(hc, { link: 'eth0', cidr: '10.1.0.2/24' });
  assert.is((await ipAddrs(c, 'eth0')).filter((x) => x.local === '10.1.0.2').length, 1);
  await replaceAddress(hc, { link: 'eth0', cidr: '10.1.0.9/24' });
  assert.ok((await ipAddrs(c, 'eth0')).some((x) => x.local === '10.1.0.9'));
  await deleteAddress(hc, { link: 'eth0', cidr: '10.9.0.2/16' });
  assert.not.ok((await ipAddrs(c, 'eth0')).some((x) => x.local === '10.9.0.2'));
  await assertRejects(() => deleteAddress(hc, { link: 'eth0', cidr: '10.9.0.2/16' }), { code: 'EADDRNOTAVAIL' });
  // flush takes every IPv4 address, secondaries included, and leaves IPv6 alone when asked
  await addAddress(hc, { link: 'eth0', cidr: '10.1.0.3/24' });
  await addAddress(hc, { link: 'eth0', cidr: '10.1.0.4/24' });
  await flushAddresses(hc, { link: 'eth0', family: 4 });
  const left = await ipAddrs(c, 'eth0');
  assert.equal(
    left.filter((x) => x.family === 'inet'),
    [],
  );
  assert.ok(left.some((x) => x.local === 'fd00:1::2'));
  await flushAddresses(hc, { link: 'eth0' });
  assert.equal(
    (await ipAddrs(c, 'eth0')).filter((x) => x.scope === 'global'),
    [],
  );
});

test('bad input is refused before the kernel is asked; a missing link is named as part of the verb', async () => {
  const before = await ipAddrs(c, 'eth0');
  for (const [cidr, why] of [
    ['10.1.0.300/24', /not an IPv4 or IPv6 address/],
    ['10.1.0.2/33', /bad prefix length/],
    ['fd00::1::2/64', /not an IPv4/],
  ] as const) {
    try {
      await addAddress(hc, { link: 'eth0', cidr });
      assert.unreachable(cidr);
    } catch (e) {
      assert.is((e as NetplumbError).code, 'ERR_INVALID_ADDRESS', cidr);
      assert.match((e as Error).message, why, cidr);
    }
  }
  for (const gateway of ['10.1.0.256', 'gw']) {
    try {
      await addRoute(hc, { dst: '10.7.0.0/16', gateway });
      assert.unreachable(gateway);
    } catch (e) {
      assert.is((e as NetplumbError).code, 'ERR_INVALID_ADDRESS', gateway);
      assert.match((e as Error).message, /^add route .*: invalid gateway: /, gateway);
    }
  }
  assert.equal(await ipAddrs(c, 'eth0'), before, 'nothing changed');
  try {
    await addAddress(hc, { link: 'nosuch0', cidr: '10.1.0.2/24' });
    assert.unreachable();
  } catch (e) {
    const err = e as NetplumbError;
    assert.equal([err.code, err.op, err.object], ['ENODEV', 'addAddress', '10.1.0.2/24']);
    assert.match(err.message, /^add address 10\.1\.0\.2\/24 to nosuch0: get link nosuch0: ENODEV/);
    assert.is((err.cause as NetlinkError).op, 'RTM_GETLINK', 'the lookup that failed is the cause');
  }
});

test('routes: default via gateway, dev, src, table, metric, protocol, scope, and ping uses them', async () => {
  await addAddress(h, { link: 'veth0', cidr: '10.2.0.1/24' });
  await addAddress(hc, { link: 'eth0', cidr: '10.2.0.2/24' });
  await setLinkUp(hc, 'lo');
  await addAddress(h, { link: 'lo', cidr: '192.0.2.1/32' });
  // without a route back to 192.0.2.1 the container cannot reach it
  assert.not.ok((await ping(c, '192.0.2.1', { timeoutSec: 1 })).ok);
  await addRoute(hc, { dst: 'default', gateway: '10.2.0.1', src: '10.2.0.2', metric: 50, protocol: 'static' });
  const [def] = await c.ip<any[]>('route', 'show', 'default');
  assert.equal([def.gateway, def.dev, def.prefsrc, def.metric, def.protocol], ['10.2.0.1', 'eth0', '10.2.0.2', 50, 'static']);
  const p = await ping(c, '192.0.2.1');
  assert.ok(p.ok, p.output);

  const r = (await listRoutes(hc, { family: 4 })).find((x) => x.dst === 'default')!;
  assert.equal(
    [r.gateway, r.src, r.metric, r.protocol, r.table, r.type, r.linkIndex],
    ['10.2.0.1', '10.2.0.2', 50, 'static', 254, 'unicast', (await getLink(hc, 'eth0')).index],
  );
  const got = await getRoute(hc, { dst: '192.0.2.1' });
  assert.equal([got.gateway, got.src, got.dst], ['10.2.0.1', '10.2.0.2', '192.0.2.1/32']);

  await assertRejects(() => addRoute(hc, { dst: 'default', gateway: '10.2.0.1', metric: 50 }), { code: 'EEXIST' });
  await replaceRoute(hc, { dst: 'default', gateway: '10.2.0.1', metric: 50, protocol: 'boot' });
  assert.is((await c.ip<any[]>('route', 'show', 'default', 'proto', 'boot')).length, 1, 'now proto boot');
  assert.is((await c.ip<any[]>('route', 'show', 'default', 'proto', 'static')).length, 0);

  // a route in another table, with link scope and no gateway
  await addRoute(hc, { dst: '198.51.100.0/24', link: 'eth0', table: 100 });
  const t100 = await c.ip<any[]>('route', 'show', 'table', '100');
  assert.equal(
    t100.map((x) => [x.dst, x.dev, x.scope]),
    [['198.51.100.0/24', 'eth0', 'link']],
  );
  assert.equal(
    (await listRoutes(hc, { table: 100 })).map((x) => [x.dst, x.scope, x.table]),
    [['198.51.100.0/24', 'link', 100]],
  );
  await deleteRoute(hc, { dst: '198.51.100.0/24', table: 100 });
  assert.equal(await c.ip<any[]>('route', 'show', 'table', '100'), []);
  await assertRejects(() => deleteRoute(hc, { dst: '198.51.100.0/24', table: 100 }), { code: 'ESRCH' });
  await deleteRoute(hc, { dst: 'default', gateway: '10.2.0.1' });
  assert.not.ok((await ping(c, '192.0.2.1', { timeoutSec: 1 })).ok, 'without the default route the ping fails again');
});

test('route types blackhole, unreachable and local; onlink; IPv6', async () => {
  await addRoute(hc, { dst: '203.0.113.0/24', type: 'blackhole' });
  await addRoute(hc, { dst: '203.0.114.0/24', type: 'unreachable' });
  await addRoute(hc, { dst: '203.0.115.7/32', type: 'local', link: 'eth0' });
  await addRoute(hc, { dst: '203.0.116.0/24', gateway: '10.77.0.1', link: 'eth0', onlink: true });
  const main = await c.ip<any[]>('route', 'show');
  assert.ok(main.some((r) => r.type === 'blackhole' && r.dst === '203.0.113.0/24'));
  assert.ok(main.some((r) => r.type === 'unreachable' && r.dst === '203.0.114.0/24'));
  const onlink = main.find((r) => r.dst === '203.0.116.0/24');
  assert.ok(onlink.flags.includes('onlink'));
  const local = await c.ip<any[]>('route', 'show', 'table', 'local');
  assert.ok(local.some((r) => r.type === 'local' && r.dst === '203.0.115.7'));
  const mine = await listRoutes(hc, { table: 'all', family: 4 });
  assert.equal(mine.find((r) => r.dst === '203.0.113.0/24')!.type, 'blackhole');
  assert.equal(mine.find((r) => r.dst === '203.0.114.0/24')!.type, 'unreachable');
  const l = mine.find((r) => r.dst === '203.0.115.7/32')!;
  assert.equal([l.type, l.table, l.scope], ['local', 255, 'host']);
  assert.ok(mine.find((r) => r.dst === '203.0.116.0/24')!.onlink);
  // a default blackhole needs its family
  await addRoute(hc, { dst: 'default', type: 'blackhole', family: 6, metric: 999 });
  const v6 = await c.ip<any[]>('-6', 'route', 'show');
  assert.ok(v6.some((r) => r.dst === 'default' && r.type === 'blackhole'));
  await addAddress(hc, { link: 'eth0', cidr: 'fd00:2::2/64', nodad: true });
  await addRoute(hc, { dst: 'fd00:99::/48', gateway: 'fd00:2::1' });
  const r6 = (await c.ip<any[]>('-6', 'route', 'show')).find((r) => r.dst === 'fd00:99::/48');
  assert.is(r6.gateway, 'fd00:2::1');
  assert.is((await listRoutes(hc, { family: 6 })).find((r) => r.dst === 'fd00:99::/48')!.gateway, 'fd00:2::1');
});

test('multipath (ECMP) routes with weights', async () => {
  await createVethPair(hc, { name: 'eth1', up: true, peer: { name: 'veth1', netns: h, up: true } });
  await addAddress(hc, { link: 'eth0', cidr: '10.3.0.2/24' });
  await addAddress(hc, { link: 'eth1', cidr: '10.4.0.2/24' });
  await addRoute(hc, {
    dst: '100.64.0.0/16',
    multipath: [
      { gateway: '10.3.0.1', link: 'eth0', weight: 1 },
      { gateway: '10.4.0.1', link: 'eth1', weight: 3 },
    ],
  });
  const [r] = await c.ip<any[]>('route', 'show', '100.64.0.0/16');
  assert.equal(
    r.nexthops.map((n: any) => [n.gateway, n.dev, n.weight]),
    [
      ['10.3.0.1', 'eth0', 1],
      ['10.4.0.1', 'eth1', 3],
    ],
  );
  const mine = (await listRoutes(hc, { family: 4 })).find((x) => x.dst === '100.64.0.0/16')!;
  const eth0 = (await getLink(hc, 'eth0')).index;
  const eth1 = (await getLink(hc, 'eth1')).index;
  assert.equal(mine.multipath, [
    { gateway: '10.3.0.1', linkIndex: eth0, weight: 1, onlink: false },
    { gateway: '10.4.0.1', linkIndex: eth1, weight: 3, onlink: false },
  ]);
  assert.equal((await listRoutes(hc, { link: 'eth1', family: 4 })).map((x) => x.dst).sort(), ['10.4.0.0/24', '100.64.0.0/16']);
});

test('policy rules: add, list, delete', async () => {
  await addRule(hc, { priority: 100, src: '10.5.0.0/16', table: 100 });
  await addRule(hc, { priority: 101, fwmark: 7, table: 101 });
  await addRule(hc, { priority: 102, dst: '10.6.0.0/16', action: 'blackhole' });
  await addRule(hc, { priority: 103, inputLink: 'eth0', table: 'main', invert: true });
  const rules = await c.ip<any[]>('rule', 'show');
  const byPrio = (p: number) => rules.find((r) => r.priority === p);
  assert.equal([byPrio(100).src, byPrio(100).srclen, byPrio(100).table], ['10.5.0.0', 16, '100']);
  assert.equal([byPrio(101).fwmark, byPrio(101).table], ['0x7', '101']);
  assert.is(byPrio(102).action, 'blackhole');
  assert.equal([byPrio(103).iif, byPrio(103).not], ['eth0', null]);
  const mine = await listRules(hc, { family: 4 });
  const r100 = mine.find((r) => r.priority === 100)!;
  assert.equal([r100.src, r100.table, r100.action], ['10.5.0.0/16', 100, 'table']);
  assert.is(mine.find((r) => r.priority === 101)!.fwmark, 7);
  assert.is(mine.find((r) => r.priority === 102)!.action, 'blackhole');
  assert.ok(mine.find((r) => r.priority === 103)!.invert);
  assert.ok(
    mine.some((r) => r.priority === 32766 && r.table === 254),
    'the default main rule is listed',
  );
  await deleteRule(hc, { priority: 100, src: '10.5.0.0/16', table: 100 });
  await deleteRule(hc, { priority: 102 });
  const after = (await c.ip<any[]>('rule', 'show')).map((r) => r.priority);
  assert.not.ok(after.includes(100));
  assert.not.ok(after.includes(102));
  assert.ok(after.includes(101));
  await assertRejects(() => deleteRule(hc, { priority: 100 }), { code: 'ENOENT' });
});

test('a bridge made by the library: addresses, routes and forwarding between two containers', async () => {
  await createLink(h, { kind: 'bridge', name: 'br0', up: true });
  await addAddress(h, { link: 'br0', cidr: '10.8.0.1/24' });
  const c2 = await host.createContainer('c2');
  const hc2 = openHandleSync({ pid: c2.pid });
  try {
    await createVethPair(h, { name: 'vc2', master: 'br0', up: true, peer: { name: 'eth0', netns: hc2, up: true } });
    await addAddress(hc2, { link: 'eth0', cidr: '10.8.0.2/24' });
    await addRoute(hc2, { dst: 'default', gateway: '10.8.0.1' });
    const p = await ping(c2, '10.8.0.1', { count: 2, interval: 0.2 });
    assert.ok(p.ok, p.output);
  } finally {
    hc2.close();
  }
});

test.run();

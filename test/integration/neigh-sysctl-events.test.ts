/** Neighbours, gratuitous ARP, sysctls per namespace, events, waiting for oper-up, and many requests at once. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertRejects } from '../fixtures/assert.js';
import { readFileSync } from 'node:fs';
import { sandboxed, waitFor, type Host, type Container } from '../../netns-harness/index.js';
import { netlinkLab, type NetlinkLab } from '../fixtures/netlink-lab.js';
import {
  openHandleSync,
  createVethPair,
  createLink,
  setLinkUp,
  setLinkDown,
  addAddress,
  deleteAddress,
  addRoute,
  getLink,
  listLinks,
  listAddresses,
  addNeighbour,
  replaceNeighbour,
  deleteNeighbour,
  listNeighbours,
  sendGratuitousArp,
  readSysctlSync,
  writeSysctlSync,
  setIpForwardSync,
  getIpForwardSync,
  setRpFilterSync,
  setAcceptRaSync,
  setDisableIpv6Sync,
  setRouteLocalnetSync,
  setArpNotifySync,
  setAcceptDadSync,
  setArpAcceptSync,
  watch,
  waitForOperUp,
  batch,
  deleteLink,
  type Handle,
  type NetEvent,
  type NetlinkError,
} from '../../lib/index.js';

await sandboxed();

let host: Host;
let a: Container;
let b: Container;
let ha: Handle;
let hb: Handle;

let lab: NetlinkLab;

test.before.each(async () => {
  lab = await netlinkLab(['a', 'b']);
  host = lab.host;
  [a, b, ha, hb] = [lab.ctr.a!, lab.ctr.b!, lab.hc.a!, lab.hc.b!];
  // a direct wire between a and b
  await createVethPair(ha, { name: 'eth0', up: true, peer: { name: 'eth0', netns: hb, up: true } });
});
test.after.each(() => lab.destroy());

test('neighbours: add, replace, delete, list, ARP and NDP', async () => {
  await addNeighbour(ha, { link: 'eth0', address: '10.0.0.9', lladdr: '02:00:00:00:00:09' });
  await addNeighbour(ha, { link: 'eth0', address: 'fd00::9', lladdr: '02:00:00:00:00:19', state: 'reachable', router: true });
  let n = await a.ip<any[]>('neigh', 'show', 'dev', 'eth0');
  const v4 = n.find((x) => x.dst === '10.0.0.9');
  assert.equal([v4.lladdr, v4.state], ['02:00:00:00:00:09', ['PERMANENT']]);
  const v6 = n.find((x) => x.dst === 'fd00::9');
  assert.is(v6.lladdr, '02:00:00:00:00:19');
  assert.is(v6.router, null);
  await assertRejects(() => addNeighbour(ha, { link: 'eth0', address: '10.0.0.9', lladdr: '02:00:00:00:00:0a' }), { code: 'EEXIST' });
  await replaceNeighbour(ha, { link: 'eth0', address: '10.0.0.9', lladdr: '02:00:00:00:00:0a', state: 'stale' });
  n = await a.ip<any[]>('neigh', 'show', 'dev', 'eth0');
  assert.equal(n.find((x) => x.dst === '10.0.0.9').lladdr, '02:00:00:00:00:0a');
  const mine = await listNeighbours(ha, { link: 'eth0' });
  const m4 = mine.find((x) => x.address === '10.0.0.9')!;
  assert.equal([m4.lladdr, m4.state, m4.family], ['02:00:00:00:00:0a', ['stale'], 4]);
  const m6 = mine.find((x) => x.address === 'fd00::9')!;
  assert.ok(m6.router);
  assert.equal(
    (await listNeighbours(ha, { family: 6 })).every((x) => x.family === 6),
    true,
  );
  await deleteNeighbour(ha, { link: 'eth0', address: '10.0.0.9' });
  n = await a.ip<any[]>('neigh', 'show', 'dev', 'eth0');
  assert.not.ok(n.some((x) => x.dst === '10.0.0.9'));
});

test("gratuitous ARP from inside the namespace reaches the peer's neighbour table", async () => {
  await addAddress(ha, { link: 'eth0', cidr: '10.0.0.1/24' });
  await addAddress(hb, { link: 'eth0', cidr: '10.0.0.2/24' });
  const macA = (await getLink(ha, 'eth0')).mac;
  // accept gratuitous ARP as new entries on b, so the entry can only come from our packet
  setArpAcceptSync(hb, 'eth0', true);
  const before = await b.ip<any[]>('neigh', 'show', 'dev', 'eth0');
  assert.not.ok(
    before.some((x) => x.dst === '10.0.0.1'),
    'b knows nothing about a yet',
  );
  await sendGratuitousArp(ha, { link: 'eth0', address: '10.0.0.1', count: 2, intervalMs: 50 });
  const entry = await waitFor(async () => (await b.ip<any[]>('neigh', 'show', 'dev', 'eth0')).find((x) => x.dst === '10.0.0.1'));
  assert.ok(entry, 'the announcement created an entry on b');
  assert.is(entry.lladdr, macA);
  // and a's ARP counters say a packet left
  const sent = (await a.ip<any[]>('-s', 'link', 'show', 'dev', 'eth0'))[0].stats64.tx.packets;
  assert.ok(sent >= 2);
});

test("sysctls are read and written in the handle's namespace, not the caller's", async () => {
  const own = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
  // New namespaces copy ip_forward from the machine's own: start both from a known state.
  await a.setSysctl('net.ipv4.ip_forward', 0);
  await b.setSysctl('net.ipv4.ip_forward', 0);
  assert.not.ok(getIpForwardSync(ha));
  setIpForwardSync(ha, true);
  assert.is(await a.sysctl('net.ipv4.ip_forward'), '1');
  assert.is(await b.sysctl('net.ipv4.ip_forward'), '0');
  assert.is(readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim(), own, "the caller's namespace is untouched");
  assert.ok(getIpForwardSync(ha));
  assert.not.ok(getIpForwardSync(hb));
  setIpForwardSync(ha, true, 6);
  assert.is(await a.sysctl('net.ipv6.conf.all.forwarding'), '1');
  setRpFilterSync(ha, 'eth0', 2);
  assert.is(await a.sysctl('net.ipv4.conf.eth0.rp_filter'), '2');
  setAcceptRaSync(ha, 'eth0', 0);
  assert.is(await a.sysctl('net.ipv6.conf.eth0.accept_ra'), '0');
  setRouteLocalnetSync(ha, 'eth0', true);
  assert.is(await a.sysctl('net.ipv4.conf.eth0.route_localnet'), '1');
  setArpNotifySync(ha, 'eth0', true);
  assert.is(await a.sysctl('net.ipv4.conf.eth0.arp_notify'), '1');
  setAcceptDadSync(ha, 'eth0', 0);
  assert.is(await a.sysctl('net.ipv6.conf.eth0.accept_dad'), '0');
  setDisableIpv6Sync(ha, 'eth0', true);
  assert.is(await a.sysctl('net.ipv6.conf.eth0.disable_ipv6'), '1');
  assert.is(await b.sysctl('net.ipv6.conf.eth0.disable_ipv6'), '0');
  // keys with dots in interface names go in the path form
  await createLink(ha, { kind: 'bridge', name: 'br.5' });
  writeSysctlSync(ha, 'net/ipv4/conf/br.5/rp_filter', '1');
  assert.is((await a.exec(['cat', '/proc/sys/net/ipv4/conf/br.5/rp_filter'])).stdout.trim(), '1');
  assert.is(readSysctlSync(ha, 'net/ipv4/conf/br.5/rp_filter'), '1');
  await assertRejects(() => readSysctlSync(ha, 'net.ipv4.conf.nosuch0.rp_filter'), { code: 'ENOENT' });
  await assertRejects(() => readSysctlSync(ha, 'net/../../etc/passwd'), { code: 'ERR_INVALID_ARG_VALUE' });
});

test('events: link, address and route changes in another namespace, then the socket closes', async () => {
  const seen: NetEvent[] = [];
  // netlink sockets in a's namespace that joined multicast groups (the kernel's own table, read from a's /proc/net)
  const subscribed = () =>
    readFileSync(`/proc/${a.pid}/net/netlink`, 'utf8')
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f[1] === '0' && f[3] !== undefined && !/^0+$/.test(f[3]!)).length;
  assert.is(subscribed(), 0);
  const events = watch(ha);
  assert.is(subscribed(), 1, "the subscription is a socket in a's namespace");
  const collect = (async () => {
    for await (const ev of events) {
      seen.push(ev);
      if (ev.type === 'route' && ev.action === 'del') break; // leaving the loop closes the subscription
    }
  })();
  await createLink(ha, { kind: 'bridge', name: 'evbr', up: true });
  await addAddress(ha, { link: 'evbr', cidr: '10.44.0.1/24' });
  await addRoute(ha, { dst: '10.45.0.0/16', gateway: '10.44.0.2' });
  await deleteAddress(ha, { link: 'evbr', cidr: '10.44.0.1/24' }); // takes the route with it
  await Promise.race([
    collect,
    new Promise((_, rej) => setTimeout(() => rej(new Error(`timed out; saw ${JSON.stringify(seen.map((e) => e.type + e.action))}`)), 20_000)),
  ]);
  assert.ok(seen.some((e) => e.type === 'link' && e.action === 'new' && e.link.name === 'evbr'));
  assert.ok(seen.some((e) => e.type === 'address' && e.action === 'new' && e.address.cidr === '10.44.0.1/24'));
  assert.ok(seen.some((e) => e.type === 'route' && e.action === 'new' && e.route.dst === '10.45.0.0/16'));
  assert.ok(seen.some((e) => e.type === 'address' && e.action === 'del' && e.address.cidr === '10.44.0.1/24'));
  assert.not.ok(
    seen.some((e) => e.type === 'link' && e.link.name === 'eth0' && e.action === 'del'),
    'nothing from other namespaces',
  );
  assert.is(subscribed(), 0, 'leaving the loop closed the socket');
});

test('waitForOperUp resolves when the other end comes up, and times out otherwise', async () => {
  await setLinkDown(hb, 'eth0');
  const waiting = waitForOperUp(ha, 'eth0', { timeoutMs: 20_000 });
  setTimeout(() => void setLinkUp(hb, 'eth0'), 100);
  const l = await waiting;
  assert.is(l.operstate, 'up');
  assert.is((await a.ip<any[]>('link', 'show', 'dev', 'eth0'))[0].operstate, 'UP');
  await setLinkDown(hb, 'eth0');
  await assertRejects(() => waitForOperUp(ha, 'eth0', { timeoutMs: 200 }), { code: 'ERR_TIMEOUT', message: /eth0/ });
});

test('hundreds of requests in flight at once, with dumps running alongside', async () => {
  const hh = openHandleSync({ pid: host.pid });
  try {
    await createLink(hh, { kind: 'bridge', name: 'br0', up: true });
    const n = 300;
    const dumps: Promise<unknown>[] = [];
    const results = await batch(
      Array.from({ length: n }, (_, i) => async () => {
        // dumps on the same socket while creations are in flight: serialized, never EBUSY
        if (i % 30 === 0) dumps.push(listLinks(hh), listAddresses(hh));
        await createVethPair(hh, { name: `p${i}`, master: 'br0', up: true, peer: { name: `q${i}` } });
        await addAddress(hh, { link: `q${i}`, cidr: `10.60.${i >> 8}.${i & 255}/32` });
        return i;
      }),
    );
    assert.is(results.length, n);
    await Promise.all(dumps);
    const links = await host.ip<any[]>('link', 'show', 'master', 'br0');
    assert.is(links.length, n);
    const addrs = (await host.ip<any[]>('-4', 'addr', 'show')).filter((l) => /^q\d+$/.test(l.ifname) && l.addr_info.length === 1);
    assert.is(addrs.length, n);
    // errors in a batch come back per request, naming each object
    const errs = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => deleteLink(hh, `nosuch${i}`)));
    assert.equal(
      errs.map((e) => e.status === 'rejected' && (e.reason as NetlinkError).object),
      Array.from({ length: 20 }, (_, i) => `nosuch${i}`),
    );
    // many concurrent dumps on one socket all succeed and agree
    const many = await Promise.all(Array.from({ length: 40 }, () => listLinks(hh)));
    assert.ok(many.every((l) => l.length === 2 * n + 2));
  } finally {
    hh.close();
  }
});

test.run();

/**
 * Lifetimes in lib/net: a handle is its caller's own (its own socket, an idempotent close), a watch ends when
 * its handle closes or its AbortSignal fires, a watch can list what exists before streaming changes, and a
 * handle on a just-spawned process waits for that process's own namespace. Oracles: the kernel's table of
 * netlink sockets (/proc/PID/net/netlink) and `ip -j`.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertRejects } from '../fixtures/assert.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { sandboxed, run, type Container } from '../../netns-harness/index.js';
import { netlinkLab, type NetlinkLab } from '../fixtures/netlink-lab.js';
import {
  openHandle,
  openHandleSync,
  createLink,
  createVethPair,
  ensureBridge,
  addAddress,
  getLink,
  listLinks,
  watch,
  waitForOwnNetns,
  type NetEvent,
  type Watch,
} from '../../lib/index.js';

await sandboxed();

let lab: NetlinkLab;
let a: Container;

test.before.each(async () => {
  lab = await netlinkLab(['a']);
  a = lab.ctr.a!;
});
test.after.each(() => lab.destroy());

/** The NETLINK_ROUTE sockets in a process's namespace, from the kernel's own table: all, and those in multicast groups. */
function routeSockets(pid: number): { all: number; subscribed: number } {
  const rows = readFileSync(`/proc/${pid}/net/netlink`, 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/));
  const route = rows.filter((f) => f[1] === '0');
  return { all: route.length, subscribed: route.filter((f) => f[3] !== undefined && !/^0+$/.test(f[3]!)).length };
}

/** Rejects after `ms` so that a hung promise fails the test instead of the run. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not settled after ${ms} ms`)), ms)));
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

test('every handle has its own socket: closing one leaves the others working, and closing twice does nothing', async () => {
  const before = routeSockets(a.pid).all;
  const h1 = openHandleSync({ pid: a.pid });
  const h2 = openHandleSync({ pid: a.pid });
  assert.is(routeSockets(a.pid).all, before + 2, 'two handles on one namespace are two sockets');
  h1.close();
  h1.close();
  assert.ok(h1.closed);
  assert.is(routeSockets(a.pid).all, before + 1, 'closing one released its own socket only');
  await createLink(h2, { kind: 'bridge', name: 'own0' });
  assert.is((await a.ip<any[]>('link', 'show', 'dev', 'own0'))[0].ifname, 'own0', 'the other handle still works');
  await assertRejects(() => getLink(h1, 'own0'), { message: /closed/ }, 'a closed handle must not answer');
  {
    using h3 = openHandleSync({ pid: a.pid });
    assert.is((await getLink(h3, 'own0')).name, 'own0');
    assert.is(routeSockets(a.pid).all, before + 2);
  }
  assert.is(routeSockets(a.pid).all, before + 1, 'leaving the `using` block closed the handle');
  h2.close();
  assert.is(routeSockets(a.pid).all, before);
});

test('createVethPair and ensureBridge resolve with the narrowed link', async () => {
  const br = await ensureBridge(lab.h, 'nbr0', { up: true });
  assert.is(br.link.bridge.stp, false, 'a BridgeLink has its bridge details without a kind check');
  const veth = await createVethPair(lab.h, { name: 'nv0', master: 'nbr0', peer: { name: 'eth0', netns: lab.hc.a! } });
  const peer = (await a.ip<any[]>('link', 'show', 'dev', 'eth0'))[0];
  assert.is(veth.peerIndex, peer.ifindex, 'a VethLink has the peer index (in the peer namespace)');
  assert.is(veth.masterIndex, br.link.index);
});

test('a watch ends when its handle closes: a pending next() settles and the subscription socket goes', async () => {
  const h = openHandleSync({ pid: a.pid });
  const w = watch(h, { link: true });
  assert.is(routeSockets(a.pid).subscribed, 1);
  const pending = [w.next(), w.next()];
  h.close();
  const r = await within(Promise.all(pending), 5000, 'next() after close');
  assert.ok(
    r.every((x) => x.done),
    'both pending next() calls resolved done',
  );
  assert.ok((await w.next()).done, 'and stays done');
  assert.is(routeSockets(a.pid).subscribed, 0, 'the subscription socket is closed');
});

test('a watch ends when its AbortSignal fires, and one given an aborted signal never starts', async () => {
  const ac = new AbortController();
  const w = watch(lab.hc.a!, { signal: ac.signal });
  const seen: NetEvent[] = [];
  const loop = (async () => {
    for await (const ev of w) seen.push(ev);
  })();
  await createLink(lab.hc.a!, { kind: 'bridge', name: 'ab0' });
  // wait for the event itself (bounded), then abort
  for (let i = 0; i < 500 && !seen.some((e) => e.type === 'link' && e.link.name === 'ab0'); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(seen.some((e) => e.type === 'link' && e.link.name === 'ab0'));
  ac.abort();
  await within(loop, 5000, 'the for-await loop after abort');
  assert.is(routeSockets(a.pid).subscribed, 0);
  const w2: Watch = watch(lab.hc.a!, { signal: AbortSignal.abort() });
  assert.ok((await within(w2.next(), 5000, 'next() of an aborted watch')).done);
  assert.is(routeSockets(a.pid).subscribed, 0);
});

test('listExisting: first what exists (as ip -j shows it), then the changes', async () => {
  const hc = lab.hc.a!;
  await createLink(hc, { kind: 'bridge', name: 'ex0', up: true });
  await addAddress(hc, { link: 'ex0', cidr: '10.61.0.1/24' });
  const w = watch(hc, { link: true, address: true, listExisting: true });
  await createLink(hc, { kind: 'bridge', name: 'later0' });
  const seen: NetEvent[] = [];
  await within(
    (async () => {
      for await (const ev of w) {
        seen.push(ev);
        if (ev.type === 'link' && ev.link.name === 'later0') break;
      }
    })(),
    5000,
    'listing and streaming',
  );
  const laterAt = seen.findIndex((e) => e.type === 'link' && e.link.name === 'later0');
  const listed = seen.slice(0, laterAt);
  const links = (await a.ip<any[]>('link', 'show'))
    .map((l) => l.ifname)
    .filter((n) => n !== 'later0')
    .sort();
  assert.equal([...new Set(listed.flatMap((e) => (e.type === 'link' ? [e.link.name] : [])))].sort(), links, 'every link that existed, before the change');
  const addrs = (await a.ip<any[]>('addr', 'show')).flatMap((l) => l.addr_info.map((x: any) => `${x.local}/${x.prefixlen}`)).sort();
  assert.equal([...new Set(listed.flatMap((e) => (e.type === 'address' ? [e.address.cidr] : [])))].sort(), addrs, 'every address that existed');
  assert.ok(listed.every((e) => e.action === 'new'));
  assert.is(routeSockets(a.pid).subscribed, 0, 'leaving the loop ended the watch');
  assert.equal((await listLinks(hc)).map((l) => l.name).sort(), [...links, 'later0'].sort());
});

/** A child that starts in this namespace and moves to a new one of its own after `delay` seconds. */
function unshareLater(delay: number): ChildProcess {
  return spawn('sh', ['-c', `sleep ${delay}; exec unshare -n sleep 30`], { stdio: 'ignore' });
}

/** Runs `body` in a fresh Node process (in this sandbox) with `openHandleSync` and `watch` imported; its exit status and output. */
async function inChild(body: string): Promise<{ code: number | null; out: string }> {
  const lib = new URL('../../lib/index.js', import.meta.url).href;
  const child = spawn(process.execPath, ['--input-type=module', '-e', `import { openHandleSync, watch } from ${JSON.stringify(lib)};\n${body}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const code = await within(new Promise<number | null>((r) => child.once('exit', r)), 20_000, 'the child').finally(() => child.kill('SIGKILL'));
  return { code, out };
}

test('a watch keeps the process alive until it ends; with persistent: false it does not', async () => {
  // The only thing that could close the handle is an unref'd timer: it fires only if the watch holds the process.
  const held = await inChild(`
    const h = openHandleSync();
    setTimeout(() => h.close(), 200).unref();
    for await (const ev of watch(h, { link: true })) void ev;
    console.log('ended by close');`);
  assert.equal([held.code, held.out.trim()], [0, 'ended by close']);
  // Nothing holds the process: it exits with the watch pending (Node's status 13: an unsettled top-level await).
  const loose = await inChild(`
    const h = openHandleSync();
    setTimeout(() => h.close(), 60_000).unref();
    for await (const ev of watch(h, { link: true, persistent: false })) void ev;
    console.log('ended by close');`);
  assert.equal([loose.code, loose.out.trim()], [13, '']);
});

test('openHandle waits for a freshly spawned process to have its own namespace', async () => {
  const child = unshareLater(0.3);
  try {
    await assertRejects(() => openHandleSync({ pid: child.pid! }), { code: 'ERR_NETNS_SELF' }, 'still in our namespace: refused');
    const h = await openHandle({ pid: child.pid! }, { waitForOwnNetns: { timeoutMs: 10_000 } });
    try {
      await createLink(h, { kind: 'bridge', name: 'kid0' });
      const there = await run(['ip', '-j', 'link', 'show', 'dev', 'kid0'], { netns: `/proc/${child.pid}/ns/net` });
      assert.is(JSON.parse(there.stdout)[0].ifname, 'kid0', "the handle is in the child's new namespace");
      const here = await run(['ip', '-j', 'link', 'show'], {});
      assert.not.ok(
        (JSON.parse(here.stdout) as any[]).some((l) => l.ifname === 'kid0'),
        'and not in ours',
      );
    } finally {
      h.close();
    }
  } finally {
    child.kill('SIGKILL');
  }
});

test('waitForOwnNetns is bounded: ERR_TIMEOUT for a process that stays, ESRCH for one that is gone, AbortError on abort', async () => {
  const stays = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    await assertRejects(() => waitForOwnNetns(stays.pid!, { timeoutMs: 200 }), { code: 'ERR_TIMEOUT' });
    {
      const e = await assertRejects(() => waitForOwnNetns(stays.pid!, { timeoutMs: 10_000, signal: AbortSignal.timeout(100) }), {});
      assert.is((e as Error).name, 'AbortError');
    }
  } finally {
    stays.kill('SIGKILL');
  }
  const gone = spawn('true', { stdio: 'ignore' });
  await new Promise((r) => gone.once('exit', r));
  await assertRejects(() => waitForOwnNetns(gone.pid!, { timeoutMs: 1000 }), { code: 'ESRCH' });
});

test.run();

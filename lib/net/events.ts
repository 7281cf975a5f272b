/**
 * Change notifications of a namespace as an async iterator (links, addresses, routes, neighbours), optionally
 * preceded by what exists; and waitForOperUp, built on it. Each subscription has its own socket in the
 * namespace. See docs/NET.md ("Watching") for how a watch ends.
 */
import {
  RTM_DELADDR,
  RTM_DELLINK,
  RTM_DELNEIGH,
  RTM_DELNSID,
  RTM_DELROUTE,
  RTM_DELRULE,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWNEIGH,
  RTM_NEWNSID,
  RTM_NEWROUTE,
  RTM_NEWRULE,
  RTNLGRP_IPV4_IFADDR,
  RTNLGRP_IPV4_ROUTE,
  RTNLGRP_IPV4_RULE,
  RTNLGRP_IPV6_IFADDR,
  RTNLGRP_IPV6_ROUTE,
  RTNLGRP_IPV6_RULE,
  RTNLGRP_LINK,
  RTNLGRP_NEIGH,
  RTNLGRP_NSID,
  NETNSA_NSID,
} from '../netlink/constants.js';
import { getS32, parseAttrs, type NlMessage } from '../netlink/encoding.js';
import { listRules, parseRule, type Rule } from './rule.js';
import { ERR, ERRNO, NetplumbError } from '../errors.js';
import { NetlinkError } from '../netlink/errors.js';
import { NetlinkSocket } from '../netlink/socket.js';
import { listAddresses, parseAddress, type Address } from './addr.js';
import type { Handle } from './handle.js';
import { getLink, listLinks, parseLink, type Link } from './link.js';
import type { LinkRef } from './link-types.js';
import { listNeighbours, parseNeighbour, type Neighbour } from './neigh.js';
import { isFdbMessage, listFdb, parseFdbEntry, type FdbEntry } from './fdb.js';
import { listRoutes, parseRoute, type Route } from './route.js';

/** One change in a namespace: a link, address, route or neighbour that appeared or changed (`new`) or went (`del`). */
export type NetEvent =
  | { type: 'link'; action: 'new' | 'del'; link: Link }
  | { type: 'address'; action: 'new' | 'del'; address: Address }
  | { type: 'route'; action: 'new' | 'del'; route: Route }
  | { type: 'neighbour'; action: 'new' | 'del'; neighbour: Neighbour }
  | { type: 'fdb'; action: 'new' | 'del'; fdb: FdbEntry }
  | { type: 'rule'; action: 'new' | 'del'; rule: Rule }
  /** another namespace was given an id in this one (`ip netns set`), or lost it */
  | { type: 'nsid'; action: 'new' | 'del'; nsid: number };

/** What to watch, and how the subscription behaves. */
export interface WatchOptions {
  link?: boolean;
  address?: boolean;
  route?: boolean;
  neighbour?: boolean;
  /** bridge and VXLAN forwarding entries (`bridge monitor fdb`) */
  fdb?: boolean;
  /** policy routing rules (`ip monitor rule`); only when asked for */
  rule?: boolean;
  /** namespace ids (`ip monitor nsid`); only when asked for, and never listed first */
  nsid?: boolean;
  /**
   * First report what exists (as `new` events: links, then addresses, routes of every table, neighbours), then
   * the changes. The subscription is made before the listing, so nothing that happens in between is missed; an
   * object changed meanwhile may be reported twice, the later report being the newer state.
   */
  listExisting?: boolean;
  /** ends the watch as `return()` would; a pending `next()` resolves `done` */
  signal?: AbortSignal;
  /**
   * Keep the process alive while the watch is open (default true, like `fs.watch`'s `persistent`). With false,
   * a process whose only pending work is this watch exits.
   */
  persistent?: boolean;
  /** events kept while the consumer is slow before the subscription fails with ENOBUFS (default 10000) */
  maxQueue?: number;
}

/**
 * A subscription: an async iterator of NetEvents that ends when `return()` is called (leaving a `for await`
 * loop does), when the handle it was made on closes, or when its AbortSignal fires. Ending settles a pending
 * `next()` with `done` and closes the subscription's socket. `await using w = watch(h)` ends it at the end of
 * the block.
 */
export interface Watch extends AsyncIterableIterator<NetEvent, undefined> {
  next(): Promise<IteratorResult<NetEvent, undefined>>;
  return(): Promise<IteratorReturnResult<undefined>>;
  [Symbol.asyncIterator](): Watch;
  [Symbol.asyncDispose](): Promise<void>;
}

type Kinds = { link: boolean; address: boolean; route: boolean; neighbour: boolean; fdb: boolean; rule: boolean; nsid: boolean };

function toEvent(m: NlMessage, kinds: Kinds): NetEvent | undefined {
  switch (m.type) {
    case RTM_NEWLINK:
    case RTM_DELLINK:
      return { type: 'link', action: m.type === RTM_NEWLINK ? 'new' : 'del', link: parseLink(m) };
    case RTM_NEWADDR:
    case RTM_DELADDR:
      return { type: 'address', action: m.type === RTM_NEWADDR ? 'new' : 'del', address: parseAddress(m) };
    case RTM_NEWROUTE:
    case RTM_DELROUTE:
      return { type: 'route', action: m.type === RTM_NEWROUTE ? 'new' : 'del', route: parseRoute(m) };
    case RTM_NEWNEIGH:
    case RTM_DELNEIGH:
      // the neighbour group carries the FDB too (AF_BRIDGE), told apart by family
      if (isFdbMessage(m)) return kinds.fdb ? { type: 'fdb', action: m.type === RTM_NEWNEIGH ? 'new' : 'del', fdb: parseFdbEntry(m) } : undefined;
      if (!kinds.neighbour) return undefined;
      return { type: 'neighbour', action: m.type === RTM_NEWNEIGH ? 'new' : 'del', neighbour: parseNeighbour(m) };
    case RTM_NEWRULE:
    case RTM_DELRULE:
      return { type: 'rule', action: m.type === RTM_NEWRULE ? 'new' : 'del', rule: parseRule(m) };
    case RTM_NEWNSID:
    case RTM_DELNSID:
      return { type: 'nsid', action: m.type === RTM_NEWNSID ? 'new' : 'del', nsid: getS32(parseAttrs(m.data, 4)[NETNSA_NSID]) ?? -1 };
    default:
      return undefined;
  }
}

/** What exists now of the kinds watched, as `new` events (on the handle's own socket, one dump at a time). */
async function existing(h: Handle, kinds: Kinds): Promise<NetEvent[]> {
  const out: NetEvent[] = [];
  if (kinds.link) for (const link of await listLinks(h)) out.push({ type: 'link', action: 'new', link });
  if (kinds.address) for (const address of await listAddresses(h)) out.push({ type: 'address', action: 'new', address });
  if (kinds.route) for (const route of await listRoutes(h, { table: 'all' })) out.push({ type: 'route', action: 'new', route });
  if (kinds.neighbour) for (const neighbour of await listNeighbours(h)) out.push({ type: 'neighbour', action: 'new', neighbour });
  if (kinds.fdb) for (const fdb of await listFdb(h)) out.push({ type: 'fdb', action: 'new', fdb });
  if (kinds.rule) for (const rule of await listRules(h)) out.push({ type: 'rule', action: 'new', rule });
  return out;
}

/**
 * Subscribes to changes in the handle's namespace (all kinds unless some are chosen). The subscription is
 * live when this returns, so a change made right after is seen. It has its own socket in the namespace; it
 * keeps the process alive until it ends unless `persistent: false` (see Watch for how it ends).
 * Equivalent to: `ip monitor [link] [address] [route] [neigh] [rule] [nsid]`, `bridge monitor fdb`.
 */
export function watch(h: Handle, opts: WatchOptions = {}): Watch {
  const all =
    opts.link === undefined &&
    opts.address === undefined &&
    opts.route === undefined &&
    opts.neighbour === undefined &&
    opts.fdb === undefined &&
    opts.rule === undefined &&
    opts.nsid === undefined;
  const kinds: Kinds = {
    link: all || !!opts.link,
    address: all || !!opts.address,
    route: all || !!opts.route,
    neighbour: all || !!opts.neighbour,
    fdb: all || !!opts.fdb,
    rule: !!opts.rule,
    nsid: !!opts.nsid,
  };
  const groups: number[] = [];
  if (kinds.link) groups.push(RTNLGRP_LINK);
  if (kinds.address) groups.push(RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR);
  if (kinds.route) groups.push(RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE);
  if (kinds.neighbour || kinds.fdb) groups.push(RTNLGRP_NEIGH);
  if (kinds.rule) groups.push(RTNLGRP_IPV4_RULE, RTNLGRP_IPV6_RULE);
  if (kinds.nsid) groups.push(RTNLGRP_NSID);
  const sock = h.inNetnsSync('subscribe', () => NetlinkSocket.open({ groups }));
  sock.keepAlive(opts.persistent ?? true);
  const max = opts.maxQueue ?? 10000;
  const queue: NetEvent[] = [];
  let failure: unknown;
  // every next() waiting for an event (more than one when a caller does not await each before the next)
  let waiters: (() => void)[] = [];
  const wake = () => {
    const w = waiters;
    waiters = [];
    for (const fn of w) fn();
  };
  let done = false;
  const info = { op: 'RTNLGRP', what: `events of ${h.label}` };
  sock.onMessage((m) => {
    const ev = toEvent(m, kinds);
    if (!ev) return;
    if (queue.length >= max) failure ??= new NetlinkError(ERRNO.ENOBUFS, info, `more than ${max} events not consumed`);
    else queue.push(ev);
    wake();
  });
  sock.onError((e) => {
    // ENOBUFS: the kernel dropped notifications because we read too slowly; the caller must resynchronise.
    if (!done) failure ??= new NetlinkError((e as { errno?: number }).errno ?? ERRNO.ENOBUFS, info, e.message);
    wake();
  });
  // Listed after subscribing, so that nothing between the listing and the first event is lost.
  let listing: Promise<NetEvent[]> | undefined = opts.listExisting && !opts.signal?.aborted ? existing(h, kinds) : undefined;
  listing?.catch(() => undefined); // reported by next()
  const finish = () => {
    if (done) return;
    done = true;
    queue.length = 0;
    sock.close();
    forgetClose();
    opts.signal?.removeEventListener('abort', finish);
    wake();
  };
  const forgetClose = h.onClose(finish);
  if (opts.signal?.aborted) finish();
  else opts.signal?.addEventListener('abort', finish, { once: true });
  const it: Watch = {
    async next() {
      if (listing) {
        const first = listing;
        listing = undefined;
        try {
          const now = await first;
          if (!done) queue.unshift(...now);
        } catch (e) {
          if (!done) failure ??= e;
        }
      }
      for (;;) {
        if (queue.length) return { value: queue.shift()!, done: false };
        if (failure !== undefined && !done) {
          const f = failure;
          failure = undefined;
          finish();
          throw f;
        }
        if (done) return { value: undefined, done: true };
        await new Promise<void>((r) => waiters.push(r));
      }
    },
    async return() {
      finish();
      return { value: undefined, done: true };
    },
    async [Symbol.asyncDispose]() {
      finish();
    },
    [Symbol.asyncIterator]() {
      return it;
    },
  };
  return it;
}

const isOperUp = (l: Link) => l.operstate === 'up' || (l.operstate === 'unknown' && l.up && l.lowerUp);

/**
 * Resolves with the link once it is operationally up (carrier and admin up: for a veth, both ends up), or
 * rejects with ERR_TIMEOUT after `timeoutMs` (default 5000).
 * Equivalent to: `ip monitor link` until LINK reports `state UP`.
 */
export async function waitForOperUp(h: Handle, ref: LinkRef, opts: { timeoutMs?: number } = {}): Promise<Link> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  // Up already (a caller that did other work since bringing it up, usually): no subscription, whose socket costs more
  // than the look.
  const first = await getLink(h, ref);
  if (isOperUp(first)) return first;
  const events = watch(h, { link: true });
  let timer: NodeJS.Timeout | undefined;
  try {
    const now = await getLink(h, ref);
    if (isOperUp(now)) return now;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const what = `wait for link ${now.name} to be up: still ${now.operstate} after ${timeoutMs} ms`;
        reject(new NetplumbError(what, { code: ERR.TIMEOUT, op: 'waitForOperUp', object: now.name }));
        void events.return();
      }, timeoutMs);
    });
    const seen = (async () => {
      for await (const ev of events) {
        if (ev.type === 'link' && ev.action === 'new' && ev.link.index === now.index && isOperUp(ev.link)) return ev.link;
      }
      throw new NetplumbError(`wait for link ${now.name} to be up: the event subscription ended`, {
        code: ERR.WATCH_CLOSED,
        op: 'waitForOperUp',
        object: now.name,
      });
    })();
    seen.catch(() => undefined);
    return await Promise.race([seen, timeout]);
  } finally {
    clearTimeout(timer);
    await events.return();
  }
}

/**
 * Change notifications of a namespace as an async iterator: links, addresses, routes, neighbours. Each
 * subscription has its own socket in the namespace; leaving the `for await` loop (or calling `return()`) closes it.
 */
import {
  RTM_DELADDR, RTM_DELLINK, RTM_DELNEIGH, RTM_DELROUTE, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWNEIGH, RTM_NEWROUTE,
  RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV6_ROUTE, RTNLGRP_LINK, RTNLGRP_NEIGH,
} from '../netlink/constants.js';
import type { NlMessage } from '../netlink/encoding.js';
import { ERR, ERRNO, NetplumbError } from '../errors.js';
import { NetlinkError } from '../netlink/errors.js';
import { NetlinkSocket } from '../netlink/socket.js';
import { parseAddress, type Address } from './addr.js';
import { Handle } from './handle.js';
import { getLink, parseLink, type Link } from './link.js';
import type { LinkRef } from './link-types.js';
import { parseNeighbour, type Neighbour } from './neigh.js';
import { parseRoute, type Route } from './route.js';

export type NetEvent =
  | { type: 'link'; action: 'new' | 'del'; link: Link }
  | { type: 'address'; action: 'new' | 'del'; address: Address }
  | { type: 'route'; action: 'new' | 'del'; route: Route }
  | { type: 'neighbour'; action: 'new' | 'del'; neighbour: Neighbour };

export interface WatchOptions {
  link?: boolean;
  address?: boolean;
  route?: boolean;
  neighbour?: boolean;
  /** events kept while the consumer is slow before the subscription fails (default 10000) */
  maxQueue?: number;
}

function toEvent(m: NlMessage): NetEvent | undefined {
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
      return { type: 'neighbour', action: m.type === RTM_NEWNEIGH ? 'new' : 'del', neighbour: parseNeighbour(m) };
    default:
      return undefined;
  }
}

/**
 * Subscribes to changes in the handle's namespace (all kinds unless some are chosen). The subscription is
 * live when this returns, so a change made right after is seen.
 */
export function watch(h: Handle, opts: WatchOptions = {}): AsyncIterableIterator<NetEvent> {
  const all = opts.link === undefined && opts.address === undefined && opts.route === undefined && opts.neighbour === undefined;
  const groups: number[] = [];
  if (all || opts.link) groups.push(RTNLGRP_LINK);
  if (all || opts.address) groups.push(RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR);
  if (all || opts.route) groups.push(RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE);
  if (all || opts.neighbour) groups.push(RTNLGRP_NEIGH);
  const sock = h.inNetns('subscribe', () => NetlinkSocket.open({ groups }));
  sock.keepAlive(true);
  const max = opts.maxQueue ?? 10000;
  const queue: NetEvent[] = [];
  let failure: unknown;
  let wake: (() => void) | undefined;
  let done = false;
  const info = { op: 'RTNLGRP', what: `events of ${h.label}` };
  sock.onMessage((m) => {
    const ev = toEvent(m);
    if (!ev) return;
    if (queue.length >= max) failure ??= new NetlinkError(ERRNO.ENOBUFS, info, `more than ${max} events not consumed`);
    else queue.push(ev);
    wake?.();
  });
  sock.onError((e) => {
    // ENOBUFS: the kernel dropped notifications because we read too slowly; the caller must resynchronise.
    if (!done) failure ??= new NetlinkError((e as { errno?: number }).errno ?? ERRNO.ENOBUFS, info, e.message);
    wake?.();
  });
  const finish = () => {
    done = true;
    sock.close();
    wake?.();
  };
  const it: AsyncIterableIterator<NetEvent> = {
    async next() {
      for (;;) {
        if (queue.length) return { value: queue.shift()!, done: false };
        if (failure !== undefined) {
          const f = failure;
          failure = undefined;
          finish();
          throw f;
        }
        if (done) return { value: undefined, done: true };
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    },
    async return() {
      finish();
      return { value: undefined, done: true };
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
 */
export async function waitForOperUp(h: Handle, ref: LinkRef, opts: { timeoutMs?: number } = {}): Promise<Link> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const events = watch(h, { link: true });
  let timer: NodeJS.Timeout | undefined;
  try {
    const now = await getLink(h, ref);
    if (isOperUp(now)) return now;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const what = `wait for link ${now.name} to be up: still ${now.operstate} after ${timeoutMs} ms`;
        reject(new NetplumbError(what, { code: ERR.TIMEOUT, op: 'waitForOperUp', object: now.name }));
        void events.return?.();
      }, timeoutMs);
    });
    const seen = (async () => {
      for await (const ev of events) {
        if (ev.type === 'link' && ev.action === 'new' && ev.link.index === now.index && isOperUp(ev.link)) return ev.link;
      }
      throw new NetplumbError(`wait for link ${now.name} to be up: the event subscription ended`, { code: ERR.WATCH_CLOSED, op: 'waitForOperUp', object: now.name });
    })();
    seen.catch(() => undefined);
    return await Promise.race([seen, timeout]);
  } finally {
    clearTimeout(timer);
    await events.return?.();
  }
}


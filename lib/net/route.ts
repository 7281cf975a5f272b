/** Routes: add, replace, delete, list, and the kernel's answer for one destination (`ip route`). See docs/NET.md. */
import {
  NLM_F_APPEND,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  RT_TABLE_LOCAL,
  RT_TABLE_MAIN,
  RTA_DST,
  RTA_GATEWAY,
  RTA_IIF,
  RTA_MULTIPATH,
  RTA_OIF,
  RTA_PREFSRC,
  RTA_PRIORITY,
  RTA_SRC,
  RTA_TABLE,
  RTM_DELROUTE,
  RTM_GETROUTE,
  RTM_F_CLONED,
  RTM_NEWROUTE,
  RTNH_F_ONLINK,
  RTA_METRICS,
  RTAX_ADVMSS,
  RTAX_MTU,
} from '../netlink/constants.js';
import { afOf, bytesToIp, familyOf, familyOfAf, ipToBytes, parseCidr, parseIp } from '../addr/ip.js';
import { during, ERR, NetplumbError } from '../errors.js';
import { eachAttr, getU32, MessageWriter, parseAttrs, type NlMessage } from '../netlink/encoding.js';
import { scopeName, scopeNumber, type Scope } from './addr.js';
import type { Handle } from './handle.js';
import { linkIndex, refText } from './link.js';
import type { LinkRef } from './link-types.js';

/** A route's type, as `ip route` names it. */
export type RouteType = 'unicast' | 'local' | 'broadcast' | 'anycast' | 'multicast' | 'blackhole' | 'unreachable' | 'prohibit' | 'throw';
const TYPES: RouteType[] = ['unicast', 'local', 'broadcast', 'anycast', 'multicast', 'blackhole', 'unreachable', 'prohibit', 'throw'];
const PROTOCOLS: Record<string, number> = { unspec: 0, redirect: 1, kernel: 2, boot: 3, static: 4, ra: 9, dhcp: 16 };
const protocolName = (n: number) => Object.entries(PROTOCOLS).find(([, v]) => v === n)?.[0] ?? String(n);
const tableNumber = (t: number | 'main' | 'local') => (t === 'main' ? RT_TABLE_MAIN : t === 'local' ? RT_TABLE_LOCAL : t);

/** One next hop of a multipath route. */
export interface NextHop {
  gateway?: string;
  /** the link the hop goes out of, by name or index */
  link?: LinkRef;
  /** relative weight, 1..256 */
  weight?: number;
  onlink?: boolean;
}

/** A route to add, replace or delete (for a delete, what is given selects). */
export interface RouteSpec {
  /** `default`, or a prefix (`10.1.0.0/16`, `fd00::/64`); a bare address is a host route */
  dst: string;
  gateway?: string;
  /** the link the route goes out of (`dev`), by name or index */
  link?: LinkRef;
  /** preferred source address */
  src?: string;
  table?: number | 'main' | 'local';
  /** priority (metric) */
  metric?: number;
  scope?: Scope | number;
  protocol?: number | 'boot' | 'static' | 'kernel' | 'dhcp' | 'ra';
  type?: RouteType;
  /** gateway is reachable on the device even though no prefix says so */
  onlink?: boolean;
  /** equal-cost (or weighted) next hops instead of gateway/link */
  multipath?: NextHop[];
  /** needed for `default` routes without a gateway (blackhole, unreachable); else taken from the addresses */
  family?: 4 | 6;
  /** the path MTU for this route (`mtu`) */
  mtu?: number;
  /** the TCP MSS to advertise (`advmss`) */
  advmss?: number;
}

/** A route as the kernel reports it. */
export interface Route {
  family: 4 | 6;
  /** `default` or `prefix/len` */
  dst: string;
  gateway: string | undefined;
  /** index of the link the route goes out of (`RouteSpec.link` accepts it) */
  linkIndex: number | undefined;
  src: string | undefined;
  table: number;
  metric: number | undefined;
  scope: Scope | `${number}`;
  protocol: string;
  type: RouteType | `${number}`;
  onlink: boolean;
  multipath: { gateway: string | undefined; linkIndex: number; weight: number; onlink: boolean }[] | undefined;
  mtu: number | undefined;
  advmss: number | undefined;
}

/** Decodes an RTM_NEWROUTE/RTM_DELROUTE message (a dump entry, a `get` answer or an event). */
export function parseRoute(m: NlMessage): Route {
  const d = m.data;
  const fam = familyOfAf(d.readUInt8(0));
  const dstLen = d.readUInt8(1);
  const a = parseAttrs(d, 12);
  const flags = d.readUInt32LE(8);
  let multipath: Route['multipath'];
  if (a[RTA_MULTIPATH]) {
    multipath = [];
    const mp = a[RTA_MULTIPATH]!;
    for (let off = 0; off + 8 <= mp.length;) {
      const len = mp.readUInt16LE(off);
      if (len < 8) break;
      let gw: string | undefined;
      eachAttr(mp.subarray(off + 8, off + len), (t, v) => {
        if (t === RTA_GATEWAY) gw = bytesToIp(v);
      });
      multipath.push({
        gateway: gw,
        linkIndex: mp.readInt32LE(off + 4),
        weight: mp.readUInt8(off + 3) + 1,
        onlink: (mp.readUInt8(off + 2) & RTNH_F_ONLINK) !== 0,
      });
      off += (len + 3) & ~3;
    }
  }
  let mtu: number | undefined;
  let advmss: number | undefined;
  if (a[RTA_METRICS]) {
    eachAttr(a[RTA_METRICS]!, (t, v) => {
      if (t === RTAX_MTU) mtu = getU32(v);
      if (t === RTAX_ADVMSS) advmss = getU32(v);
    });
  }
  const dst = a[RTA_DST] ? `${bytesToIp(a[RTA_DST]!)}/${dstLen}` : dstLen === 0 ? 'default' : `?/${dstLen}`;
  const type = d.readUInt8(7);
  return {
    family: fam,
    dst,
    gateway: a[RTA_GATEWAY] ? bytesToIp(a[RTA_GATEWAY]!) : undefined,
    linkIndex: getU32(a[RTA_OIF]),
    src: a[RTA_PREFSRC] ? bytesToIp(a[RTA_PREFSRC]!) : undefined,
    table: getU32(a[RTA_TABLE]) ?? d.readUInt8(4),
    metric: getU32(a[RTA_PRIORITY]),
    scope: scopeName(d.readUInt8(6)),
    protocol: protocolName(d.readUInt8(5)),
    type: TYPES[type - 1] ?? `${type}`,
    onlink: (flags & RTNH_F_ONLINK) !== 0,
    multipath,
    mtu,
    advmss,
  };
}

function specFamily(r: RouteSpec): 4 | 6 {
  if (r.dst !== 'default') return parseCidr(r.dst, 'route destination', { bare: true }).family;
  if (r.gateway) return familyOf(r.gateway);
  const gw = r.multipath?.find((n) => n.gateway)?.gateway;
  if (gw) return familyOf(gw);
  if (r.src) return familyOf(r.src);
  return r.family ?? 4;
}

/** @internal The request for a route change (links given by name are looked up on `h`). */
export async function routeMessage(h: Handle, type: number, flags: number, r: RouteSpec): Promise<Buffer> {
  const family = specFamily(r);
  const isDelete = type === RTM_DELROUTE;
  const rtype = r.type ?? (isDelete ? undefined : 'unicast');
  const w = new MessageWriter(type, flags);
  const s = w.struct(12);
  s.writeUInt8(afOf(family), 0);
  const table = r.table === undefined ? (rtype === 'local' ? RT_TABLE_LOCAL : RT_TABLE_MAIN) : tableNumber(r.table);
  s.writeUInt8(table < 256 ? table : 0, 4);
  const proto = r.protocol === undefined ? (isDelete ? 0 : PROTOCOLS.boot!) : typeof r.protocol === 'number' ? r.protocol : PROTOCOLS[r.protocol]!;
  s.writeUInt8(proto, 5);
  // The scope iproute2 would choose: host for local routes, link for routes with no gateway, else universe;
  // a delete matches any scope.
  let scope: number;
  if (r.scope !== undefined) scope = scopeNumber(r.scope);
  else if (isDelete) scope = 255;
  else if (rtype === 'local') scope = 254;
  else if ((rtype === 'unicast' || rtype === undefined) && !r.gateway && !r.multipath) scope = 253;
  else scope = 0;
  s.writeUInt8(scope, 6);
  s.writeUInt8(rtype === undefined ? 0 : TYPES.indexOf(rtype) + 1, 7);
  s.writeUInt32LE(r.onlink ? RTNH_F_ONLINK : 0, 8);
  if (r.dst !== 'default') {
    const dst = parseCidr(r.dst, 'route destination', { bare: true });
    s.writeUInt8(dst.prefix, 1);
    w.attr(RTA_DST, ipToBytes({ family: dst.family, value: dst.ip }));
  }
  if (table >= 256) w.u32(RTA_TABLE, table);
  if (r.gateway) w.attr(RTA_GATEWAY, ipToBytes(parseIp(r.gateway, 'gateway')));
  if (r.link !== undefined) w.u32(RTA_OIF, await linkIndex(h, r.link));
  if (r.src) w.attr(RTA_PREFSRC, ipToBytes(parseIp(r.src, 'preferred source')));
  if (r.metric !== undefined) w.u32(RTA_PRIORITY, r.metric);
  if (r.mtu !== undefined || r.advmss !== undefined) {
    const metrics = w.nest(RTA_METRICS);
    if (r.mtu !== undefined) w.u32(RTAX_MTU, r.mtu);
    if (r.advmss !== undefined) w.u32(RTAX_ADVMSS, r.advmss);
    w.end(metrics);
  }
  if (r.multipath) {
    const mp = w.nest(RTA_MULTIPATH);
    for (const nh of r.multipath) {
      // rtnexthop: len u16, flags u8, hops (weight-1) u8, ifindex s32, then its own attributes
      const start = w.off;
      const hdr = w.struct(8);
      hdr.writeUInt8(nh.onlink ? RTNH_F_ONLINK : 0, 2);
      hdr.writeUInt8((nh.weight ?? 1) - 1, 3);
      hdr.writeInt32LE(nh.link === undefined ? 0 : await linkIndex(h, nh.link), 4);
      if (nh.gateway) w.attr(RTA_GATEWAY, ipToBytes(parseIp(nh.gateway, 'next hop gateway')));
      w.end(start);
    }
    w.end(mp);
  }
  return w.finish();
}

function describe(r: RouteSpec): string {
  const parts = [r.type && r.type !== 'unicast' ? `${r.type} ${r.dst}` : r.dst];
  if (r.gateway) parts.push(`via ${r.gateway}`);
  if (r.link !== undefined) parts.push(`dev ${refText(r.link)}`);
  if (r.multipath)
    parts.push(r.multipath.map((n) => `nexthop${n.gateway ? ` via ${n.gateway}` : ''}${n.link !== undefined ? ` dev ${refText(n.link)}` : ''}`).join(' '));
  if (r.table !== undefined) parts.push(`table ${r.table}`);
  if (r.metric !== undefined) parts.push(`metric ${r.metric}`);
  return parts.join(' ');
}

/** Adds a route; EEXIST if an identical one exists. Equivalent to: `ip route add DST [via GW] [dev LINK] …`. */
export async function addRoute(h: Handle, r: RouteSpec): Promise<void> {
  const what = `add route ${describe(r)}`;
  const msg = await during({ op: 'addRoute', what, object: r.dst }, routeMessage(h, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, r));
  await h.request(msg, { op: 'RTM_NEWROUTE', what, object: r.dst });
}

/** Adds a route or replaces the one with the same destination, table and metric. Equivalent to: `ip route replace …`. */
export async function replaceRoute(h: Handle, r: RouteSpec): Promise<void> {
  const what = `replace route ${describe(r)}`;
  const msg = await during({ op: 'replaceRoute', what, object: r.dst }, routeMessage(h, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, r));
  await h.request(msg, { op: 'RTM_NEWROUTE', what, object: r.dst });
}

/**
 * Adds a route beside any with the same destination (`ip route append`; NLM_F_APPEND, as the reference's
 * RouteAddEcmp does): a second interface of one container on the same network gets a default route of its
 * own instead of EEXIST.
 */
export async function appendRoute(h: Handle, r: RouteSpec): Promise<void> {
  const msg = await routeMessage(h, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_APPEND, r);
  await h.request(msg, { op: 'RTM_NEWROUTE', what: `append route ${describe(r)}`, object: r.dst });
}

/** Deletes the first route matching what is given (ESRCH when none does). Equivalent to: `ip route del …`. */
export async function deleteRoute(h: Handle, r: RouteSpec): Promise<void> {
  const what = `delete route ${describe(r)}`;
  const msg = await during({ op: 'deleteRoute', what, object: r.dst }, routeMessage(h, RTM_DELROUTE, 0, r));
  await h.request(msg, { op: 'RTM_DELROUTE', what, object: r.dst });
}

/**
 * Routes of one table (default main; `all` for every table), optionally of one family or one link.
 * Equivalent to: `ip route show [table T|all] [dev LINK] [-4|-6]`.
 */
export async function listRoutes(h: Handle, filter: { family?: 4 | 6; table?: number | 'main' | 'local' | 'all'; link?: LinkRef } = {}): Promise<Route[]> {
  const table = filter.table === 'all' ? undefined : tableNumber(filter.table ?? 'main');
  const dev = filter.link === undefined ? undefined : await linkIndex(h, filter.link);
  const families = filter.family ? [filter.family] : ([4, 6] as const);
  const out: Route[] = [];
  for (const fam of families) {
    const w = new MessageWriter(RTM_GETROUTE, 0);
    const s = w.struct(12);
    s.writeUInt8(afOf(fam), 0);
    if (table !== undefined) w.u32(RTA_TABLE, table);
    if (dev !== undefined) w.u32(RTA_OIF, dev);
    let replies;
    try {
      replies = await h.dump(w.finish(), { op: 'RTM_GETROUTE', what: `list IPv${fam} routes in ${h.label}` });
    } catch (e) {
      // with strict checking, a table that has no routes of this family does not exist: nothing to list
      if (table !== undefined && (e as { code?: string }).code === 'ENOENT') continue;
      throw e;
    }
    for (const m of replies) {
      if (m.type !== RTM_NEWROUTE) continue;
      if (m.data.readUInt32LE(8) & RTM_F_CLONED) continue;
      const r = parseRoute(m);
      if (table !== undefined && r.table !== table) continue;
      if (dev !== undefined && r.linkIndex !== dev && !r.multipath?.some((n) => n.linkIndex === dev)) continue;
      out.push(r);
    }
  }
  return out;
}

/** What getRoute asks about: a destination, and optionally a source and the links in and out. */
export interface RouteQuery {
  /** the destination address */
  dst: string;
  /** the source address (`from`) */
  src?: string;
  /** the link the packet must leave by (`oif`) */
  link?: LinkRef;
  /** the link the packet arrives on (`iif`), for a forwarded packet */
  inputLink?: LinkRef;
}

/**
 * The route the kernel would use for a packet to `dst`.
 * Equivalent to: `ip route get DST [from SRC] [oif LINK] [iif INPUTLINK]`.
 */
export async function getRoute(h: Handle, query: RouteQuery): Promise<Route> {
  const { dst, ...opts } = query;
  const fam = familyOf(dst);
  const w = new MessageWriter(RTM_GETROUTE, 0);
  const s = w.struct(12);
  s.writeUInt8(afOf(fam), 0);
  s.writeUInt8(fam === 4 ? 32 : 128, 1);
  w.attr(RTA_DST, ipToBytes(dst));
  if (opts.src) {
    s.writeUInt8(fam === 4 ? 32 : 128, 2);
    w.attr(RTA_SRC, ipToBytes(opts.src));
  }
  if (opts.link !== undefined) w.u32(RTA_OIF, await linkIndex(h, opts.link));
  if (opts.inputLink !== undefined) w.u32(RTA_IIF, await linkIndex(h, opts.inputLink));
  const replies = await h.request(w.finish(), { op: 'RTM_GETROUTE', what: `get route to ${dst}`, object: dst });
  const m = replies.find((x) => x.type === RTM_NEWROUTE);
  if (!m) throw new NetplumbError(`get route to ${dst}: the kernel answered without a route`, { code: ERR.NO_REPLY, op: 'RTM_GETROUTE', object: dst });
  return parseRoute(m);
}

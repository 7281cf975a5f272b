/**
 * Links: list, get, create (every kind in LinkConfig), delete, and change (up/down, MTU, MAC, name, master,
 * namespace, alias, promiscuity, bridge port options). Most operations are one request; requests issued together
 * travel together (see NetlinkSocket), so creating hundreds of links costs a few syscalls.
 * See docs/NET.md for the rest.
 */
import {
  AF_UNSPEC,
  IFF_LOOPBACK,
  IFF_LOWER_UP,
  IFF_PROMISC,
  IFF_UP,
  IFLA_ADDRESS,
  IFLA_BR_AGEING_TIME,
  IFLA_BR_FORWARD_DELAY,
  IFLA_BR_NF_CALL_IP6TABLES,
  IFLA_BR_NF_CALL_IPTABLES,
  IFLA_BR_PRIORITY,
  IFLA_BR_STP_STATE,
  IFLA_BR_VLAN_FILTERING,
  IFLA_BRPORT_COST,
  IFLA_BRPORT_ISOLATED,
  IFLA_BRPORT_LEARNING,
  IFLA_BRPORT_MODE,
  IFLA_BRPORT_PRIORITY,
  IFLA_BRPORT_STATE,
  IFLA_BRPORT_UNICAST_FLOOD,
  IFLA_BROADCAST,
  IFLA_EXT_MASK,
  IFLA_IFALIAS,
  IFLA_IFNAME,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_INFO_SLAVE_DATA,
  IFLA_INFO_SLAVE_KIND,
  IFLA_IPVLAN_MODE,
  IFLA_LINK,
  IFLA_LINK_NETNSID,
  IFLA_LINKINFO,
  IFLA_MACVLAN_MODE,
  IFLA_MASTER,
  IFLA_MTU,
  IFLA_NET_NS_FD,
  IFLA_NET_NS_PID,
  IFLA_OPERSTATE,
  IFLA_STATS64,
  IFLA_TXQLEN,
  IFLA_VLAN_ID,
  IFLA_VLAN_PROTOCOL,
  IFLA_VXLAN_GROUP,
  IFLA_VXLAN_GROUP6,
  IFLA_VXLAN_ID,
  IFLA_VXLAN_LEARNING,
  IFLA_VXLAN_LINK,
  IFLA_VXLAN_LOCAL,
  IFLA_VXLAN_LOCAL6,
  IFLA_VXLAN_PORT,
  IFLA_VXLAN_TTL,
  IFLA_VXLAN_AGEING,
  IFLA_VXLAN_COLLECT_METADATA,
  IFLA_VXLAN_DF,
  IFLA_VXLAN_L2MISS,
  IFLA_VXLAN_L3MISS,
  IFLA_VXLAN_LIMIT,
  IFLA_VXLAN_PORT_RANGE,
  IFLA_VXLAN_PROXY,
  IFLA_VXLAN_TOS,
  IFLA_VXLAN_UDP_CSUM,
  IFLA_VXLAN_UDP_ZERO_CSUM6_RX,
  IFLA_VXLAN_UDP_ZERO_CSUM6_TX,
  NLM_F_CREATE,
  NLM_F_ECHO,
  NLM_F_EXCL,
  RTM_DELLINK,
  RTM_GETLINK,
  RTM_NEWLINK,
  RTEXT_FILTER_SKIP_STATS,
  VETH_INFO_PEER,
} from '../netlink/constants.js';
import { bytesToIp, ipToBytes, parseIp } from '../addr/ip.js';
import { bytesToMac, macToBytes } from '../addr/mac.js';
import { during, ERRNO, wrapError, type ErrorContext } from '../errors.js';
import { attrFilter, getBe16, getS32, getStr, getU16, getU32, getU8, MessageWriter, parseAttrs, type NlMessage } from '../netlink/encoding.js';
import { NetlinkError } from '../netlink/errors.js';
import { faultPoint } from '../sys/fault.js';
import { borrowNetnsFdSync, Handle, openHandleSync, type BorrowedNetnsFd } from './handle.js';
import { Netns } from './ns.js';
import type {
  BridgePortConfig,
  BridgePortInfo,
  IpvlanMode,
  Link,
  LinkBase,
  LinkChanges,
  LinkConfig,
  LinkRef,
  LinkStats,
  LinkOf,
  MacvlanMode,
  NetnsTarget,
  OperState,
  VethConfig,
  VethLink,
  VethPeerConfig,
  VxlanConfig,
  VxlanDf,
  VxlanInfo,
} from './link-types.js';

export type * from './link-types.js';

const OPERSTATES: OperState[] = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'];
const MACVLAN_MODES: Record<number, MacvlanMode> = { 1: 'private', 2: 'vepa', 4: 'bridge', 8: 'passthru', 16: 'source' };
const IPVLAN_MODES: IpvlanMode[] = ['l2', 'l3', 'l3s'];

/** @internal How a LinkRef reads in messages: the name, or `#index`. */
export const refText = (ref: LinkRef) => (typeof ref === 'number' ? `#${ref}` : ref);

// ---------------------------------------------------------------- decoding

function parseStats(b: Buffer | undefined): LinkStats | undefined {
  if (!b || b.length < 80) return undefined;
  const n = (i: number) => Number(b.readBigUInt64LE(i * 8));
  return {
    rxPackets: n(0),
    txPackets: n(1),
    rxBytes: n(2),
    txBytes: n(3),
    rxErrors: n(4),
    txErrors: n(5),
    rxDropped: n(6),
    txDropped: n(7),
    multicast: n(8),
    collisions: n(9),
  };
}

function parseBridgePort(b: Buffer): BridgePortInfo {
  const a = parseAttrs(b);
  return {
    hairpin: getU8(a[IFLA_BRPORT_MODE]) === 1,
    learning: getU8(a[IFLA_BRPORT_LEARNING]) === 1,
    flood: getU8(a[IFLA_BRPORT_UNICAST_FLOOD]) === 1,
    isolated: getU8(a[IFLA_BRPORT_ISOLATED]) === 1,
    cost: getU32(a[IFLA_BRPORT_COST]) ?? 0,
    priority: getU16(a[IFLA_BRPORT_PRIORITY]) ?? 0,
    state: getU8(a[IFLA_BRPORT_STATE]) ?? 0,
  };
}

/** The attributes parseLink reads. */
const LINK_ATTRS = attrFilter(
  IFLA_ADDRESS,
  IFLA_BROADCAST,
  IFLA_IFNAME,
  IFLA_MTU,
  IFLA_LINK,
  IFLA_MASTER,
  IFLA_TXQLEN,
  IFLA_OPERSTATE,
  IFLA_LINKINFO,
  IFLA_IFALIAS,
  IFLA_STATS64,
  IFLA_LINK_NETNSID,
);

/** Decodes an RTM_NEWLINK message (a dump entry, a GET reply, or an event): what `ip -d link show` prints of it. */
export function parseLink(m: NlMessage): Link {
  const d = m.data;
  const index = d.readInt32LE(4);
  const flags = d.readUInt32LE(8);
  const a = parseAttrs(d, 16, d.length, LINK_ATTRS);
  let infoKind: string | undefined;
  let info: Buffer | undefined;
  let bridgePort: BridgePortInfo | undefined;
  if (a[IFLA_LINKINFO]) {
    const li = parseAttrs(a[IFLA_LINKINFO]!);
    infoKind = getStr(li[IFLA_INFO_KIND]);
    info = li[IFLA_INFO_DATA];
    if (getStr(li[IFLA_INFO_SLAVE_KIND]) === 'bridge' && li[IFLA_INFO_SLAVE_DATA]) bridgePort = parseBridgePort(li[IFLA_INFO_SLAVE_DATA]!);
  }
  const linkIndex = getS32(a[IFLA_LINK]);
  const base: LinkBase = {
    index,
    name: getStr(a[IFLA_IFNAME]) ?? '',
    infoKind,
    flags,
    up: (flags & IFF_UP) !== 0,
    lowerUp: (flags & IFF_LOWER_UP) !== 0,
    promisc: (flags & IFF_PROMISC) !== 0,
    operstate: OPERSTATES[getU8(a[IFLA_OPERSTATE]) ?? 0] ?? 'unknown',
    mtu: getU32(a[IFLA_MTU]) ?? 0,
    mac: a[IFLA_ADDRESS]?.length ? bytesToMac(a[IFLA_ADDRESS]!) : undefined,
    broadcast: a[IFLA_BROADCAST]?.length ? bytesToMac(a[IFLA_BROADCAST]!) : undefined,
    txqlen: getU32(a[IFLA_TXQLEN]),
    masterIndex: getU32(a[IFLA_MASTER]) || undefined,
    alias: getStr(a[IFLA_IFALIAS]) || undefined,
    linkIndex,
    linkNetnsId: getS32(a[IFLA_LINK_NETNSID]),
    bridgePort,
    stats: parseStats(a[IFLA_STATS64]),
  };
  const k = info ? parseAttrs(info) : [];
  // Object.assign, not spreads: the base's twenty fields are not copied (an echo of every link created is decoded here)
  switch (infoKind) {
    case 'veth':
      return Object.assign(base, { kind: 'veth' as const, peerIndex: base.linkIndex });
    case 'bridge':
      return {
        ...base,
        kind: 'bridge',
        bridge: {
          stp: (getU32(k[IFLA_BR_STP_STATE]) ?? 0) !== 0,
          forwardDelay: (getU32(k[IFLA_BR_FORWARD_DELAY]) ?? 0) / 100,
          ageingTime: (getU32(k[IFLA_BR_AGEING_TIME]) ?? 0) / 100,
          vlanFiltering: getU8(k[IFLA_BR_VLAN_FILTERING]) === 1,
          priority: getU16(k[IFLA_BR_PRIORITY]) ?? 0,
          nfCall: getU8(k[IFLA_BR_NF_CALL_IPTABLES]) === 1 && getU8(k[IFLA_BR_NF_CALL_IP6TABLES]) === 1,
        },
      };
    case 'macvlan':
      return { ...base, kind: 'macvlan', parentIndex: base.linkIndex, mode: MACVLAN_MODES[getU32(k[IFLA_MACVLAN_MODE]) ?? 0] };
    case 'ipvlan':
      return { ...base, kind: 'ipvlan', parentIndex: base.linkIndex, mode: IPVLAN_MODES[getU16(k[IFLA_IPVLAN_MODE]) ?? -1] };
    case 'vlan': {
      const proto = getBe16(k[IFLA_VLAN_PROTOCOL]);
      return {
        ...base,
        kind: 'vlan',
        parentIndex: base.linkIndex,
        vlanId: getU16(k[IFLA_VLAN_ID]),
        protocol: proto === 0x88a8 ? '802.1ad' : proto === 0x8100 ? '802.1Q' : undefined,
      };
    }
    case 'vxlan': {
      const group = k[IFLA_VXLAN_GROUP] ?? k[IFLA_VXLAN_GROUP6];
      const local = k[IFLA_VXLAN_LOCAL] ?? k[IFLA_VXLAN_LOCAL6];
      return {
        ...base,
        kind: 'vxlan',
        vxlan: {
          vni: getU32(k[IFLA_VXLAN_ID]) ?? 0,
          port: getBe16(k[IFLA_VXLAN_PORT]),
          group: group ? bytesToIp(group) : undefined,
          local: local ? bytesToIp(local) : undefined,
          parentIndex: getU32(k[IFLA_VXLAN_LINK]) || undefined,
          ttl: getU8(k[IFLA_VXLAN_TTL]),
          learning: k[IFLA_VXLAN_LEARNING] ? getU8(k[IFLA_VXLAN_LEARNING]) === 1 : undefined,
          ...parseVxlanOptions(k),
        },
      };
    }
    case 'dummy':
      return { ...base, kind: 'dummy' };
    default:
      return infoKind === undefined && flags & IFF_LOOPBACK ? { ...base, kind: 'loopback' } : { ...base, kind: 'other' };
  }
}

// ---------------------------------------------------------------- encoding helpers

/** Writes an ifinfomsg; `up` sets or clears IFF_UP (undefined: leave alone). */
function ifinfo(w: MessageWriter, index: number, up?: boolean, promisc?: boolean, family = AF_UNSPEC): void {
  const s = w.struct(16);
  s.writeUInt8(family, 0);
  s.writeInt32LE(index, 4);
  let flags = 0;
  let change = 0;
  if (up !== undefined) {
    change |= IFF_UP;
    if (up) flags |= IFF_UP;
  }
  if (promisc !== undefined) {
    change |= IFF_PROMISC;
    if (promisc) flags |= IFF_PROMISC;
  }
  s.writeUInt32LE(flags, 8);
  s.writeUInt32LE(change, 12);
}

/** Starts a message about an existing link: by index, or by name (IFLA_IFNAME) when given a name. */
function linkMessage(type: number, ref: LinkRef, flags = 0, up?: boolean, promisc?: boolean): MessageWriter {
  const w = new MessageWriter(type, flags);
  ifinfo(w, typeof ref === 'number' ? ref : 0, up, promisc);
  if (typeof ref === 'string') w.str(IFLA_IFNAME, ref);
  return w;
}

/** The index of a link given by name or index (a name costs one request). Equivalent to: `ip -j link show dev NAME` → `ifindex`. */
export async function linkIndex(h: Handle, ref: LinkRef): Promise<number> {
  return typeof ref === 'number' ? ref : (await lookupLink(h, ref, false)).data.readInt32LE(4);
}

// ---------------------------------------------------------------- queries

/** Every link of the handle's namespace, optionally only one kind or one master's ports. Equivalent to: `ip link show [type KIND] [master LINK]`. */
export async function listLinks(h: Handle, filter: { kind?: string; master?: LinkRef } = {}): Promise<Link[]> {
  const master = filter.master === undefined ? undefined : await linkIndex(h, filter.master);
  const w = new MessageWriter(RTM_GETLINK, 0);
  ifinfo(w, 0);
  // With strict checking on, the kernel filters by master and kind itself; we filter again for old kernels.
  if (master !== undefined) w.u32(IFLA_MASTER, master);
  if (filter.kind !== undefined) {
    const li = w.nest(IFLA_LINKINFO);
    w.str(IFLA_INFO_KIND, filter.kind);
    w.end(li);
  }
  const replies = await h.dump(w.finish(), { op: 'RTM_GETLINK', what: `list links in ${h.label}` });
  const links: Link[] = [];
  for (const m of replies) {
    if (m.type !== RTM_NEWLINK) continue;
    const l = parseLink(m);
    if (master !== undefined && l.masterIndex !== master) continue;
    if (filter.kind !== undefined && l.infoKind !== filter.kind) continue;
    links.push(l);
  }
  return links;
}

/** One link by name or index; rejects with NetlinkError ENODEV when there is none. Equivalent to: `ip link show dev LINK`. */
export async function getLink(h: Handle, ref: LinkRef): Promise<Link> {
  return parseLink(await lookupLink(h, ref));
}

/**
 * RTM_GETLINK for one link, the kernel's answer undecoded: for callers that need only the index, or only the
 * request's side effect (setLink), decoding the whole link (stats, link info) is most of the cost. Without
 * `stats` the kernel leaves the counters out (RTEXT_FILTER_SKIP_STATS, as iproute2's lookups ask): less for it to
 * gather and a third less to receive.
 */
async function lookupLink(h: Handle, ref: LinkRef, stats = true): Promise<NlMessage> {
  const w = linkMessage(RTM_GETLINK, ref);
  if (!stats) w.u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  const replies = await h.request(w.finish(), { op: 'RTM_GETLINK', what: `get link ${refText(ref)}`, object: refText(ref) });
  const m = replies.find((r) => r.type === RTM_NEWLINK);
  if (!m) throw new NetlinkError(ERRNO.ENODEV, { op: 'RTM_GETLINK', what: `get link ${refText(ref)}`, object: refText(ref) });
  return m;
}

/** Like getLink, but undefined instead of ENODEV. Equivalent to: `ip link show dev LINK 2>/dev/null`. */
export async function findLink(h: Handle, ref: LinkRef): Promise<Link | undefined> {
  try {
    return await getLink(h, ref);
  } catch (e) {
    if ((e as NetlinkError).code === 'ENODEV') return undefined;
    throw e;
  }
}

// ---------------------------------------------------------------- creation

function writePeer(w: MessageWriter, peer: VethPeerConfig, fds: BorrowedNetnsFd[]): void {
  const p = w.nest(VETH_INFO_PEER);
  // No IFF_UP here: the kernel opens the peer before pairing it, and veth_open then fails with ENOTCONN.
  // createLink brings the peer up with a second request instead.
  ifinfo(w, 0);
  w.str(IFLA_IFNAME, peer.name);
  if (peer.mac !== undefined) w.attr(IFLA_ADDRESS, macToBytes(peer.mac));
  if (peer.mtu !== undefined) w.u32(IFLA_MTU, peer.mtu);
  if (peer.netns !== undefined) {
    const t = borrowNetnsFdSync(peer.netns);
    fds.push(t);
    w.u32(IFLA_NET_NS_FD, t.fd);
  }
  w.end(p);
}

const VXLAN_FLAGS = [
  ['proxy', IFLA_VXLAN_PROXY],
  ['l2miss', IFLA_VXLAN_L2MISS],
  ['l3miss', IFLA_VXLAN_L3MISS],
  ['udpCsum', IFLA_VXLAN_UDP_CSUM],
  ['udp6ZeroCsumTx', IFLA_VXLAN_UDP_ZERO_CSUM6_TX],
  ['udp6ZeroCsumRx', IFLA_VXLAN_UDP_ZERO_CSUM6_RX],
] as const;
const VXLAN_DF: VxlanDf[] = ['unset', 'set', 'inherit'];

function writeVxlanOptions(w: MessageWriter, cfg: VxlanConfig): void {
  for (const [key, attr] of VXLAN_FLAGS) if (cfg[key] !== undefined) w.u8(attr, cfg[key] ? 1 : 0);
  if (cfg.tos !== undefined) w.u8(IFLA_VXLAN_TOS, cfg.tos);
  if (cfg.srcPortRange !== undefined) {
    const range = Buffer.alloc(4);
    range.writeUInt16BE(cfg.srcPortRange[0], 0);
    range.writeUInt16BE(cfg.srcPortRange[1], 2);
    w.attr(IFLA_VXLAN_PORT_RANGE, range);
  }
  // the kernel takes the flag's presence, whatever its value, as "external"
  if (cfg.external) w.u8(IFLA_VXLAN_COLLECT_METADATA, 1);
  if (cfg.df !== undefined) w.u8(IFLA_VXLAN_DF, VXLAN_DF.indexOf(cfg.df));
  if (cfg.ageing !== undefined) w.u32(IFLA_VXLAN_AGEING, cfg.ageing);
  if (cfg.maxAddresses !== undefined) w.u32(IFLA_VXLAN_LIMIT, cfg.maxAddresses);
}

function parseVxlanOptions(k: Partial<Record<number, Buffer>>): Partial<VxlanInfo> {
  const out: Partial<VxlanInfo> = {};
  for (const [key, attr] of VXLAN_FLAGS) if (k[attr]) out[key] = getU8(k[attr]) === 1;
  if (k[IFLA_VXLAN_TOS]) out.tos = getU8(k[IFLA_VXLAN_TOS]);
  const range = k[IFLA_VXLAN_PORT_RANGE];
  if (range?.length === 4) out.srcPortRange = [range.readUInt16BE(0), range.readUInt16BE(2)];
  if (k[IFLA_VXLAN_COLLECT_METADATA]) out.external = getU8(k[IFLA_VXLAN_COLLECT_METADATA]) === 1;
  if (k[IFLA_VXLAN_DF]) out.df = VXLAN_DF[getU8(k[IFLA_VXLAN_DF]) ?? 0];
  if (k[IFLA_VXLAN_AGEING]) out.ageing = getU32(k[IFLA_VXLAN_AGEING]);
  if (k[IFLA_VXLAN_LIMIT]) out.maxAddresses = getU32(k[IFLA_VXLAN_LIMIT]);
  return out;
}

async function writeKind(h: Handle, w: MessageWriter, cfg: LinkConfig, fds: BorrowedNetnsFd[]): Promise<void> {
  // Parents are attributes outside IFLA_LINKINFO, so they go first.
  if (cfg.kind === 'macvlan' || cfg.kind === 'ipvlan' || cfg.kind === 'vlan') w.u32(IFLA_LINK, await during(creating(cfg), linkIndex(h, cfg.parent)));
  const vxlanParent = cfg.kind === 'vxlan' && cfg.parent !== undefined ? await during(creating(cfg), linkIndex(h, cfg.parent)) : undefined;
  const li = w.nest(IFLA_LINKINFO);
  w.str(IFLA_INFO_KIND, cfg.kind);
  const data = w.nest(IFLA_INFO_DATA);
  switch (cfg.kind) {
    case 'veth':
      writePeer(w, cfg.peer, fds);
      break;
    case 'bridge':
      if (cfg.forwardDelay !== undefined) w.u32(IFLA_BR_FORWARD_DELAY, Math.round(cfg.forwardDelay * 100));
      if (cfg.ageingTime !== undefined) w.u32(IFLA_BR_AGEING_TIME, Math.round(cfg.ageingTime * 100));
      if (cfg.stp !== undefined) w.u32(IFLA_BR_STP_STATE, cfg.stp ? 1 : 0);
      if (cfg.priority !== undefined) w.u16(IFLA_BR_PRIORITY, cfg.priority);
      if (cfg.vlanFiltering !== undefined) w.u8(IFLA_BR_VLAN_FILTERING, cfg.vlanFiltering ? 1 : 0);
      writeBridgeNfCall(w, cfg.nfCall);
      break;
    case 'macvlan': {
      const mode = Object.entries(MACVLAN_MODES).find(([, v]) => v === (cfg.mode ?? 'bridge'))![0];
      w.u32(IFLA_MACVLAN_MODE, Number(mode));
      break;
    }
    case 'ipvlan':
      w.u16(IFLA_IPVLAN_MODE, IPVLAN_MODES.indexOf(cfg.mode ?? 'l2'));
      break;
    case 'vlan':
      w.u16(IFLA_VLAN_ID, cfg.id);
      if (cfg.protocol !== undefined) w.be16(IFLA_VLAN_PROTOCOL, cfg.protocol === '802.1ad' ? 0x88a8 : 0x8100);
      break;
    case 'vxlan':
      w.u32(IFLA_VXLAN_ID, cfg.vni);
      if (cfg.group !== undefined) {
        const group = parseIp(cfg.group, 'vxlan group');
        w.attr(group.family === 4 ? IFLA_VXLAN_GROUP : IFLA_VXLAN_GROUP6, ipToBytes(group));
      }
      if (cfg.local !== undefined) {
        const local = parseIp(cfg.local, 'vxlan local address');
        w.attr(local.family === 4 ? IFLA_VXLAN_LOCAL : IFLA_VXLAN_LOCAL6, ipToBytes(local));
      }
      if (vxlanParent !== undefined) w.u32(IFLA_VXLAN_LINK, vxlanParent);
      if (cfg.ttl !== undefined) w.u8(IFLA_VXLAN_TTL, cfg.ttl);
      if (cfg.learning !== undefined) w.u8(IFLA_VXLAN_LEARNING, cfg.learning ? 1 : 0);
      if (cfg.port !== undefined) w.be16(IFLA_VXLAN_PORT, cfg.port);
      writeVxlanOptions(w, cfg);
      break;
    case 'dummy':
      break;
  }
  w.end(data);
  w.end(li);
}

/** What createLink is doing, for the errors of the lookups it makes on the way (see `during`). */
function creating(cfg: LinkConfig): ErrorContext {
  const peer = cfg.kind === 'veth' ? ` (peer ${cfg.peer.name})` : '';
  return { op: 'createLink', what: `create link ${cfg.name}${peer}`, object: cfg.name };
}

/** @internal The request that creates a link; `createLink` sends it. */
export async function createLinkMessage(h: Handle, cfg: LinkConfig, fds: BorrowedNetnsFd[]): Promise<Buffer> {
  // NLM_F_ECHO: the kernel answers with the new link (index, MAC, a veth's peer index), saving a lookup.
  const w = new MessageWriter(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO);
  ifinfo(w, 0, cfg.up ? true : undefined);
  w.str(IFLA_IFNAME, cfg.name);
  if (cfg.mtu !== undefined) w.u32(IFLA_MTU, cfg.mtu);
  if (cfg.mac !== undefined) w.attr(IFLA_ADDRESS, macToBytes(cfg.mac));
  if (cfg.txqlen !== undefined) w.u32(IFLA_TXQLEN, cfg.txqlen);
  if (cfg.alias !== undefined) w.str(IFLA_IFALIAS, cfg.alias);
  if (cfg.master !== undefined) w.u32(IFLA_MASTER, await during(creating(cfg), linkIndex(h, cfg.master)));
  if (cfg.netns !== undefined) {
    const t = borrowNetnsFdSync(cfg.netns);
    fds.push(t);
    w.u32(IFLA_NET_NS_FD, t.fd);
  }
  await writeKind(h, w, cfg, fds);
  return w.finish();
}

/**
 * Creates a link of any kind and resolves with it as the kernel reported it, narrowed to its kind (for a veth,
 * `peerIndex` is the peer's index, in the peer's namespace). Fails with EEXIST if the name is taken (in the
 * namespace it is created in). `up` travels in the creating request; the peer's `up`, the alias and the master
 * follow in requests of their own (see below), and a failure of any of them deletes the link again.
 * Equivalent to: `ip link add NAME [mtu …] [address …] [netns …] type KIND …`.
 */
export async function createLink<C extends LinkConfig>(h: Handle, cfg: C): Promise<LinkOf<C['kind']>> {
  return (await createAnyLink(h, cfg)) as LinkOf<C['kind']>; // parseLink reports the kind that was asked for
}

async function createAnyLink(h: Handle, cfg: LinkConfig): Promise<Link> {
  const fds: BorrowedNetnsFd[] = [];
  try {
    // The master is set by a second request, once the kernel has caught up with the new link (see below).
    const msg = await createLinkMessage(h, { ...cfg, master: undefined }, fds);
    const ctx = creating(cfg);
    const replies = await h.request(msg, { ...ctx, op: 'RTM_NEWLINK' });
    // All or nothing: a link that did not get its alias or master is not the one asked for, and only this
    // call knows it exists — delete it before reporting the failure (a veth takes its peer with it).
    try {
      faultPoint('link-created'); // the link exists, without its alias and master yet
      if (cfg.kind === 'veth' && cfg.peer.up) {
        const peer = cfg.peer.name;
        await inNamespace(cfg.peer.netns ?? h, (hh) => setLink(hh, peer, { up: true }));
      }
      // The kernel applies IFLA_IFALIAS to existing links only (rtnl_create_link ignores it): set it now.
      if (cfg.alias !== undefined) {
        const alias = cfg.alias;
        await inNamespace(cfg.netns ?? h, (hh) => setLink(hh, cfg.name, { alias }));
      }
      const echo = replies.find((m) => m.type === RTM_NEWLINK);
      // A link created in another namespace is echoed from there (or, on old kernels, not at all).
      const created = echo && cfg.netns === undefined ? parseLink(echo) : undefined;
      if (created && cfg.master === undefined) return created;
      return await inNamespace(cfg.netns ?? h, async (th) => {
        const index = created?.index ?? (await during(ctx, getLink(th, cfg.name))).index;
        if (cfg.master === undefined) return during(ctx, getLink(th, index));
        const master = await during(ctx, linkIndex(th, cfg.master));
        await setLink(th, index, { master });
        return created ? { ...created, masterIndex: master } : getLink(th, index);
      });
    } catch (e) {
      await inNamespace(cfg.netns ?? h, (th) => deleteLink(th, cfg.name)).catch(() => undefined);
      throw e;
    }
  } finally {
    for (const f of fds) f.release();
  }
}

async function inNamespace<T>(target: NetnsTarget, fn: (h: Handle) => Promise<T>): Promise<T> {
  if (target instanceof Handle) return fn(target);
  const hh = openHandleSync(target);
  try {
    return await fn(hh);
  } finally {
    hh.close();
  }
}

/**
 * A veth pair; the peer may be created directly inside another namespace with its final name and MAC. Resolves
 * with the side made in the handle's namespace (`peerIndex`: the peer's index, in its own namespace).
 * Equivalent to: `ip link add NAME type veth peer name PEER [netns NS]`.
 */
export function createVethPair(h: Handle, cfg: Omit<VethConfig, 'kind'>): Promise<VethLink> {
  return createLink(h, { ...cfg, kind: 'veth' });
}

// ---------------------------------------------------------------- changes

/** Deletes a link (a veth takes its peer with it). ENODEV when there is none. Equivalent to: `ip link del LINK`. */
export async function deleteLink(h: Handle, ref: LinkRef): Promise<void> {
  const w = linkMessage(RTM_DELLINK, ref);
  await h.request(w.finish(), { op: 'RTM_DELLINK', what: `delete link ${refText(ref)}`, object: refText(ref) });
}

function describeChanges(c: LinkChanges): string {
  const parts: string[] = [];
  if (c.up !== undefined) parts.push(c.up ? 'up' : 'down');
  if (c.mtu !== undefined) parts.push(`mtu ${c.mtu}`);
  if (c.mac !== undefined) parts.push(`address ${c.mac}`);
  if (c.name !== undefined) parts.push(`name ${c.name}`);
  if (c.master !== undefined) parts.push(c.master === null ? 'nomaster' : `master ${refText(c.master)}`);
  if (c.alias !== undefined) parts.push(c.alias === null ? 'no alias' : `alias ${c.alias}`);
  if (c.promisc !== undefined) parts.push(`promisc ${c.promisc ? 'on' : 'off'}`);
  if (c.txqlen !== undefined) parts.push(`txqlen ${c.txqlen}`);
  if (c.netns !== undefined) parts.push('netns');
  return parts.join(' ');
}

/**
 * Changes an existing link; everything asked is sent in one request (one ACK, all or nothing for most).
 * Equivalent to: `ip link set dev LINK [up|down] [mtu …] [address …] [name …] [master …|nomaster] [alias …] [netns …]`.
 */
export async function setLink(h: Handle, ref: LinkRef, c: LinkChanges): Promise<void> {
  const what = `set link ${refText(ref)} ${describeChanges(c)}`;
  // The lookups on the way fail as this verb, naming what it was doing (see `during`); the request itself keeps RTM_NEWLINK.
  const ctx: ErrorContext = { op: 'setLink', what, object: refText(ref) };
  // Renaming a link named by its name needs its index: the name attribute can't both find and rename.
  const target = c.name !== undefined && typeof ref === 'string' ? await during(ctx, linkIndex(h, ref)) : ref;
  const w = linkMessage(RTM_NEWLINK, target, 0, c.up, c.promisc);
  if (c.name !== undefined) w.str(IFLA_IFNAME, c.name);
  if (c.mtu !== undefined) w.u32(IFLA_MTU, c.mtu);
  if (c.mac !== undefined) w.attr(IFLA_ADDRESS, macToBytes(c.mac));
  if (c.txqlen !== undefined) w.u32(IFLA_TXQLEN, c.txqlen);
  if (c.alias !== undefined) w.str(IFLA_IFALIAS, c.alias ?? '');
  if (c.master !== undefined) w.u32(IFLA_MASTER, c.master === null ? 0 : await during(ctx, linkIndex(h, c.master)));
  let ns: BorrowedNetnsFd | undefined;
  try {
    if (c.netns !== undefined) {
      if (!(c.netns instanceof Handle) && !(c.netns instanceof Netns) && 'pid' in c.netns) w.u32(IFLA_NET_NS_PID, c.netns.pid);
      else {
        ns = borrowNetnsFdSync(c.netns);
        w.u32(IFLA_NET_NS_FD, ns.fd);
      }
    }
    const info = { ...ctx, op: 'RTM_NEWLINK' };
    if (c.master === undefined && c.up === undefined) await h.request(w.finish(), info);
    else {
      // A link's operstate stays "unknown" (which counts as up) until the kernel's link watch has seen its
      // carrier: a fresh link given to a bridge, or brought up as a port, before then is enabled as a port
      // (STP, multicast timers: work over every port) only to be disabled moments later. RTM_GETLINK on the
      // link syncs the link watch first (iproute2's lookup by name before `ip link set` does the same);
      // both requests leave together, in this order.
      // When the link is missing both fail; the lookup's failure, said as this verb's, is the one reported.
      const [looked, done] = await Promise.allSettled([lookupLink(h, target, false), h.request(w.finish(), info)]);
      if (looked.status === 'rejected') throw wrapError(looked.reason, ctx);
      if (done.status === 'rejected') throw done.reason;
    }
  } finally {
    ns?.release();
  }
}

/** Brings a link up. Equivalent to: `ip link set dev LINK up`. */
export const setLinkUp = (h: Handle, ref: LinkRef) => setLink(h, ref, { up: true });
/** Takes a link down. Equivalent to: `ip link set dev LINK down`. */
export const setLinkDown = (h: Handle, ref: LinkRef) => setLink(h, ref, { up: false });
/** Equivalent to: `ip link set dev LINK mtu MTU`. */
export const setLinkMtu = (h: Handle, ref: LinkRef, mtu: number) => setLink(h, ref, { mtu });
/** Equivalent to: `ip link set dev LINK address MAC`. */
export const setLinkMac = (h: Handle, ref: LinkRef, mac: string) => setLink(h, ref, { mac });
/** Equivalent to: `ip link set dev LINK name NAME`. */
export const renameLink = (h: Handle, ref: LinkRef, name: string) => setLink(h, ref, { name });
/** Makes a link a port of `master` (a bridge). Equivalent to: `ip link set dev LINK master MASTER`. */
export const setLinkMaster = (h: Handle, ref: LinkRef, master: LinkRef) => setLink(h, ref, { master });
/** Equivalent to: `ip link set dev LINK nomaster`. */
export const setLinkNoMaster = (h: Handle, ref: LinkRef) => setLink(h, ref, { master: null });
/** Sets (or with null removes) a link's alias. Equivalent to: `ip link set dev LINK alias TEXT`. */
export const setLinkAlias = (h: Handle, ref: LinkRef, alias: string | null) => setLink(h, ref, { alias });
/** Equivalent to: `ip link set dev LINK promisc on|off`. */
export const setLinkPromisc = (h: Handle, ref: LinkRef, on: boolean) => setLink(h, ref, { promisc: on });

/**
 * Moves a link into another namespace (by handle, open Netns, name, path or PID), optionally renaming it there.
 * Equivalent to: `ip link set dev LINK netns NS [name NAME]`.
 */
export const moveLink = (h: Handle, ref: LinkRef, netns: NetnsTarget | { pid: number }, opts: { name?: string } = {}) =>
  setLink(h, ref, { netns, ...(opts.name !== undefined ? { name: opts.name } : {}) });

/**
 * Sets bridge port options of a link that is a bridge port. They must travel as IFLA_INFO_SLAVE_DATA in an
 * RTM_NEWLINK: through RTM_SETLINK the kernel acknowledges and ignores them.
 * Equivalent to: `bridge link set dev LINK [hairpin on|off] [learning on|off] [flood on|off] [isolated on|off] [cost N] [priority N]`.
 */
export async function setBridgePort(h: Handle, ref: LinkRef, cfg: BridgePortConfig): Promise<void> {
  const w = linkMessage(RTM_NEWLINK, ref);
  const li = w.nest(IFLA_LINKINFO);
  w.str(IFLA_INFO_SLAVE_KIND, 'bridge');
  const sd = w.nest(IFLA_INFO_SLAVE_DATA);
  if (cfg.hairpin !== undefined) w.u8(IFLA_BRPORT_MODE, cfg.hairpin ? 1 : 0);
  if (cfg.learning !== undefined) w.u8(IFLA_BRPORT_LEARNING, cfg.learning ? 1 : 0);
  if (cfg.flood !== undefined) w.u8(IFLA_BRPORT_UNICAST_FLOOD, cfg.flood ? 1 : 0);
  if (cfg.isolated !== undefined) w.u8(IFLA_BRPORT_ISOLATED, cfg.isolated ? 1 : 0);
  if (cfg.cost !== undefined) w.u32(IFLA_BRPORT_COST, cfg.cost);
  if (cfg.priority !== undefined) w.u16(IFLA_BRPORT_PRIORITY, cfg.priority);
  w.end(sd);
  w.end(li);
  const opts = Object.entries(cfg)
    .map(([k, v]) => `${k} ${v}`)
    .join(' ');
  await h.request(w.finish(), { op: 'RTM_NEWLINK', what: `set bridge port ${refText(ref)} ${opts}`, object: refText(ref) });
}

function writeBridgeNfCall(w: MessageWriter, on: boolean | undefined): void {
  if (on === undefined) return;
  w.u8(IFLA_BR_NF_CALL_IPTABLES, on ? 1 : 0);
  w.u8(IFLA_BR_NF_CALL_IP6TABLES, on ? 1 : 0);
}

/**
 * Whether frames bridged by `bridge` traverse the inet netfilter hooks (forward, conntrack) — per bridge,
 * without the namespace-wide br_netfilter sysctls.
 * Equivalent to: `ip link set dev BRIDGE type bridge nf_call_iptables 0|1 nf_call_ip6tables 0|1`.
 */
export async function setBridgeNfCall(h: Handle, bridge: LinkRef, on: boolean): Promise<void> {
  const w = linkMessage(RTM_NEWLINK, bridge);
  const li = w.nest(IFLA_LINKINFO);
  w.str(IFLA_INFO_KIND, 'bridge');
  const data = w.nest(IFLA_INFO_DATA);
  writeBridgeNfCall(w, on);
  w.end(data);
  w.end(li);
  await h.request(w.finish(), {
    op: 'RTM_NEWLINK',
    what: `set bridge ${refText(bridge)} nf_call_iptables ${on ? 1 : 0} nf_call_ip6tables ${on ? 1 : 0}`,
    object: refText(bridge),
  });
}

/** Hairpin mode of a bridge port (what the CNI bridge plugin's hairpinMode sets). Equivalent to: `bridge link set dev LINK hairpin on|off`. */
export const setHairpin = (h: Handle, ref: LinkRef, on: boolean) => setBridgePort(h, ref, { hairpin: on });

/** Neighbours (ARP for IPv4, NDP for IPv6): list, add, replace, delete (`ip neigh`). See docs/NET.md. */
import { AF_BRIDGE, NDA_DST, NDA_LLADDR, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, RTM_DELNEIGH, RTM_GETNEIGH, RTM_NEWNEIGH } from '../netlink/constants.js';
import { afOf, bytesToIp, familyOfAf, ipToBytes, parseIp } from '../addr/ip.js';
import { bytesToMac, macToBytes } from '../addr/mac.js';
import { during } from '../errors.js';
import { MessageWriter, parseAttrs, type NlMessage } from '../netlink/encoding.js';
import type { Handle } from './handle.js';
import { linkIndex, refText } from './link.js';
import type { LinkRef } from './link-types.js';

/** A neighbour entry's state (`nud`), as `ip neigh` names it. */
export type NeighState = 'incomplete' | 'reachable' | 'stale' | 'delay' | 'probe' | 'failed' | 'noarp' | 'permanent';
const STATES: [NeighState, number][] = [
  ['incomplete', 0x01],
  ['reachable', 0x02],
  ['stale', 0x04],
  ['delay', 0x08],
  ['probe', 0x10],
  ['failed', 0x20],
  ['noarp', 0x40],
  ['permanent', 0x80],
];
const NTF_PROXY = 0x08;
const NTF_ROUTER = 0x80;

/** A neighbour entry to add, replace or delete. */
export interface NeighbourSpec {
  /** the link the entry is on, by name or index */
  link: LinkRef;
  /** the IP address */
  address: string;
  /** the link-layer address, `aa:bb:cc:dd:ee:ff` */
  lladdr?: string;
  /** default permanent */
  state?: NeighState;
  /** an IPv6 router */
  router?: boolean;
  /** a proxy entry: answer ARP/NDP for `address` on the link (`ip neigh add proxy ADDRESS dev LINK`); no lladdr */
  proxy?: boolean;
}

/** A neighbour entry as the kernel reports it. */
export interface Neighbour {
  /** index of the link the entry is on (`NeighbourSpec.link` accepts it) */
  linkIndex: number;
  family: 4 | 6;
  address: string;
  lladdr: string | undefined;
  /** the states set (usually one) */
  state: NeighState[];
  router: boolean;
  proxy: boolean;
}

/** Decodes an RTM_NEWNEIGH/RTM_DELNEIGH message (a dump entry or an event). */
export function parseNeighbour(m: NlMessage): Neighbour {
  const d = m.data;
  const a = parseAttrs(d, 12);
  const st = d.readUInt16LE(8);
  const flags = d.readUInt8(10);
  return {
    linkIndex: d.readInt32LE(4),
    family: familyOfAf(d.readUInt8(0)),
    address: a[NDA_DST] ? bytesToIp(a[NDA_DST]!) : '',
    lladdr: a[NDA_LLADDR]?.length === 6 ? bytesToMac(a[NDA_LLADDR]!) : undefined,
    state: STATES.filter(([, v]) => st & v).map(([n]) => n),
    router: (flags & NTF_ROUTER) !== 0,
    proxy: (flags & NTF_PROXY) !== 0,
  };
}

async function neighMessage(h: Handle, type: number, flags: number, n: NeighbourSpec): Promise<Buffer> {
  const w = new MessageWriter(type, flags);
  const s = w.struct(12);
  const address = parseIp(n.address, 'neighbour address');
  s.writeUInt8(afOf(address.family), 0);
  s.writeInt32LE(await linkIndex(h, n.link), 4);
  s.writeUInt16LE(type === RTM_DELNEIGH ? 0 : STATES.find(([k]) => k === (n.state ?? 'permanent'))![1], 8);
  s.writeUInt8((n.router ? NTF_ROUTER : 0) | (n.proxy ? NTF_PROXY : 0), 10);
  w.attr(NDA_DST, ipToBytes(address));
  if (n.lladdr !== undefined) w.attr(NDA_LLADDR, macToBytes(n.lladdr));
  return w.finish();
}

const text = (n: NeighbourSpec) => `${n.address}${n.lladdr ? ` lladdr ${n.lladdr}` : ''} dev ${refText(n.link)}`;

/** Adds a neighbour entry (default permanent); EEXIST if there is one. Equivalent to: `ip neigh add [proxy] ADDRESS lladdr MAC dev LINK nud STATE`. */
export async function addNeighbour(h: Handle, n: NeighbourSpec): Promise<void> {
  const what = `add neighbour ${text(n)}`;
  const msg = await during({ op: 'addNeighbour', what, object: n.address }, neighMessage(h, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_EXCL, n));
  await h.request(msg, { op: 'RTM_NEWNEIGH', what, object: n.address });
}

/** Adds a neighbour entry or replaces the one there. Equivalent to: `ip neigh replace ADDRESS lladdr MAC dev LINK nud STATE`. */
export async function replaceNeighbour(h: Handle, n: NeighbourSpec): Promise<void> {
  const what = `replace neighbour ${text(n)}`;
  const msg = await during({ op: 'replaceNeighbour', what, object: n.address }, neighMessage(h, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, n));
  await h.request(msg, { op: 'RTM_NEWNEIGH', what, object: n.address });
}

/** Deletes a neighbour entry; ENOENT if there is none. Equivalent to: `ip neigh del [proxy] ADDRESS dev LINK`. */
export async function deleteNeighbour(h: Handle, n: Pick<NeighbourSpec, 'link' | 'address' | 'proxy'>): Promise<void> {
  const what = `delete neighbour ${text(n)}`;
  const msg = await during({ op: 'deleteNeighbour', what, object: n.address }, neighMessage(h, RTM_DELNEIGH, 0, n));
  await h.request(msg, { op: 'RTM_DELNEIGH', what, object: n.address });
}

/**
 * The neighbour tables (ARP and NDP), optionally of one link or family; with `proxy`, the proxy entries instead
 * (the kernel dumps them only when asked). Equivalent to: `ip neigh show [proxy] [dev LINK] [-4|-6]`.
 */
export async function listNeighbours(h: Handle, filter: { link?: LinkRef; family?: 4 | 6; proxy?: boolean } = {}): Promise<Neighbour[]> {
  const index = filter.link === undefined ? undefined : await linkIndex(h, filter.link);
  const w = new MessageWriter(RTM_GETNEIGH, 0);
  const s = w.struct(12);
  s.writeUInt8(afOf(filter.family), 0);
  if (filter.proxy) s.writeUInt8(NTF_PROXY, 10);
  const replies = await h.dump(w.finish(), { op: 'RTM_GETNEIGH', what: `list neighbours in ${h.label}` });
  return (
    replies
      // a dump of every family includes the bridges' forwarding entries (AF_BRIDGE): those are listFdb's
      .filter((m) => m.type === RTM_NEWNEIGH && m.data.readUInt8(0) !== AF_BRIDGE)
      .map(parseNeighbour)
      .filter((n) => (index === undefined || n.linkIndex === index) && (filter.family === undefined || n.family === filter.family) && n.address !== '')
  );
}

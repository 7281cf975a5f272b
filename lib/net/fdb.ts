/**
 * The bridge forwarding database (FDB): which MAC address lives behind which port, and — on a VXLAN device —
 * behind which remote tunnel endpoint. Add, append, replace, delete, list (`bridge fdb`). AF_BRIDGE neighbour
 * messages: the same RTM_NEWNEIGH/DELNEIGH/GETNEIGH as `ip neigh`, keyed by MAC rather than by IP.
 * See docs/NET.md for the rest.
 */
import {
  AF_BRIDGE,
  NDA_DST,
  NDA_IFINDEX,
  NDA_LLADDR,
  NDA_MASTER,
  NDA_PORT,
  NDA_VLAN,
  NDA_VNI,
  NLM_F_APPEND,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  NTF_EXT_LEARNED,
  NTF_MASTER,
  NTF_SELF,
  NUD_NOARP,
  NUD_PERMANENT,
  NUD_REACHABLE,
  NUD_STALE,
  RTM_DELNEIGH,
  RTM_GETNEIGH,
  RTM_NEWNEIGH,
} from '../netlink/constants.js';
import { bytesToIp, ipToBytes, parseIp } from '../addr/ip.js';
import { bytesToMac, macToBytes } from '../addr/mac.js';
import { during } from '../errors.js';
import { getU16, getU32, MessageWriter, parseAttrs, type NlMessage } from '../netlink/encoding.js';
import type { Handle } from './handle.js';
import { linkIndex, refText } from './link.js';
import type { LinkRef } from './link-types.js';

/** How long an FDB entry lives, as `bridge fdb` names it: `permanent` (local), `static` (never ages), `dynamic` (ages). */
export type FdbState = 'permanent' | 'static' | 'dynamic';

/** An FDB entry to add, append, replace or delete. */
export interface FdbSpec {
  /** the port (a bridge port, or a VXLAN device), by name or index */
  link: LinkRef;
  /** the MAC address; `00:00:00:00:00:00` on a VXLAN device is the default destination (flooding) */
  mac: string;
  /** a VXLAN device's remote endpoint (`dst`) */
  dst?: string;
  /** the VNI to send with (`vni`; default the device's) */
  vni?: number;
  /** the UDP destination port (`port`; default the device's) */
  port?: number;
  /** the underlay link to send through (`via`, NDA_IFINDEX) */
  via?: LinkRef;
  /** the VLAN (`vlan`) */
  vlan?: number;
  /** the entry in the port's own table (`self`); the default when `master` is not set */
  self?: boolean;
  /** the entry in the table of the bridge the port belongs to (`master`); read back: not the device's own */
  master?: boolean;
  /** learned by something outside the kernel (`extern_learn`) */
  externLearned?: boolean;
  /**
   * default `permanent`, as `bridge fdb add` assumes. A VXLAN device takes `permanent` or `dynamic` only; on a
   * bridge, `permanent` makes a local entry (frames to the MAC are for the host) and `static` one that never ages.
   */
  state?: FdbState;
}

/** An FDB entry as the kernel reports it. */
export interface FdbEntry {
  /** index of the port (`FdbSpec.link` accepts it) */
  linkIndex: number;
  mac: string;
  dst: string | undefined;
  vni: number | undefined;
  port: number | undefined;
  /** index of the underlay link (`via`) */
  viaIndex: number | undefined;
  vlan: number | undefined;
  /** index of the bridge the entry's port belongs to (NDA_MASTER) */
  masterIndex: number | undefined;
  self: boolean;
  master: boolean;
  externLearned: boolean;
  /** `undefined` for states `bridge fdb` prints nothing for */
  state: FdbState | 'stale' | undefined;
}

const STATE_BITS: Record<FdbState, number> = { permanent: NUD_PERMANENT, static: NUD_NOARP, dynamic: NUD_REACHABLE };

/** Decodes an AF_BRIDGE RTM_NEWNEIGH/RTM_DELNEIGH message (a dump entry or an event). */
export function parseFdbEntry(m: NlMessage): FdbEntry {
  const d = m.data;
  const a = parseAttrs(d, 12);
  const st = d.readUInt16LE(8);
  const flags = d.readUInt8(10);
  const port = a[NDA_PORT];
  return {
    linkIndex: d.readInt32LE(4),
    mac: a[NDA_LLADDR]?.length === 6 ? bytesToMac(a[NDA_LLADDR]!) : '',
    dst: a[NDA_DST] ? bytesToIp(a[NDA_DST]!) : undefined,
    vni: getU32(a[NDA_VNI]),
    port: port ? port.readUInt16BE(0) : undefined,
    viaIndex: getU32(a[NDA_IFINDEX]),
    vlan: getU16(a[NDA_VLAN]),
    masterIndex: getU32(a[NDA_MASTER]),
    self: (flags & NTF_SELF) !== 0,
    // the bridge dumps its own table without NTF_MASTER: what is not a device's own entry is the bridge's
    master: (flags & NTF_MASTER) !== 0 || (flags & NTF_SELF) === 0,
    externLearned: (flags & NTF_EXT_LEARNED) !== 0,
    state: st & NUD_PERMANENT ? 'permanent' : st & NUD_NOARP ? 'static' : st & NUD_STALE ? 'stale' : st & NUD_REACHABLE ? 'dynamic' : undefined,
  };
}

/** Whether a message from the neighbour group is an FDB entry (AF_BRIDGE) rather than an ARP/NDP one. */
export function isFdbMessage(m: NlMessage): boolean {
  return m.data.length >= 1 && m.data.readUInt8(0) === AF_BRIDGE;
}

async function fdbMessage(h: Handle, type: number, flags: number, f: FdbSpec): Promise<Buffer> {
  const w = new MessageWriter(type, flags);
  const s = w.struct(12);
  s.writeUInt8(AF_BRIDGE, 0);
  s.writeInt32LE(await linkIndex(h, f.link), 4);
  s.writeUInt16LE(STATE_BITS[f.state ?? 'permanent'], 8);
  // as `bridge fdb`: an entry goes to the port's own table unless the bridge's is asked for
  let ntf = (f.self || !f.master ? NTF_SELF : 0) | (f.master ? NTF_MASTER : 0);
  if (f.externLearned) ntf |= NTF_EXT_LEARNED;
  s.writeUInt8(ntf, 10);
  w.attr(NDA_LLADDR, macToBytes(f.mac));
  if (f.dst !== undefined) w.attr(NDA_DST, ipToBytes(parseIp(f.dst, 'fdb destination')));
  if (f.port !== undefined) w.be16(NDA_PORT, f.port);
  if (f.vni !== undefined) w.u32(NDA_VNI, f.vni);
  if (f.via !== undefined) w.u32(NDA_IFINDEX, await linkIndex(h, f.via));
  if (f.vlan !== undefined) w.u16(NDA_VLAN, f.vlan);
  return w.finish();
}

const text = (f: FdbSpec) => `${f.mac} dev ${refText(f.link)}${f.dst ? ` dst ${f.dst}` : ''}${f.vni !== undefined ? ` vni ${f.vni}` : ''}`;

async function send(h: Handle, op: string, verb: string, type: number, flags: number, f: FdbSpec): Promise<void> {
  const what = `${verb} fdb entry ${text(f)}`;
  const msg = await during({ op, what, object: f.mac }, fdbMessage(h, type, flags, f));
  await h.request(msg, { op: type === RTM_DELNEIGH ? 'RTM_DELNEIGH' : 'RTM_NEWNEIGH', what, object: f.mac });
}

/** Adds an FDB entry; EEXIST if the MAC has one on that port. Equivalent to: `bridge fdb add MAC dev LINK [dst IP] [vni N] [port P] [via DEV] [self|master] [static]`. */
export async function addFdbEntry(h: Handle, f: FdbSpec): Promise<void> {
  await send(h, 'addFdbEntry', 'add', RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_EXCL, f);
}

/**
 * Adds one more destination for a MAC on a VXLAN device (for the all-zeros MAC: one more endpoint to flood to).
 * Equivalent to: `bridge fdb append MAC dev LINK dst IP`.
 */
export async function appendFdbEntry(h: Handle, f: FdbSpec): Promise<void> {
  await send(h, 'appendFdbEntry', 'append', RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_APPEND, f);
}

/** Adds an FDB entry or replaces the one there. Equivalent to: `bridge fdb replace MAC dev LINK [dst IP] …`. */
export async function replaceFdbEntry(h: Handle, f: FdbSpec): Promise<void> {
  await send(h, 'replaceFdbEntry', 'replace', RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, f);
}

/**
 * Deletes an FDB entry (with `dst`, only that destination of a MAC that has several); ENOENT if there is none.
 * Equivalent to: `bridge fdb del MAC dev LINK [dst IP] [self|master]`.
 */
export async function deleteFdbEntry(h: Handle, f: FdbSpec): Promise<void> {
  await send(h, 'deleteFdbEntry', 'delete', RTM_DELNEIGH, 0, f);
}

/**
 * The forwarding database: every bridge's and every device's own entries, optionally only those of one port or
 * of one bridge's ports. Equivalent to: `bridge fdb show [dev LINK] [br BRIDGE]`.
 */
export async function listFdb(h: Handle, filter: { link?: LinkRef; bridge?: LinkRef } = {}): Promise<FdbEntry[]> {
  const index = filter.link === undefined ? undefined : await linkIndex(h, filter.link);
  const bridge = filter.bridge === undefined ? undefined : await linkIndex(h, filter.bridge);
  const w = new MessageWriter(RTM_GETNEIGH, 0);
  w.struct(12).writeUInt8(AF_BRIDGE, 0);
  const replies = await h.dump(w.finish(), { op: 'RTM_GETNEIGH', what: `list fdb in ${h.label}` });
  return replies
    .filter((m) => m.type === RTM_NEWNEIGH && isFdbMessage(m))
    .map(parseFdbEntry)
    .filter((e) => (index === undefined || e.linkIndex === index) && (bridge === undefined || e.masterIndex === bridge || e.linkIndex === bridge));
}

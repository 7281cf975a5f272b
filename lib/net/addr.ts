/** IPv4 and IPv6 addresses: add, replace, delete, list, flush (`ip addr`). See docs/NET.md. */
import {
  IFA_ADDRESS,
  IFA_BROADCAST,
  IFA_CACHEINFO,
  IFA_F_DADFAILED,
  IFA_F_DEPRECATED,
  IFA_F_NODAD,
  IFA_F_NOPREFIXROUTE,
  IFA_F_PERMANENT,
  IFA_F_SECONDARY,
  IFA_F_TENTATIVE,
  IFA_FLAGS,
  IFA_LABEL,
  IFA_LOCAL,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  RTM_DELADDR,
  RTM_GETADDR,
  RTM_NEWADDR,
} from '../netlink/constants.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { afOf, bytesToIp, familyOfAf, ipToBytes, lastOf, parseCidr, parseIp } from '../addr/ip.js';
import { during, ERR, NetplumbError } from '../errors.js';
import { getStr, getU32, MessageWriter, parseAttrs, type NlMessage } from '../netlink/encoding.js';
import type { Handle } from './handle.js';
import { linkIndex, refText } from './link.js';
import type { LinkRef } from './link-types.js';

/** An address's or route's scope, as `ip` names it. */
export type Scope = 'universe' | 'site' | 'link' | 'host' | 'nowhere';
const SCOPES: Record<Scope, number> = { universe: 0, site: 200, link: 253, host: 254, nowhere: 255 };
/** @internal The name of a scope number (or the number as text). */
export function scopeName(n: number): Scope | `${number}` {
  return (Object.entries(SCOPES).find(([, v]) => v === n)?.[0] as Scope | undefined) ?? `${n}`;
}
/** @internal The number of a scope name. */
export function scopeNumber(s: Scope | number): number {
  return typeof s === 'number' ? s : SCOPES[s];
}

/** Options for adding an address (`ip addr add`'s). */
export interface AddressOptions {
  /** IPv4 broadcast address, or true to compute it from the prefix (`brd +`) */
  broadcast?: string | true;
  scope?: Scope | number;
  /** IPv4 label (`eth0:1`); must start with the link's name */
  label?: string;
  /** skip duplicate address detection (IPv6): usable at once */
  nodad?: boolean;
  /** do not add the prefix route */
  noprefixroute?: boolean;
  /** the other end of a point-to-point link (`peer`): the prefix route goes to it */
  peer?: string;
  /** seconds until the address is removed (`valid_lft`; default forever) */
  validLifetime?: number;
  /** seconds until it is deprecated (`preferred_lft`; default the valid lifetime) */
  preferredLifetime?: number;
}

/** An address to add, replace or delete: the link it is on and `address/prefix`, plus options for adding. */
export interface AddressSpec extends AddressOptions {
  /** the link the address is on, by name or index */
  link: LinkRef;
  /** `10.0.0.2/24`, `fd00::2/64` (as `Address.cidr` reads back) */
  cidr: string;
}

/** An address as the kernel reports it. */
export interface Address {
  /** index of the link the address is on (`AddressSpec.link` accepts it) */
  linkIndex: number;
  family: 4 | 6;
  /** the address without prefix */
  address: string;
  prefix: number;
  /** `address/prefix` */
  cidr: string;
  /** the peer of a point-to-point address, when it differs */
  peer: string | undefined;
  broadcast: string | undefined;
  scope: Scope | `${number}`;
  label: string | undefined;
  /** raw IFA_F_* flags */
  flags: number;
  secondary: boolean;
  permanent: boolean;
  tentative: boolean;
  dadfailed: boolean;
  deprecated: boolean;
  nodad: boolean;
  noprefixroute: boolean;
  /** seconds; 0xffffffff = forever */
  validLifetime: number | undefined;
  preferredLifetime: number | undefined;
}

/** Decodes an RTM_NEWADDR/RTM_DELADDR message (a dump entry or an event). */
export function parseAddress(m: NlMessage): Address {
  const d = m.data;
  const fam = d.readUInt8(0);
  const prefix = d.readUInt8(1);
  const a = parseAttrs(d, 8);
  const flags = getU32(a[IFA_FLAGS]) ?? d.readUInt8(2);
  const local = a[IFA_LOCAL] ? bytesToIp(a[IFA_LOCAL]!) : undefined;
  const addr = a[IFA_ADDRESS] ? bytesToIp(a[IFA_ADDRESS]!) : undefined;
  const address = local ?? addr ?? '';
  const ci = a[IFA_CACHEINFO];
  return {
    linkIndex: d.readUInt32LE(4),
    family: familyOfAf(fam),
    address,
    prefix,
    cidr: `${address}/${prefix}`,
    peer: local !== undefined && addr !== undefined && addr !== local ? addr : undefined,
    broadcast: a[IFA_BROADCAST] ? bytesToIp(a[IFA_BROADCAST]!) : undefined,
    scope: scopeName(d.readUInt8(3)),
    label: getStr(a[IFA_LABEL]),
    flags,
    secondary: (flags & IFA_F_SECONDARY) !== 0,
    permanent: (flags & IFA_F_PERMANENT) !== 0,
    tentative: (flags & IFA_F_TENTATIVE) !== 0,
    dadfailed: (flags & IFA_F_DADFAILED) !== 0,
    deprecated: (flags & IFA_F_DEPRECATED) !== 0,
    nodad: (flags & IFA_F_NODAD) !== 0,
    noprefixroute: (flags & IFA_F_NOPREFIXROUTE) !== 0,
    preferredLifetime: ci && ci.length >= 8 ? ci.readUInt32LE(0) : undefined,
    validLifetime: ci && ci.length >= 8 ? ci.readUInt32LE(4) : undefined,
  };
}

/** @internal The request for an address change, by link index. */
export function addressMessage(type: number, flags: number, index: number, cidr: string, opts: AddressOptions = {}): Buffer {
  const c = parseCidr(cidr, 'address', { bare: true });
  const { prefix, family } = c;
  const w = new MessageWriter(type, flags);
  const s = w.struct(8);
  s.writeUInt8(afOf(family), 0);
  s.writeUInt8(prefix, 1);
  let f = 0;
  if (opts.nodad) f |= IFA_F_NODAD;
  if (opts.noprefixroute) f |= IFA_F_NOPREFIXROUTE;
  s.writeUInt8(f & 0xff, 2);
  s.writeUInt8(opts.scope === undefined ? 0 : scopeNumber(opts.scope), 3);
  s.writeUInt32LE(index, 4);
  const bytes = ipToBytes({ family, value: c.ip });
  w.attr(IFA_LOCAL, bytes);
  w.attr(IFA_ADDRESS, opts.peer === undefined ? bytes : ipToBytes(parseIp(opts.peer, 'peer address')));
  if (opts.validLifetime !== undefined || opts.preferredLifetime !== undefined) {
    // ifa_cacheinfo: preferred, valid (seconds; 0xffffffff is forever), then two stamps the kernel fills in
    const forever = 0xffffffff;
    const valid = opts.validLifetime ?? forever;
    const ci = Buffer.alloc(16);
    ci.writeUInt32LE(Math.min(opts.preferredLifetime ?? valid, valid), 0);
    ci.writeUInt32LE(valid, 4);
    w.attr(IFA_CACHEINFO, ci);
  }
  if (opts.broadcast !== undefined && family === 4) {
    w.attr(IFA_BROADCAST, ipToBytes(opts.broadcast === true ? { family, value: lastOf(c) } : opts.broadcast));
  }
  if (opts.label !== undefined) w.str(IFA_LABEL, opts.label);
  if (f > 0xff) w.u32(IFA_FLAGS, f);
  return w.finish();
}

/**
 * Adds an address to a link; EEXIST if it is already there.
 * Equivalent to: `ip addr add CIDR dev LINK [broadcast …] [scope …] [label …] [nodad] [noprefixroute]`.
 */
export async function addAddress(h: Handle, spec: AddressSpec): Promise<void> {
  const { link, cidr, ...opts } = spec;
  const what = `add address ${cidr} to ${refText(link)}`;
  const msg = addressMessage(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, await during({ op: 'addAddress', what, object: cidr }, linkIndex(h, link)), cidr, opts);
  await h.request(msg, { op: 'RTM_NEWADDR', what, object: cidr });
}

/** Adds an address to a link or updates it there (no error if present). Equivalent to: `ip addr replace CIDR dev LINK …`. */
export async function replaceAddress(h: Handle, spec: AddressSpec): Promise<void> {
  const { link, cidr, ...opts } = spec;
  const what = `replace address ${cidr} on ${refText(link)}`;
  const msg = addressMessage(
    RTM_NEWADDR,
    NLM_F_CREATE | NLM_F_REPLACE,
    await during({ op: 'replaceAddress', what, object: cidr }, linkIndex(h, link)),
    cidr,
    opts,
  );
  await h.request(msg, { op: 'RTM_NEWADDR', what, object: cidr });
}

/** Removes an address from a link; EADDRNOTAVAIL if it is not there. Equivalent to: `ip addr del CIDR dev LINK`. */
export async function deleteAddress(h: Handle, spec: Pick<AddressSpec, 'link' | 'cidr'>): Promise<void> {
  const { link, cidr } = spec;
  const what = `delete address ${cidr} from ${refText(link)}`;
  const msg = addressMessage(RTM_DELADDR, 0, await during({ op: 'deleteAddress', what, object: cidr }, linkIndex(h, link)), cidr);
  await h.request(msg, { op: 'RTM_DELADDR', what, object: cidr });
}

/** Addresses of the namespace, or of one link, or of one family. Equivalent to: `ip addr show [dev LINK] [-4|-6]`. */
export async function listAddresses(h: Handle, filter: { link?: LinkRef; family?: 4 | 6 } = {}): Promise<Address[]> {
  const index = filter.link === undefined ? 0 : await linkIndex(h, filter.link);
  const w = new MessageWriter(RTM_GETADDR, 0);
  const s = w.struct(8);
  s.writeUInt8(afOf(filter.family), 0);
  s.writeUInt32LE(index, 4); // with strict checking the kernel filters by link itself
  const what = `list addresses${filter.link === undefined ? '' : ` of ${refText(filter.link)}`} in ${h.label}`;
  const replies = await h.dump(w.finish(), { op: 'RTM_GETADDR', what });
  return replies
    .filter((m) => m.type === RTM_NEWADDR)
    .map(parseAddress)
    .filter((a) => (index === 0 || a.linkIndex === index) && (filter.family === undefined || a.family === filter.family));
}

/** Removes every address of a link (of one family if given); returns what went. Equivalent to: `ip addr flush dev LINK [-4|-6]`. */
export async function flushAddresses(h: Handle, filter: { link: LinkRef; family?: 4 | 6 }): Promise<Address[]> {
  const { link } = filter;
  const addrs = await listAddresses(h, filter);
  // Primaries first would take their secondaries with them (and their deletes would fail): delete secondaries first.
  addrs.sort((a, b) => Number(b.secondary) - Number(a.secondary));
  const gone: Address[] = [];
  await Promise.all(
    addrs.map(async (a) => {
      try {
        await h.request(addressMessage(RTM_DELADDR, 0, a.linkIndex, a.cidr), {
          op: 'RTM_DELADDR',
          what: `delete address ${a.cidr} from ${refText(link)}`,
          object: a.cidr,
        });
        gone.push(a);
      } catch (e) {
        // a primary's removal may already have taken this secondary
        if ((e as { code?: string }).code !== 'EADDRNOTAVAIL') throw e;
      }
    }),
  );
  return gone;
}

/**
 * Waits until no IPv6 address of a link is tentative any more (duplicate address detection is over, what
 * `ip -6 addr show dev X tentative` lists is empty), polling every 50 ms for at most `timeoutMs` (default
 * 10 s, what the reference plugins allow). Rejects with `ERR_DAD_FAILED` naming the address when DAD found a
 * duplicate, `ERR_TIMEOUT` when addresses are still tentative at the deadline.
 */
export async function waitForAddressesSettled(h: Handle, link: LinkRef, opts: { timeoutMs?: number } = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const addrs = await listAddresses(h, { link, family: 6 });
    const failed = addrs.find((a) => a.dadfailed);
    if (failed) {
      throw new NetplumbError(`duplicate address detection failed for ${failed.cidr} on ${refText(link)}`, {
        code: 'ERR_DAD_FAILED',
        op: 'wait for DAD',
        object: failed.cidr,
      });
    }
    const tentative = addrs.filter((a) => a.tentative);
    if (tentative.length === 0) return;
    if (Date.now() > deadline) {
      const list = tentative.map((a) => a.cidr).join(', ');
      throw new NetplumbError(`IPv6 addresses ${list} of ${refText(link)} still tentative after ${timeoutMs} ms`, {
        code: ERR.TIMEOUT,
        op: 'wait for DAD',
        object: refText(link),
      });
    }
    await sleep(50);
  }
}

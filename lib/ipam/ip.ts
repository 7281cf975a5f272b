/**
 * IP addresses as bigints, parsed and printed exactly as Go's `net` package does, because the reference
 * host-local names its store files with Go's `net.IP.String()`: two allocators sharing a store must agree
 * on every byte of a file name. Strict where Go is strict (no leading zeros in IPv4 fields, no zones),
 * IPv4-mapped IPv6 addresses are IPv4 (Go's `To4()`), IPv6 is printed in RFC 5952 form.
 *
 * No package dependency (only netplumb's own address printing from lib/netlink/encoding): this runs in every plugin exec, and the tests check it against `ip-cidr` as an oracle.
 * See docs/CNI.md for the rest.
 */
import { formatIpv6Groups } from '../netlink/encoding.js';

export type Family = 4 | 6;

export interface Ip {
  family: Family;
  value: bigint;
}

export interface Cidr {
  family: Family;
  /** the address as written, host bits included (`10.1.0.5/24` → 10.1.0.5) */
  ip: bigint;
  prefix: number;
  /** ip with the host bits cleared */
  network: bigint;
}

export const BITS: Record<Family, number> = { 4: 32, 6: 128 };

function parseV4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseV6(s: string): bigint | undefined {
  if (s.length < 2 || s.length > 45) return undefined;
  let head = s;
  let tailV4: bigint | undefined;
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    tailV4 = parseV4(s.slice(lastColon + 1));
    if (tailV4 === undefined) return undefined;
    head = s.slice(0, lastColon + 1);
    // `::1.2.3.4` and `x:…:1.2.3.4`: the v4 part takes two groups; keep the separator for `::`.
    head = head.endsWith('::') ? head : head.slice(0, -1);
  }
  const groupsWanted = tailV4 === undefined ? 8 : 6;
  const dbl = head.indexOf('::');
  if (dbl !== -1 && head.indexOf('::', dbl + 1) !== -1) return undefined;
  const splitGroups = (t: string): string[] | undefined => {
    if (t === '') return [];
    const g = t.split(':');
    return g.every((x) => /^[0-9a-fA-F]{1,4}$/.test(x)) ? g : undefined;
  };
  let groups: string[];
  if (dbl === -1) {
    const g = splitGroups(head);
    if (!g || g.length !== groupsWanted) return undefined;
    groups = g;
  } else {
    const left = splitGroups(head.slice(0, dbl));
    const right = splitGroups(head.slice(dbl + 2));
    if (!left || !right) return undefined;
    const missing = groupsWanted - left.length - right.length;
    if (missing < 1) return undefined;
    groups = [...left, ...Array<string>(missing).fill('0'), ...right];
  }
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(parseInt(g, 16));
  if (tailV4 !== undefined) v = (v << 32n) | tailV4;
  return v;
}

/** Parses an IPv4 or IPv6 address as Go's `net.ParseIP` does, then canonicalises IPv4-mapped to IPv4. */
export function parseIp(s: string): Ip | undefined {
  if (typeof s !== 'string') return undefined;
  if (!s.includes(':')) {
    const v = parseV4(s);
    return v === undefined ? undefined : { family: 4, value: v };
  }
  const v = parseV6(s);
  if (v === undefined) return undefined;
  if (v >> 32n === 0xffffn) return { family: 4, value: v & 0xffffffffn };
  return { family: 6, value: v };
}

/** Parses `addr/prefix` as Go's `net.ParseCIDR`; an IPv4-mapped address with an IPv6 prefix is refused. */
export function parseCidr(s: string): Cidr | undefined {
  if (typeof s !== 'string') return undefined;
  const slash = s.indexOf('/');
  if (slash === -1) return undefined;
  const addr = s.slice(0, slash);
  const pfx = s.slice(slash + 1);
  if (!/^[0-9]{1,3}$/.test(pfx)) return undefined;
  const prefix = Number(pfx);
  let ip: Ip;
  if (addr.includes(':')) {
    const v = parseV6(addr);
    // An IPv4-mapped address is IPv4 to Go's allocator, with an IPv6 mask: a version mismatch it refuses.
    if (v === undefined || v >> 32n === 0xffffn) return undefined;
    ip = { family: 6, value: v };
  } else {
    const v = parseV4(addr);
    if (v === undefined) return undefined;
    ip = { family: 4, value: v };
  }
  if (prefix > BITS[ip.family]) return undefined;
  return { family: ip.family, ip: ip.value, prefix, network: ip.value & maskOf(ip.family, prefix) };
}

export function maskOf(family: Family, prefix: number): bigint {
  const host = BigInt(BITS[family] - prefix);
  return (((1n << BigInt(BITS[family])) - 1n) >> host) << host;
}

/** The last address of a network (the broadcast address in IPv4). */
export function lastOf(c: Pick<Cidr, 'family' | 'network' | 'prefix'>): bigint {
  return c.network | (maskOf(c.family, c.prefix) ^ ((1n << BigInt(BITS[c.family])) - 1n));
}

export function cidrContains(c: Pick<Cidr, 'family' | 'network' | 'prefix'>, ip: Ip): boolean {
  return ip.family === c.family && (ip.value & maskOf(c.family, c.prefix)) === c.network;
}

/** Go's `net.IP.String()`: dotted quad, or RFC 5952 (lower case, longest run of ≥ 2 zero groups elided). */
export function formatIp(ip: Ip): string {
  if (ip.family === 4) {
    const v = Number(ip.value);
    return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  if (ip.value >> 32n === 0xffffn) return formatIp({ family: 4, value: ip.value & 0xffffffffn });
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
  return formatIpv6Groups(groups);
}

export function formatCidr(ip: Ip, prefix: number): string {
  return `${formatIp(ip)}/${prefix}`;
}

/** The canonical text of an address string, or undefined if it is not one. */
export function canonicalIp(s: string): string | undefined {
  const ip = parseIp(s);
  return ip === undefined ? undefined : formatIp(ip);
}

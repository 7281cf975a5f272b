/**
 * IP addresses and prefixes: the one model every layer uses (netlink messages, the firewall, IPAM, the
 * plugins). An address is a family and a bigint; a prefix (`Cidr`) is an address, a length and its network.
 *
 * Parsed and printed exactly as Go's `net` package does, because the reference host-local names its store
 * files with Go's `net.IP.String()`, and two allocators sharing a store must agree on every byte of a file
 * name: strict where Go is strict (no leading zeros in IPv4 fields, no zones), an IPv4-mapped IPv6 address is
 * IPv4 (Go's `To4()`, which vishvananda/netlink also uses to pick AF_INET), IPv6 is printed in RFC 5952 form.
 * Addresses the kernel reports are printed as iproute2 prints them (`bytesToIp`, inet_ntop): the two forms
 * differ only for IPv4-mapped IPv6, which iproute2 prints as `::ffff:a.b.c.d`.
 *
 * Every parser comes twice: `parseX` throws an AddressError (`ERR_INVALID_ADDRESS`, naming what was parsed),
 * `tryParseX` returns undefined.
 *
 * Why not the `ip-cidr` package (ip-address underneath): it accepts what Go refuses (leading zeros, zones),
 * keeps IPv4-mapped addresses as IPv6, and loading it and its dependency costs every plugin exec more than this
 * file does; the unit tests use it as an independent oracle instead (test/unit/addr.test.ts).
 */
import { ERR, NetplumbError } from '../errors.js';

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

/** An address, prefix or MAC that does not parse: `code` ERR_INVALID_ADDRESS (or ERR_INVALID_MAC), `object` the text. */
export class AddressError extends NetplumbError {
  constructor(message: string, object: string, op = 'parse address', code: string = ERR.INVALID_ADDRESS) {
    super(message, { code, op, object });
  }
}

export const BITS: Record<Family, number> = { 4: 32, 6: 128 };

/** The socket address families of the kernel (linux/socket.h). */
export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;

/** The kernel's address family of an IP family (`4` → AF_INET); AF_UNSPEC for "either". */
export function afOf(family: Family | undefined): number {
  return family === 4 ? AF_INET : family === 6 ? AF_INET6 : AF_UNSPEC;
}

/** The IP family of a kernel address family (AF_INET6 → 6; anything else is 4, as in rtnetlink's replies). */
export function familyOfAf(af: number): Family {
  return af === AF_INET6 ? 6 : 4;
}

const show = (s: unknown) => JSON.stringify(s) ?? String(s);

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

const isMapped = (v: bigint) => v >> 32n === 0xffffn;

/** An IPv4 or IPv6 address as Go's `net.ParseIP` reads it, IPv4-mapped made IPv4; undefined if it is not one. */
export function tryParseIp(s: string): Ip | undefined {
  if (typeof s !== 'string') return undefined;
  if (!s.includes(':')) {
    const v = parseV4(s);
    return v === undefined ? undefined : { family: 4, value: v };
  }
  const v = parseV6(s);
  if (v === undefined) return undefined;
  if (isMapped(v)) return { family: 4, value: v & 0xffffffffn };
  return { family: 6, value: v };
}

/** Like tryParseIp, but throws an AddressError naming `what` (`gateway`, `route dst`) when `s` is no address. */
export function parseIp(s: string, what = 'IP address'): Ip {
  const ip = tryParseIp(s);
  if (ip === undefined) throw new AddressError(`invalid ${what}: ${show(s)} is not an IPv4 or IPv6 address`, String(s));
  return ip;
}

export interface CidrOptions {
  /** accept a bare address as a host prefix (/32 or /128), as `ip addr add 10.0.0.1` does; Go's ParseCIDR does not */
  bare?: boolean;
}

/**
 * `addr/prefix` as Go's `net.ParseCIDR` reads it (a bare address only with `{bare: true}`); undefined if it is
 * not one. An IPv4-mapped address with an IPv6 prefix is refused (a version mismatch to Go).
 */
export function tryParseCidr(s: string, opts: CidrOptions = {}): Cidr | undefined {
  if (typeof s !== 'string') return undefined;
  const slash = s.indexOf('/');
  if (slash === -1) {
    if (!opts.bare) return undefined;
    const ip = tryParseIp(s);
    return ip === undefined ? undefined : { family: ip.family, ip: ip.value, prefix: BITS[ip.family], network: ip.value };
  }
  const addr = s.slice(0, slash);
  const pfx = s.slice(slash + 1);
  if (!/^[0-9]{1,3}$/.test(pfx)) return undefined;
  const prefix = Number(pfx);
  let ip: Ip;
  if (addr.includes(':')) {
    const v = parseV6(addr);
    if (v === undefined || isMapped(v)) return undefined;
    ip = { family: 6, value: v };
  } else {
    const v = parseV4(addr);
    if (v === undefined) return undefined;
    ip = { family: 4, value: v };
  }
  if (prefix > BITS[ip.family]) return undefined;
  return { family: ip.family, ip: ip.value, prefix, network: ip.value & maskOf(ip.family, prefix) };
}

/** Like tryParseCidr, but throws an AddressError naming `what` and the reason. */
export function parseCidr(s: string, what = 'prefix', opts: CidrOptions = {}): Cidr {
  const c = tryParseCidr(s, opts);
  if (c !== undefined) return c;
  const text = show(s);
  const [addr = '', pfx] = typeof s === 'string' ? s.split('/') : [''];
  const ip = tryParseIp(addr);
  let why: string;
  if (typeof s !== 'string') why = 'is not a string';
  else if (ip === undefined) why = `${show(addr)} is not an IPv4 or IPv6 address`;
  else if (pfx === undefined) why = 'has no prefix length (like /24)';
  else if (ip.family === 4 && addr.includes(':')) why = 'is an IPv4-mapped address with an IPv6 prefix length';
  else why = `has a bad prefix length ${show(pfx)} (0-${BITS[ip.family]})`;
  throw new AddressError(`invalid ${what}: ${text} ${why}`, String(s));
}

/** The netmask of a prefix length as a bigint. */
export function maskOf(family: Family, prefix: number): bigint {
  const host = BigInt(BITS[family] - prefix);
  return (((1n << BigInt(BITS[family])) - 1n) >> host) << host;
}

/** The last address of a network (the broadcast address in IPv4). */
export function lastOf(c: Pick<Cidr, 'family' | 'network' | 'prefix'>): bigint {
  return c.network | (maskOf(c.family, c.prefix) ^ ((1n << BigInt(BITS[c.family])) - 1n));
}

/** Whether `ip` is inside the network `c`. */
export function cidrContains(c: Pick<Cidr, 'family' | 'network' | 'prefix'>, ip: Ip): boolean {
  return ip.family === c.family && (ip.value & maskOf(c.family, c.prefix)) === c.network;
}

/** Whether two networks share an address (one contains the other's network). */
export function cidrOverlaps(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const p = Math.min(a.prefix, b.prefix);
  return (a.network & maskOf(a.family, p)) === (b.network & maskOf(b.family, p));
}

/** Eight 16-bit groups → RFC 5952 text: lower case, the leftmost longest run of two or more zero groups as `::`. */
function formatIpv6Groups(g: readonly number[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best === -1) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

function groupsOf(v: bigint): number[] {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  return groups;
}

/** Go's `net.IP.String()`: dotted quad, or RFC 5952 (an IPv4-mapped value prints as IPv4). */
export function formatIp(ip: Ip): string {
  if (ip.family === 4) {
    const v = Number(ip.value);
    return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  if (isMapped(ip.value)) return formatIp({ family: 4, value: ip.value & 0xffffffffn });
  return formatIpv6Groups(groupsOf(ip.value));
}

/** `address/prefix` in canonical text. */
export function formatCidr(ip: Ip, prefix: number): string {
  return `${formatIp(ip)}/${prefix}`;
}

/** The canonical text of an address string (`FD00:0::1` → `fd00::1`), or undefined if it is not one. */
export function canonicalIp(s: string): string | undefined {
  const ip = tryParseIp(s);
  return ip === undefined ? undefined : formatIp(ip);
}

/** The canonical text of `addr/prefix` (host bits kept; a bare address gets its host prefix), or undefined. */
export function canonicalCidr(s: string): string | undefined {
  const c = tryParseCidr(s, { bare: true });
  return c === undefined ? undefined : formatCidr({ family: c.family, value: c.ip }, c.prefix);
}

/** The family of an address string; throws an AddressError if it is not one. */
export function familyOf(s: string): Family {
  return parseIp(s).family;
}

/** An address as the kernel wants it: 4 or 16 bytes in network order. Text is parsed (AddressError if bad). */
export function ipToBytes(ip: string | Ip): Buffer {
  const { family, value } = typeof ip === 'string' ? parseIp(ip) : ip;
  const n = family === 4 ? 4 : 16;
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = Number((value >> BigInt((n - 1 - i) * 8)) & 0xffn);
  return out;
}

/** 4 or 16 bytes → an Ip (16 bytes stay IPv6, even when IPv4-mapped: the kernel said AF_INET6). */
export function ipFromBytes(b: Uint8Array): Ip {
  if (b.length !== 4 && b.length !== 16) throw new AddressError(`an address of ${b.length} bytes (4 or 16 expected)`, `${b.length} bytes`, 'decode address');
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return { family: b.length === 4 ? 4 : 6, value: v };
}

/** 4 or 16 bytes → text as iproute2 prints it (inet_ntop: IPv4-mapped as `::ffff:a.b.c.d`). */
export function bytesToIp(b: Uint8Array): string {
  const ip = ipFromBytes(b);
  if (ip.family === 4 || !isMapped(ip.value)) return formatIp(ip);
  return `::ffff:${formatIp({ family: 4, value: ip.value & 0xffffffffn })}`;
}

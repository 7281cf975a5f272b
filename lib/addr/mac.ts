/**
 * MAC (Ethernet) addresses: parse, canonical text (lower case, colons, as iproute2 and Go print them), bytes,
 * and the unicast check that a container interface's address must pass. The one MAC model of netplumb.
 */
import { randomBytes } from 'node:crypto';
import { ERR } from '../errors.js';
import { AddressError } from './ip.js';

const MAC = /^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$/i;

const show = (s: unknown) => JSON.stringify(s) ?? String(s);

/** `aa:bb:cc:dd:ee:ff` (or with `-`, any case) → its canonical text `aa:bb:cc:dd:ee:ff`; undefined if not a MAC. */
export function tryParseMac(s: unknown): string | undefined {
  if (typeof s !== 'string' || !MAC.test(s)) return undefined;
  return s.toLowerCase().replaceAll('-', ':');
}

/** Like tryParseMac, but throws an AddressError (`ERR_INVALID_MAC`) naming `what`. */
export function parseMac(s: unknown, what = 'MAC address'): string {
  const mac = tryParseMac(s);
  if (mac === undefined)
    throw new AddressError(`invalid ${what}: ${show(s)} is not a MAC address (aa:bb:cc:dd:ee:ff)`, String(s), 'parse MAC', ERR.INVALID_MAC);
  return mac;
}

/** Why a canonical MAC cannot be an interface's own address (multicast, all zero), or undefined if it can. */
export function unicastProblem(mac: string): string | undefined {
  if (parseInt(mac.slice(0, 2), 16) & 1) return 'is a multicast MAC address';
  if (mac === '00:00:00:00:00:00') return 'is the all-zero MAC address';
  return undefined;
}

/** A MAC an interface can own: parsed as parseMac, then refused if multicast or all zero (ERR_INVALID_MAC). */
export function parseUnicastMac(s: unknown, what = 'MAC address'): string {
  const mac = parseMac(s, what);
  const p = unicastProblem(mac);
  if (p !== undefined) throw new AddressError(`invalid ${what}: ${mac} ${p}`, mac, 'parse MAC', ERR.INVALID_MAC);
  return mac;
}

/** A MAC as the kernel wants it: 6 bytes. Text is parsed (AddressError if bad). */
export function macToBytes(mac: string): Buffer {
  return Buffer.from(
    parseMac(mac)
      .split(':')
      .map((x) => parseInt(x, 16)),
  );
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Bytes (6 for Ethernet; other link types have other lengths) → `aa:bb:…` as iproute2 prints them. */
export function bytesToMac(b: Uint8Array): string {
  // a table, not toString(16) and padStart per byte: every link read back carries two MACs
  let s = b.length > 0 ? HEX[b[0]!]! : '';
  for (let i = 1; i < b.length; i++) s += ':' + HEX[b[i]!]!;
  return s;
}

/** A random locally administered unicast MAC (what the kernel would pick, but known before the link exists). */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return bytesToMac(b);
}

/**
 * Just enough address handling for rules: parse `ADDR[/PREFIX]`, canonical text, the subnet of an address.
 * See docs/FIREWALL.md for the rest.
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface IpPrefix {
  family: 4 | 6;
  /** canonical text of the address (`fd00:88::2`, never `fd00:0088:0:0::2`) */
  address: string;
  prefix: number;
  /** canonical text of the network address (host bits cleared) */
  network: string;
}

/** Canonical text of an IPv4 or IPv6 address (WHATWG URL parsing normalizes both), or undefined if invalid. */
export function canonicalIp(text: string): string | undefined {
  if (isIPv4(text)) return new URL(`http://${text}/`).hostname;
  if (isIPv6(text) && !text.includes('%')) return new URL(`http://[${text}]/`).hostname.slice(1, -1);
  return undefined;
}

export function ipFamily(text: string): 4 | 6 | undefined {
  return isIPv4(text) ? 4 : isIPv6(text) ? 6 : undefined;
}

function toBytes(address: string, family: 4 | 6): number[] {
  if (family === 4) return address.split('.').map(Number);
  const [head = '', tail] = address.split('::') as [string, string | undefined];
  const words = (s: string) => (s === '' ? [] : s.split(':'));
  const expand = (ws: string[]) =>
    ws.flatMap((w) => (w.includes('.') ? (() => { const b = w.split('.').map(Number); return [(b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!]; })() : [parseInt(w, 16)]));
  const h = expand(words(head));
  const t = tail === undefined ? [] : expand(words(tail));
  const all = [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  return all.flatMap((w) => [w >> 8, w & 0xff]);
}

function fromBytes(bytes: number[], family: 4 | 6): string {
  if (family === 4) return bytes.join('.');
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return canonicalIp(words.join(':'))!;
}

/** Parses `10.88.0.2/16`, `fd00::2/64` or a bare address (a /32 or /128). */
export function parsePrefix(text: string): IpPrefix | undefined {
  const [addr = '', len, extra] = text.split('/');
  if (extra !== undefined) return undefined;
  const family = ipFamily(addr);
  if (family === undefined) return undefined;
  const bits = family === 4 ? 32 : 128;
  const prefix = len === undefined ? bits : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
  if (!(prefix >= 0 && prefix <= bits)) return undefined;
  const address = canonicalIp(addr)!;
  const bytes = toBytes(address, family).map((b, i) => {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    return b & ((0xff << (8 - keep)) & 0xff);
  });
  return { family, address, prefix, network: fromBytes(bytes, family) };
}

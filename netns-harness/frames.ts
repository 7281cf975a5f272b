/**
 * Hand-made frames for tests that must forge what a well-behaved stack never sends (spoofed MAC or IP
 * sources): builders for Ethernet, ARP, IPv4/UDP and IPv6/UDP, and `sendRawFrames()` to put them on the wire
 * from inside a namespace.
 */
import { isIPv4 } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { NetnsHolder } from './holder.js';

const RAW_FRAME = fileURLToPath(new URL('./raw-frame.js', import.meta.url));

const mac = (m: string) => Buffer.from(m.split(':').map((b) => parseInt(b, 16)));
const ipv4 = (a: string) => Buffer.from(a.split('.').map(Number));

function ipv6(a: string): Buffer {
  const [head = '', tail = ''] = a.split('::');
  const words = (s: string) => (s === '' ? [] : s.split(':').map((w) => parseInt(w, 16)));
  const h = words(head);
  const t = a.includes('::') ? words(tail) : [];
  const all = [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  const b = Buffer.alloc(16);
  all.forEach((w, i) => b.writeUInt16BE(w, i * 2));
  return b;
}

function checksum(...parts: Buffer[]): number {
  const data = Buffer.concat(parts);
  let sum = 0;
  for (let i = 0; i < data.length; i += 2) sum += (data[i]! << 8) + (data[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function ethernetFrame(f: { dst: string; src: string; type: number; payload: Buffer }): Buffer {
  const h = Buffer.alloc(14);
  mac(f.dst).copy(h, 0);
  mac(f.src).copy(h, 6);
  h.writeUInt16BE(f.type, 12);
  return Buffer.concat([h, f.payload]);
}

/** `frame` with an 802.1Q tag (VLAN `vid`; 0 tags a priority only) after its MAC addresses. */
export function vlanTagged(frame: Buffer, vid: number): Buffer {
  const tag = Buffer.alloc(4);
  tag.writeUInt16BE(0x8100, 0);
  tag.writeUInt16BE(vid & 0xfff, 2);
  return Buffer.concat([frame.subarray(0, 12), tag, frame.subarray(12)]);
}

/** An ARP packet (request: op 1, reply: op 2) for IPv4 over Ethernet, inside an Ethernet frame. */
export function arpFrame(a: { op: 1 | 2; src: string; dst?: string; sha?: string; spa: string; tha?: string; tpa: string }): Buffer {
  const p = Buffer.alloc(28);
  p.writeUInt16BE(1, 0); // Ethernet
  p.writeUInt16BE(0x0800, 2);
  p[4] = 6;
  p[5] = 4;
  p.writeUInt16BE(a.op, 6);
  mac(a.sha ?? a.src).copy(p, 8);
  ipv4(a.spa).copy(p, 14);
  mac(a.tha ?? '00:00:00:00:00:00').copy(p, 18);
  ipv4(a.tpa).copy(p, 24);
  return ethernetFrame({ dst: a.dst ?? 'ff:ff:ff:ff:ff:ff', src: a.src, type: 0x0806, payload: p });
}

/** A UDP datagram in IPv4 or IPv6 (by the addresses' family) inside an Ethernet frame. */
export function udpFrame(u: { src: string; dst: string; srcIp: string; dstIp: string; sport: number; dport: number; payload: string | Buffer }): Buffer {
  const data = Buffer.from(u.payload);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(u.sport, 0);
  udp.writeUInt16BE(u.dport, 2);
  udp.writeUInt16BE(8 + data.length, 4);
  if (isIPv4(u.srcIp)) {
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + 8 + data.length, 2);
    ip[8] = 64;
    ip[9] = 17;
    ipv4(u.srcIp).copy(ip, 12);
    ipv4(u.dstIp).copy(ip, 16);
    ip.writeUInt16BE(checksum(ip), 10);
    const pseudo = Buffer.concat([ip.subarray(12, 20), Buffer.from([0, 17]), udp.subarray(4, 6)]);
    udp.writeUInt16BE(checksum(pseudo, udp, data) || 0xffff, 6);
    return ethernetFrame({ dst: u.dst, src: u.src, type: 0x0800, payload: Buffer.concat([ip, udp, data]) });
  }
  const ip = Buffer.alloc(40);
  ip.writeUInt32BE(0x60000000, 0);
  ip.writeUInt16BE(8 + data.length, 4);
  ip[6] = 17;
  ip[7] = 64;
  ipv6(u.srcIp).copy(ip, 8);
  ipv6(u.dstIp).copy(ip, 24);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(8 + data.length);
  const pseudo = Buffer.concat([ip.subarray(8, 40), len, Buffer.from([0, 0, 0, 17])]);
  udp.writeUInt16BE(checksum(pseudo, udp, data) || 0xffff, 6);
  return ethernetFrame({ dst: u.dst, src: u.src, type: 0x86dd, payload: Buffer.concat([ip, udp, data]) });
}

/** Sends the frames, as they are, out of interface `dev` of `from`'s namespace. */
export async function sendRawFrames(from: NetnsHolder, dev: string, frames: Buffer[]): Promise<void> {
  await from.exec([process.execPath, RAW_FRAME, '--dev', dev, ...frames.map((f) => f.toString('hex'))]);
}

/** An ICMPv6 message (`body` after type, code and checksum) in IPv6 with hop limit 255, as neighbour discovery wants. */
export function icmpv6Frame(f: { src: string; dst: string; srcIp: string; dstIp: string; type: number; code?: number; body: Buffer }): Buffer {
  const icmp = Buffer.concat([Buffer.from([f.type, f.code ?? 0, 0, 0]), f.body]);
  const ip = Buffer.alloc(40);
  ip.writeUInt32BE(0x60000000, 0);
  ip.writeUInt16BE(icmp.length, 4);
  ip[6] = 58;
  ip[7] = 255;
  ipv6(f.srcIp).copy(ip, 8);
  ipv6(f.dstIp).copy(ip, 24);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(icmp.length);
  icmp.writeUInt16BE(checksum(ip.subarray(8, 40), len, Buffer.from([0, 0, 0, 58]), icmp), 2);
  return ethernetFrame({ dst: f.dst, src: f.src, type: 0x86dd, payload: Buffer.concat([ip, icmp]) });
}

/**
 * A router advertisement (ICMPv6 134) to all nodes (ff02::1) from link-local `srcIp`: default router for
 * `routerLifetime` seconds, and `prefix`/64 on-link and for SLAAC (flags L and A), with the sender's MAC.
 */
export function routerAdvertFrame(r: { src: string; srcIp: string; prefix: string; routerLifetime?: number }): Buffer {
  const head = Buffer.alloc(12);
  head[0] = 64; // current hop limit
  head.writeUInt16BE(r.routerLifetime ?? 1800, 2);
  const slla = Buffer.concat([Buffer.from([1, 1]), mac(r.src)]); // source link-layer address option
  const pio = Buffer.alloc(32); // prefix information option
  pio[0] = 3;
  pio[1] = 4;
  pio[2] = 64;
  pio[3] = 0xc0; // on-link, autonomous
  pio.writeUInt32BE(86400, 4);
  pio.writeUInt32BE(14400, 8);
  ipv6(r.prefix).copy(pio, 16);
  return icmpv6Frame({ src: r.src, dst: '33:33:00:00:00:01', srcIp: r.srcIp, dstIp: 'ff02::1', type: 134, body: Buffer.concat([head, slla, pio]) });
}

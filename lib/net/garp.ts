/**
 * Gratuitous ARP: announce "IP is at MAC" on a link, so neighbours (and switches) update their tables at once
 * after an address moves. A real ARP packet from an AF_PACKET socket opened inside the link's namespace.
 * See docs/NET.md for the rest.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { AF_PACKET } from '../netlink/constants.js';
import { familyOf, ipToBytes, macToBytes } from '../netlink/encoding.js';
import { NetplumbError } from '../errors.js';
import { closeFd, sendto, socket } from '../sys/libc.js';
import type { Handle } from './handle.js';
import { getLink } from './link.js';
import type { LinkRef } from './link-types.js';

const SOCK_DGRAM = 2;
const ETH_P_ARP = 0x0806;

/** The 28-byte ARP request a host sends to announce itself: sender and target IP both `ip`. */
export function gratuitousArpPacket(mac: string, ip: string): Buffer {
  const p = Buffer.alloc(28);
  p.writeUInt16BE(1, 0); // Ethernet
  p.writeUInt16BE(0x0800, 2); // IPv4
  p.writeUInt8(6, 4);
  p.writeUInt8(4, 5);
  p.writeUInt16BE(1, 6); // request, as the kernel's own arp_notify sends
  macToBytes(mac).copy(p, 8);
  const ipb = ipToBytes(ip);
  ipb.copy(p, 14);
  // target hardware address stays zero
  ipb.copy(p, 24);
  return p;
}

/** What sendGratuitousArp announces, where, and how often. */
export interface GratuitousArpSpec {
  /** the link to send on, by name or index */
  link: LinkRef;
  /** the IPv4 address to announce (the link's own) */
  address: string;
  /** requests to send (default 1) */
  count?: number;
  /** milliseconds between them (default 100) */
  intervalMs?: number;
}

/**
 * Sends `count` gratuitous ARP requests for `address` out of `link`, `intervalMs` apart.
 * Equivalent to: `arping -U -c COUNT -I LINK ADDRESS` (iputils; `ip` has no such verb).
 */
export async function sendGratuitousArp(h: Handle, spec: GratuitousArpSpec): Promise<void> {
  const { address: ip, ...opts } = spec;
  if (familyOf(ip) !== 4) throw new NetplumbError(`gratuitous ARP is IPv4 only (${ip})`, { code: 'EINVAL', op: 'garp', object: ip });
  const link = await getLink(h, spec.link);
  if (!link.mac) throw new NetplumbError(`link ${link.name} has no MAC address`, { code: 'EINVAL', op: 'garp', object: link.name });
  const packet = gratuitousArpPacket(link.mac, ip);
  // sockaddr_ll: family, protocol (network order), ifindex, hatype, pkttype, halen, addr[8] = broadcast
  const to = Buffer.alloc(20);
  to.writeUInt16LE(AF_PACKET, 0);
  to.writeUInt16BE(ETH_P_ARP, 2);
  to.writeInt32LE(link.index, 4);
  to.writeUInt8(6, 11);
  Buffer.from([255, 255, 255, 255, 255, 255]).copy(to, 12);
  // Protocol 0: the socket sends but never receives, so nothing queues up on it.
  const fd = h.inNetnsSync('gratuitous ARP', () => socket(AF_PACKET, SOCK_DGRAM, 0, `packet socket on ${link.name}`));
  try {
    const count = opts.count ?? 1;
    for (let i = 0; i < count; i++) {
      if (i > 0) await sleep(opts.intervalMs ?? 100);
      sendto(fd, packet, to, `gratuitous ARP for ${ip} on ${link.name}`);
    }
  } finally {
    closeFd(fd);
  }
}

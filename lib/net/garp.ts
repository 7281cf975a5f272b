/**
 * ARP on the wire. Gratuitous ARP: announce "IP is at MAC" on a link, so neighbours (and switches) update
 * their tables at once after an address moves. ARP probe (RFC 5227): ask whether anyone holds an address
 * before taking it. Real ARP packets on an AF_PACKET socket opened inside the link's namespace.
 * See docs/NET.md for the rest.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { AF_PACKET } from '../netlink/constants.js';
import { ipToBytes, parseIp } from '../addr/ip.js';
import { macToBytes } from '../addr/mac.js';
import { ERR, NetplumbError } from '../errors.js';
import { bind, closeFd, recvNow, sendto, socket } from '../sys/libc.js';
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

/** The 28-byte ARP probe of RFC 5227: "who has `ip`?" from sender address 0.0.0.0, so no one learns a mapping. */
export function arpProbePacket(mac: string, ip: string): Buffer {
  const p = gratuitousArpPacket(mac, ip);
  p.fill(0, 14, 18); // sender IP 0.0.0.0
  return p;
}

/** sockaddr_ll for ARP on link `index`, to the broadcast address. */
function arpAddress(index: number): Buffer {
  // sockaddr_ll: family, protocol (network order), ifindex, hatype, pkttype, halen, addr[8] = broadcast
  const to = Buffer.alloc(20);
  to.writeUInt16LE(AF_PACKET, 0);
  to.writeUInt16BE(ETH_P_ARP, 2);
  to.writeInt32LE(index, 4);
  to.writeUInt8(6, 11);
  Buffer.from([255, 255, 255, 255, 255, 255]).copy(to, 12);
  return to;
}

const macText = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');

/** What probeArp asks about, where, and how patiently. */
export interface ArpProbeSpec {
  /** the link to probe on, by name or index (up) */
  link: LinkRef;
  /** the IPv4 address to ask about */
  address: string;
  /** probes to send (default 3, RFC 5227's PROBE_NUM) */
  count?: number;
  /** between probes (default 200 ms; the RFC's 1-2 s are meant for slow shared networks) */
  intervalMs?: number;
  /** how long to listen after the last probe (default 500 ms) */
  waitMs?: number;
}

/**
 * RFC 5227 duplicate-address detection of `address` on `link`: sends ARP probes and listens for anyone who
 * answers for the address, or probes for it too. Returns the MAC of the first other host that claims it, or
 * undefined when no one did. IPv4 only; the link must be up. Equivalent to: `arping -D -I LINK ADDRESS`.
 */
export async function probeArp(h: Handle, spec: ArpProbeSpec): Promise<string | undefined> {
  const { address: ip, ...opts } = spec;
  if (parseIp(ip).family !== 4) throw new NetplumbError(`ARP probes are IPv4 only (${ip})`, { code: ERR.INVALID_ADDRESS, op: 'arp probe', object: ip });
  const link = await getLink(h, spec.link);
  if (!link.mac) throw new NetplumbError(`link ${link.name} has no MAC address`, { code: ERR.INVALID_ARG_VALUE, op: 'arp probe', object: link.name });
  const probe = arpProbePacket(link.mac, ip);
  const target = ipToBytes(ip);
  const own = macToBytes(link.mac);
  const to = arpAddress(link.index);
  // This socket receives (protocol ETH_P_ARP, bound to the link): ARP frames seen on the link queue up on it.
  const fd = h.inNetnsSync('ARP probe', () => socket(AF_PACKET, SOCK_DGRAM, ((ETH_P_ARP & 0xff) << 8) | (ETH_P_ARP >> 8), `packet socket on ${link.name}`));
  try {
    bind(fd, to, `packet socket on ${link.name}`);
    const claimant = (): string | undefined => {
      for (let p = recvNow(fd, 64); p !== undefined; p = recvNow(fd, 64)) {
        if (p.length < 28 || p.readUInt16BE(2) !== 0x0800 || p[4] !== 6 || p[5] !== 4) continue;
        const sender = p.subarray(8, 14);
        if (sender.equals(own)) continue; // our own probe, seen going out
        const senderIp = p.subarray(14, 18);
        const targetIp = p.subarray(24, 28);
        const probing = senderIp.readUInt32BE() === 0 && targetIp.equals(target) && p.readUInt16BE(6) === 1;
        if (senderIp.equals(target) || probing) return macText(sender);
      }
      return undefined;
    };
    const count = opts.count ?? 3;
    for (let i = 0; i < count; i++) {
      sendto(fd, probe, to, `ARP probe for ${ip} on ${link.name}`);
      const until = Date.now() + (i === count - 1 ? (opts.waitMs ?? 500) : (opts.intervalMs ?? 200));
      while (Date.now() < until) {
        const who = claimant();
        if (who !== undefined) return who;
        await sleep(10);
      }
    }
    return claimant();
  } finally {
    closeFd(fd);
  }
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
  if (parseIp(ip).family !== 4) throw new NetplumbError(`gratuitous ARP is IPv4 only (${ip})`, { code: ERR.INVALID_ADDRESS, op: 'garp', object: ip });
  const link = await getLink(h, spec.link);
  if (!link.mac) throw new NetplumbError(`link ${link.name} has no MAC address`, { code: ERR.INVALID_ARG_VALUE, op: 'garp', object: link.name });
  const packet = gratuitousArpPacket(link.mac, ip);
  const to = arpAddress(link.index);
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

/**
 * The overlay's data plane on one host, as flannel's VXLAN backend lays it out: a VXLAN device with learning
 * off whose address is the host subnet's network address (`10.244.3.0/32`), and for each other host a route
 * to its subnet via its network address (onlink, through the device), a permanent neighbour entry mapping that
 * address to its VTEP MAC, and an FDB entry sending that MAC to its underlay address. Nothing is flooded and
 * nothing learned: every entry comes from the subnet source. `reconcile` makes the tables match a set of
 * hosts exactly, so it is idempotent and a restarted agent neither doubles nor forgets entries.
 */
import { ERR, NetplumbError } from '../../errors.js';
import { canonicalIp, cidrContains, parseCidr, parseIp, tryParseIp, type Family } from '../../addr/ip.js';
import { addAddress, deleteAddress, listAddresses } from '../../net/addr.js';
import { deleteFdbEntry, listFdb, replaceFdbEntry } from '../../net/fdb.js';
import type { Handle } from '../../net/handle.js';
import { createLink, findLink, linkIndex, setLinkUp } from '../../net/link.js';
import { deleteNeighbour, listNeighbours, replaceNeighbour } from '../../net/neigh.js';
import { deleteRoute, listRoutes, replaceRoute } from '../../net/route.js';
import { setIpForwardSync } from '../../net/sysctl.js';
import { nthAddress, type OverlayConfig } from './config.js';
import type { HostRecord } from './subnet-source.js';

/**
 * What VXLAN adds to each packet: outer Ethernet 14, UDP 8, VXLAN 8, and the outer IP header, 20 bytes for
 * IPv4 and 40 for IPv6: 50 and 70. The containers' MTU is the underlay's less this, so that a full-sized
 * container packet travels in one underlay packet, never in fragments of the tunnel packet.
 */
export const VXLAN_OVERHEAD: Record<Family, number> = { 4: 50, 6: 70 };

export interface Underlay {
  linkIndex: number;
  /** the VTEP address, canonical text */
  address: string;
  family: Family;
  mtu: number;
}

/**
 * The underlay link and address: by address (IPv4 or IPv6), or by interface name: its first global IPv4
 * address, else its first global IPv6 address (a host whose underlay is IPv6 only). Link-local and tentative
 * addresses are never the VTEP: other hosts could not reach them, or not yet.
 */
export async function findUnderlay(h: Handle, underlay: string): Promise<Underlay> {
  const wanted = canonicalIp(underlay);
  const addrs = (await listAddresses(h)).filter((a) => !a.tentative && !a.dadfailed);
  const byAddress = wanted === undefined ? undefined : addrs.find((a) => a.address === wanted);
  const link = byAddress ? await findLink(h, byAddress.linkIndex) : wanted === undefined ? await findLink(h, underlay) : undefined;
  if (!link)
    throw new NetplumbError(`overlay: underlay ${underlay} is neither an interface nor an address of this host`, {
      code: ERR.NOT_FOUND,
      op: 'overlay',
      object: underlay,
    });
  const global = (family: Family) => addrs.find((a) => a.linkIndex === link.index && a.family === family && a.scope === 'universe');
  const chosen = byAddress ?? global(4) ?? global(6);
  if (!chosen)
    throw new NetplumbError(`overlay: underlay interface ${underlay} has no global IPv4 or IPv6 address`, {
      code: ERR.INVALID_ARG_VALUE,
      op: 'overlay',
      object: underlay,
    });
  return { linkIndex: link.index, address: chosen.address, family: chosen.family, mtu: link.mtu };
}

/**
 * Creates (or keeps) the VXLAN device, up, with MTU = underlay − 50 (IPv4 underlay) or − 70 (IPv6): its local
 * address is the underlay's, so the kernel sends every tunnel packet from it, over IPv6 when it is IPv6.
 * Resolves its MAC and MTU.
 */
export async function ensureVxlan(h: Handle, cfg: OverlayConfig, u: Underlay): Promise<{ mac: string; mtu: number }> {
  const mtu = u.mtu - VXLAN_OVERHEAD[u.family];
  let dev = await findLink(h, cfg.device);
  if (dev && (dev.kind !== 'vxlan' || dev.vxlan.vni !== cfg.vni || dev.vxlan.local !== u.address)) {
    throw new NetplumbError(`overlay: ${cfg.device} exists and is not the VXLAN device of VNI ${cfg.vni} on ${u.address}`, {
      code: ERR.IN_USE,
      op: 'overlay',
      object: cfg.device,
    });
  }
  dev ??= await createLink(h, {
    kind: 'vxlan',
    name: cfg.device,
    vni: cfg.vni,
    port: cfg.port,
    local: u.address,
    parent: u.linkIndex,
    learning: false,
    mtu,
    // the kernel picks the source port by flow hash within this range, so the underlay can spread flows
  });
  await setLinkUp(h, cfg.device);
  // routing between the containers' bridge and the tunnel
  setIpForwardSync(h, true);
  return { mac: dev.mac!, mtu };
}

/** Gives the VXLAN device its subnet's network address (`/32`), removing an old subnet's. */
export async function setDeviceSubnet(h: Handle, cfg: OverlayConfig, subnet: string): Promise<void> {
  const want = nthAddress(subnet, 0);
  const have = await listAddresses(h, { link: cfg.device, family: 4 });
  for (const a of have) if (a.address !== want) await deleteAddress(h, { link: a.linkIndex, cidr: a.cidr }).catch(ignoreGone);
  if (!have.some((a) => a.address === want)) await addAddress(h, { link: cfg.device, cidr: `${want}/32` });
}

/**
 * Splits `peers` into those this host can tunnel to, whose VTEP is an address of the underlay's `family`, and
 * the others. A VXLAN device sends over one family only: a host of the other family (every host of an
 * overlay must use the same) is left out rather than given entries that could never carry a packet, and the
 * other hosts are programmed as usual.
 */
export function peersOfFamily(peers: readonly HostRecord[], family: Family): { reachable: HostRecord[]; unreachable: HostRecord[] } {
  const reachable: HostRecord[] = [];
  const unreachable: HostRecord[] = [];
  for (const p of peers) (tryParseIp(p.vtepIp)?.family === family ? reachable : unreachable).push(p);
  return { reachable, unreachable };
}

/** Makes the routes, neighbours and FDB entries of the VXLAN device match `peers` exactly. */
export async function reconcile(h: Handle, cfg: OverlayConfig, peers: readonly HostRecord[]): Promise<{ added: number; removed: number }> {
  const dev = await linkIndex(h, cfg.device);
  const network = parseCidr(cfg.network, 'overlay network');
  const inNetwork = (ip: string) => cidrContains(network, parseIp(ip));
  const wantRoutes = new Set(peers.map((p) => p.subnet));
  const wantNeigh = new Map(peers.map((p) => [nthAddress(p.subnet, 0), p.vtepMac]));
  const wantFdb = new Map(peers.map((p) => [p.vtepMac, p.vtepIp]));
  let added = 0;
  let removed = 0;

  // what is there that should not be: another host's entries after it left
  for (const r of await listRoutes(h, { family: 4 })) {
    if (r.linkIndex === dev && r.dst !== 'default' && inNetwork(r.dst.split('/')[0]!) && r.gateway !== undefined && !wantRoutes.has(r.dst)) {
      await deleteRoute(h, { dst: r.dst, link: dev, gateway: r.gateway }).catch(ignoreGone);
      removed++;
    }
  }
  for (const n of await listNeighbours(h, { link: dev, family: 4 })) {
    if (wantNeigh.get(n.address) !== n.lladdr) {
      await deleteNeighbour(h, { link: dev, address: n.address }).catch(ignoreGone);
      removed++;
    }
  }
  for (const f of await listFdb(h, { link: dev })) {
    if (f.dst !== undefined && wantFdb.get(f.mac) !== f.dst) {
      await deleteFdbEntry(h, { link: dev, mac: f.mac, dst: f.dst }).catch(ignoreGone);
      removed++;
    }
  }
  // what should be there: replace is idempotent, so a restart changes nothing that is right
  const haveFdb = new Map((await listFdb(h, { link: dev })).map((f) => [f.mac, f.dst]));
  const haveNeigh = new Map((await listNeighbours(h, { link: dev, family: 4 })).map((n) => [n.address, n.lladdr]));
  const haveRoutes = new Set((await listRoutes(h, { family: 4 })).filter((r) => r.linkIndex === dev).map((r) => r.dst));
  for (const p of peers) {
    const gw = nthAddress(p.subnet, 0);
    if (haveFdb.get(p.vtepMac) !== p.vtepIp) {
      await replaceFdbEntry(h, { link: dev, mac: p.vtepMac, dst: p.vtepIp });
      added++;
    }
    if (haveNeigh.get(gw) !== p.vtepMac) {
      await replaceNeighbour(h, { link: dev, address: gw, lladdr: p.vtepMac });
      added++;
    }
    if (!haveRoutes.has(p.subnet)) {
      await replaceRoute(h, { dst: p.subnet, gateway: gw, link: dev, onlink: true });
      added++;
    }
  }
  return { added, removed };
}

function ignoreGone(e: unknown): void {
  const code = (e as { code?: string }).code;
  if (code !== 'ENOENT' && code !== 'ESRCH' && code !== 'EADDRNOTAVAIL') throw e;
}

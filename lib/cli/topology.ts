/**
 * The topology `netplumb show` draws: namespaces (the caller's own as the host, named ones in /run/netns, the
 * targets attached to defined networks, and any given), their links by kind, bridges with their ports, veth
 * pairs joined across namespaces, addresses, default routes and published ports. Read with lib/net (one
 * handle per namespace), and the endpoints' records of lib/networks.
 */
import { statSync } from 'node:fs';
import { listAddresses } from '../net/addr.js';
import { openHandleSync } from '../net/handle.js';
import { listLinks, type Link } from '../net/link.js';
import { listNamedNetnsSync } from '../net/ns.js';
import { listRoutes } from '../net/route.js';
import { isLive, listEndpoints, listNetworks, parseTarget, resolveTarget } from '../networks/index.js';

export interface TopoLink {
  index: number;
  name: string;
  /** `veth`, `bridge`, `macvlan`, `vxlan`, …, `loopback` or `device` */
  kind: string;
  up: boolean;
  mac?: string;
  /** the bridge this link is a port of */
  master?: string;
  addresses: string[];
  /** the other end of a veth: its namespace's id and its name */
  peer?: { ns: string; name: string };
}

export interface TopoNamespace {
  /** `ns-` + the namespace's inode in hex */
  id: string;
  /** `host`, a /run/netns name, an endpoint's name or target */
  label: string;
  kind: 'host' | 'named' | 'endpoint' | 'given';
  path: string;
  links: TopoLink[];
  /** `default via GW dev IF` */
  defaultRoutes: string[];
  /** `HOST->CONTAINER/proto` published to this namespace */
  published: string[];
  /** networks it is attached to */
  networks: string[];
}

export interface Topology {
  namespaces: TopoNamespace[];
}

const kindOf = (l: Link) => l.infoKind ?? (l.name === 'lo' ? 'loopback' : 'device');

/** Reads the namespaces (all known ones, or the host and `given`: PIDs, paths or names) and joins the veth pairs. */
export async function readTopology(given: readonly string[] = []): Promise<Topology> {
  const seen = new Map<number, TopoNamespace>();
  const add = (path: string, label: string, kind: TopoNamespace['kind']) => {
    let ino: number;
    try {
      ino = statSync(path).ino;
    } catch {
      return undefined;
    }
    const old = seen.get(ino);
    if (old) {
      if (old.kind === 'named' && kind === 'endpoint') old.label = `${old.label} (${label})`;
      return old;
    }
    const ns: TopoNamespace = { id: `ns-${ino.toString(16)}`, label, kind, path, links: [], defaultRoutes: [], published: [], networks: [] };
    seen.set(ino, ns);
    return ns;
  };
  add('/proc/self/ns/net', 'host', 'host');
  if (given.length > 0) {
    for (const g of given) {
      const t = resolveTarget(parseTarget(g));
      add(t.netns, t.name ?? g, 'given');
    }
  } else {
    for (const n of listNamedNetnsSync()) if (n.alive) add(n.path, n.name, 'named');
  }
  for (const net of safeNetworks()) {
    for (const e of listEndpoints(net.name).filter(isLive)) {
      const ns = given.length > 0 ? [...seen.values()].find((x) => statSync(x.path).ino === e.netnsInode) : add(e.netns, e.name ?? e.target, 'endpoint');
      if (!ns) continue;
      ns.networks.push(net.name);
      ns.published.push(...e.publish.map((p) => `${p.hostIP ? `${p.hostIP}:` : ''}${p.hostPort}->${p.containerPort}/${p.protocol}`));
    }
  }
  const raw = new Map<string, Link[]>();
  for (const ns of seen.values()) {
    const h = openHandleSync(ns.kind === 'host' ? undefined : { path: ns.path });
    try {
      const links = await listLinks(h);
      const addrs = await listAddresses(h);
      const byIndex = new Map(links.map((l) => [l.index, l]));
      raw.set(ns.id, links);
      ns.links = links.map((l) => ({
        index: l.index,
        name: l.name,
        kind: kindOf(l),
        up: l.up,
        ...(l.mac ? { mac: l.mac } : {}),
        ...(l.masterIndex !== undefined && byIndex.get(l.masterIndex) ? { master: byIndex.get(l.masterIndex)!.name } : {}),
        addresses: addrs.filter((a) => a.linkIndex === l.index).map((a) => a.cidr),
      }));
      for (const family of [4, 6] as const) {
        for (const r of await listRoutes(h, { family })) {
          if (r.dst !== 'default') continue;
          const dev = r.linkIndex === undefined ? undefined : byIndex.get(r.linkIndex)?.name;
          ns.defaultRoutes.push(`default${r.gateway ? ` via ${r.gateway}` : ''}${dev ? ` dev ${dev}` : ''}`);
        }
      }
    } finally {
      h.close();
    }
  }
  // veth pairs: each end names the other's index (IFLA_LINK); the pair is the one whose ends name each other
  const all = [...seen.values()];
  for (const ns of all) {
    for (const l of ns.links) {
      if (l.kind !== 'veth' || l.peer) continue;
      const mine = raw.get(ns.id)!.find((x) => x.index === l.index)!;
      if (mine.linkIndex === undefined) continue;
      const candidates = mine.linkNetnsId === undefined ? [ns] : all.filter((o) => o !== ns);
      for (const o of candidates) {
        const p = raw.get(o.id)!.find((x) => x.index === mine.linkIndex && kindOf(x) === 'veth' && x.linkIndex === mine.index);
        if (!p) continue;
        l.peer = { ns: o.id, name: p.name };
        const back = o.links.find((x) => x.index === p.index);
        if (back) back.peer = { ns: ns.id, name: l.name };
        break;
      }
    }
  }
  return { namespaces: all };
}

function safeNetworks() {
  try {
    return listNetworks();
  } catch {
    return []; // the state is root's: show what the kernel says
  }
}

/** A tree for the terminal. */
export function renderTree(t: Topology): string {
  const out: string[] = [];
  const label = (id: string) => t.namespaces.find((n) => n.id === id)?.label ?? id;
  for (const ns of t.namespaces) {
    out.push(`${ns.label} [${ns.kind} ${ns.id}]${ns.networks.length ? ` networks: ${ns.networks.join(', ')}` : ''}`);
    const tops = ns.links.filter((l) => !l.master);
    tops.forEach((l, i) => {
      const last = i === tops.length - 1 && ns.defaultRoutes.length === 0 && ns.published.length === 0;
      out.push(`${last ? '└─' : '├─'} ${describe(l, label)}`);
      const ports = ns.links.filter((p) => p.master === l.name);
      ports.forEach((p, j) => out.push(`${last ? '   ' : '│  '}${j === ports.length - 1 ? '└─' : '├─'} port ${describe(p, label)}`));
    });
    const extra = [...ns.defaultRoutes.map((r) => `route ${r}`), ...ns.published.map((p) => `publish ${p}`)];
    extra.forEach((x, i) => out.push(`${i === extra.length - 1 ? '└─' : '├─'} ${x}`));
  }
  return `${out.join('\n')}\n`;
}

function describe(l: TopoLink, label: (id: string) => string): string {
  return [`${l.name} (${l.kind}${l.up ? '' : ', down'})`, l.addresses.join(' '), l.peer ? `<-> ${l.peer.name} in ${label(l.peer.ns)}` : '']
    .filter(Boolean)
    .join(' ');
}

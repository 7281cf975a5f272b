/**
 * A namespace's network as the pieces of a CNI Result: what netplumb-host reports about the host and
 * netplumb-container about the container it joined.
 * See docs/MODES.md for the rest.
 */
import type { CniInterface, CniIpConfig, CniRoute } from '../cni/types.js';
import { cidrContains, tryParseCidr, tryParseIp } from '../addr/ip.js';
import { listAddresses } from '../net/addr.js';
import type { Handle } from '../net/handle.js';
import { listLinks } from '../net/link.js';
import { listRoutes } from '../net/route.js';

export interface NamespaceDescription {
  interfaces: CniInterface[];
  ips: CniIpConfig[];
  routes: CniRoute[];
}

/**
 * The network of the namespace behind `h`, as a Result reports it: every link but loopback (by index), each
 * address of global or site scope that is usable (not tentative, not failed DAD) with the gateway of a
 * default route through the same link when that gateway lies in the address's subnet, and the default routes
 * of the main table. `sandbox` goes into every interface (the container's CNI_NETNS).
 */
export async function describeNamespace(h: Handle, sandbox: string): Promise<NamespaceDescription> {
  const links = (await listLinks(h)).filter((l) => l.kind !== 'loopback').sort((a, b) => a.index - b.index);
  const addrs = await listAddresses(h);
  const defaults = (await listRoutes(h, { table: 'main' })).filter((r) => r.dst === 'default' && r.type === 'unicast');
  const interfaces: CniInterface[] = links.map((l) => ({
    name: l.name,
    ...(l.mac !== undefined ? { mac: l.mac } : {}),
    mtu: l.mtu,
    sandbox,
  }));
  const position = new Map(links.map((l, i) => [l.index, i]));
  const ips: CniIpConfig[] = [];
  for (const a of addrs) {
    const i = position.get(a.linkIndex);
    if (i === undefined || (a.scope !== 'universe' && a.scope !== 'site') || a.tentative || a.dadfailed) continue;
    const net = tryParseCidr(a.cidr);
    const gw = defaults.find((r) => {
      if (r.family !== a.family || r.gateway === undefined || r.linkIndex !== a.linkIndex || !net) return false;
      const ip = tryParseIp(r.gateway);
      return ip !== undefined && cidrContains(net, ip);
    })?.gateway;
    ips.push({ address: a.cidr, ...(gw !== undefined ? { gateway: gw } : {}), interface: i });
  }
  const routes: CniRoute[] = [];
  const seen = new Set<string>();
  for (const r of defaults) {
    const gw = r.gateway ?? r.multipath?.find((n) => n.gateway !== undefined)?.gateway;
    if (gw === undefined) continue;
    const dst = r.family === 4 ? '0.0.0.0/0' : '::/0';
    if (seen.has(`${dst} ${gw}`)) continue;
    seen.add(`${dst} ${gw}`);
    routes.push({ dst, gw });
  }
  return { interfaces, ips, routes };
}

/**
 * An interface configured from a Result's addresses and routes, as containernetworking's
 * `ipam.ConfigureIface` does: the CNI model on one side, lib/net's verbs on the other. Loads netlink (through
 * lib/net): import it only on the paths that configure an interface (lib/cni/index.ts does not re-export it).
 */
import { tryParseCidr } from '../addr/ip.js';
import { addAddress, waitForAddressesSettled } from '../net/addr.js';
import type { Handle } from '../net/handle.js';
import { setLink } from '../net/link.js';
import { appendRoute, type RouteSpec } from '../net/route.js';
import { invalidConfig } from './errors.js';
import type { CniIpConfig, CniRoute } from './types.js';

/** The first gateway of each family among `ips`: where a route without `gw` goes (the reference's rule). */
export function defaultGateways(ips: readonly CniIpConfig[]): { 4?: string; 6?: string } {
  const gw: { 4?: string; 6?: string } = {};
  for (const ip of ips) {
    const family = tryParseCidr(ip.address)?.family;
    if (ip.gateway !== undefined && family !== undefined) gw[family] ??= ip.gateway;
  }
  return gw;
}

/** A Result's route as lib/net's route on link `dev`: prefix length 0 is `default`, a missing `gw` the family's gateway. */
function routeSpecOf(r: CniRoute, dev: number, gateways: { 4?: string; 6?: string }): RouteSpec {
  const c = tryParseCidr(r.dst);
  if (c === undefined) throw invalidConfig(`route destination ${JSON.stringify(r.dst)} is not a prefix`, 'routes');
  const gateway = r.gw ?? gateways[c.family];
  const spec: RouteSpec = { dst: c.prefix === 0 ? 'default' : r.dst, family: c.family, link: dev };
  if (gateway !== undefined) spec.gateway = gateway;
  if (r.priority !== undefined) spec.metric = r.priority;
  if (r.table !== undefined) spec.table = r.table;
  if (r.scope !== undefined) spec.scope = r.scope;
  return spec;
}

export interface ConfigureIfaceOptions {
  /** bring the link up (default true) */
  up?: boolean;
  /** wait for IPv6 duplicate address detection to finish (when DAD is on for the link), at most this long */
  settleTimeoutMs?: number;
}

/**
 * Configures link `index` in the namespace of `h`: up, then every address of `ips` (in one batch), then, if
 * asked, waits for DAD, then appends every route (routes that come out identical go in once; appended, so a
 * second interface on the same network gets its own default route). `ip link set up; ip addr add …; ip route
 * append …`.
 */
export async function configureIface(
  h: Handle,
  index: number,
  result: { ips: readonly CniIpConfig[]; routes: readonly CniRoute[] },
  opts: ConfigureIfaceOptions = {},
): Promise<void> {
  await Promise.all([
    ...(opts.up === false ? [] : [setLink(h, index, { up: true })]),
    ...result.ips.map((ip) => addAddress(h, { link: index, cidr: ip.address })),
  ]);
  if (opts.settleTimeoutMs !== undefined && result.ips.some((ip) => tryParseCidr(ip.address)?.family === 6)) {
    await waitForAddressesSettled(h, index, { timeoutMs: opts.settleTimeoutMs });
  }
  const gateways = defaultGateways(result.ips);
  const specs = new Map(result.routes.map((r) => routeSpecOf(r, index, gateways)).map((r) => [JSON.stringify(r), r]));
  await Promise.all([...specs.values()].map((r) => appendRoute(h, r)));
}

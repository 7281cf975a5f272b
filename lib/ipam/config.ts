/**
 * host-local's configuration: the whole network configuration comes in (IPAM plugins see their caller's
 * config), the `ipam` object holds `ranges` (list of range sets) and/or the legacy single range at top
 * level, `routes`, `dataDir`, `resolvConf`; `runtimeConfig.ipRanges` (capability) adds range sets in
 * front; requested addresses come from `CNI_ARGS` `IP=`, `args.cni.ips` and `runtimeConfig.ips`.
 *
 * Defaults are host-local's. Validation is host-local's plus what it forgets (a gateway outside its
 * subnet, rangeStart after rangeEnd, the IPv4 network or broadcast address as a bound, relative dataDir).
 * See docs/CNI.md for the rest.
 */
import { configError } from './errors.js';
import { BITS, cidrContains, formatIp, lastOf, tryParseCidr, tryParseIp, type Family, type Ip } from '../addr/ip.js';
import { defaultWindow, ipOf, rangeSetsOverlap, rangesOverlap, rangeText, subnetText, type Range, type RangeSet } from './range.js';

export const DEFAULT_DATA_DIR = '/var/lib/cni/networks';

/** A route as CNI 1.1 defines it (host-local passes `ipam.routes` through to the result). */
export interface IpamRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface IpamConfig {
  /** the network name: the store directory's name */
  name: string;
  cniVersion: string;
  type: string;
  dataDir: string;
  resolvConf: string | undefined;
  routes: IpamRoute[];
  rangeSets: RangeSet[];
  /** requested addresses, each to be taken from the range set that contains it */
  requestedIps: Ip[];
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optString(o: Json, key: string, where: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw configError(`${where}${key} must be a string, not ${JSON.stringify(v)}`, key);
  return v;
}

function parseAddr(text: string, what: string, r: { family: Family; subnet: Range['subnet'] }): bigint {
  const ip = tryParseIp(text);
  if (ip === undefined) throw configError(`${what} ${JSON.stringify(text)} is not an IP address`, what);
  const net = subnetText(r);
  if (ip.family !== r.family) throw configError(`${what} ${text} is not the same protocol as subnet ${net}`, what);
  if (!cidrContains(r.subnet, ip)) {
    throw configError(`${what} ${formatIp(ip)} not in network ${net}`, what);
  }
  if (r.family === 4 && (ip.value === r.subnet.network || ip.value === lastOf(r.subnet))) {
    const which = ip.value === r.subnet.network ? 'network' : 'broadcast';
    throw configError(`${what} ${formatIp(ip)} is the ${which} address of ${net}`, what);
  }
  return ip.value;
}

/** One range object → a canonical Range with host-local's defaults filled in. */
export function parseRange(raw: unknown, where = ''): Range {
  if (!isObject(raw)) throw configError(`${where}a range must be an object, not ${JSON.stringify(raw)}`);
  const subnetText_ = optString(raw, 'subnet', where);
  if (subnetText_ === undefined) throw configError(`${where}range has no subnet`, 'subnet');
  const subnet = tryParseCidr(subnetText_);
  if (subnet === undefined) throw configError(`${where}invalid CIDR address: ${subnetText_}`, 'subnet');
  const family = subnet.family;
  if (subnet.ip !== subnet.network) {
    throw configError(
      `${where}network ${subnetText_} has host bits set: for a prefix of length ${subnet.prefix} the network ` +
        `address is ${formatIp(ipOf(family, subnet.network))}`,
      'subnet',
    );
  }
  if (subnet.prefix > BITS[family] - 2) {
    throw configError(`${where}network ${subnetText_} too small to allocate from`, 'subnet');
  }
  const r0 = { family, subnet };
  const gwText = optString(raw, 'gateway', where);
  const startText = optString(raw, 'rangeStart', where);
  const endText = optString(raw, 'rangeEnd', where);
  const window = defaultWindow(subnet);
  const gateway = gwText === undefined ? subnet.network + 1n : parseAddr(gwText, `${where}gateway`, r0);
  const rangeStart = startText === undefined ? window.start : parseAddr(startText, `${where}rangeStart`, r0);
  const rangeEnd = endText === undefined ? window.end : parseAddr(endText, `${where}rangeEnd`, r0);
  if (rangeStart > rangeEnd) {
    throw configError(`${where}rangeStart ${formatIp(ipOf(family, rangeStart))} is after rangeEnd ${formatIp(ipOf(family, rangeEnd))}`, 'rangeStart');
  }
  return { family, subnet, rangeStart, rangeEnd, gateway };
}

/** A list of range objects → a RangeSet: not empty, one family, no two ranges overlapping. */
export function parseRangeSet(raw: unknown, index: number): RangeSet {
  const where = `invalid range set ${index}: `;
  if (!Array.isArray(raw)) throw configError(`${where}a range set must be a list of ranges, not ${JSON.stringify(raw)}`);
  if (raw.length === 0) throw configError(`${where}empty range set`);
  const set = raw.map((r) => parseRange(r, where));
  if (set.some((r) => r.family !== set[0]!.family)) throw configError(`${where}mixed address families`);
  for (let i = 0; i < set.length; i++) {
    for (let j = i + 1; j < set.length; j++) {
      if (rangesOverlap(set[i]!, set[j]!)) {
        throw configError(`${where}subnets ${rangeText(set[i]!)} and ${rangeText(set[j]!)} overlap`);
      }
    }
  }
  return set;
}

function parseRoutes(raw: unknown): IpamRoute[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw configError(`ipam.routes must be a list, not ${JSON.stringify(raw)}`, 'routes');
  return raw.map((r, i) => {
    const where = `invalid route ${i}: `;
    if (!isObject(r)) throw configError(`${where}a route must be an object, not ${JSON.stringify(r)}`, 'routes');
    const dst = optString(r, 'dst', where);
    const cidr = dst === undefined ? undefined : tryParseCidr(dst);
    if (cidr === undefined) throw configError(`${where}dst must be a CIDR address, not ${JSON.stringify(r.dst)}`, 'routes');
    const out: IpamRoute = { dst: dst! };
    const gw = optString(r, 'gw', where);
    if (gw !== undefined) {
      const ip = tryParseIp(gw);
      if (ip === undefined) throw configError(`${where}gw ${JSON.stringify(gw)} is not an IP address`, 'routes');
      if (ip.family !== cidr.family) throw configError(`${where}gw ${gw} is not of the family of dst ${dst}`, 'routes');
      out.gw = gw;
    }
    for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
      const v = r[k];
      if (v === undefined || v === null) continue;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
        throw configError(`${where}${k} must be a non-negative integer, not ${JSON.stringify(v)}`, 'routes');
      }
      out[k] = v;
    }
    return out;
  });
}

function parseRequested(text: unknown, from: string, allowPrefix: boolean): Ip {
  if (typeof text === 'string') {
    const ip = tryParseIp(text);
    if (ip !== undefined) return ip;
    if (allowPrefix) {
      const c = tryParseCidr(text);
      if (c !== undefined) return ipOf(c.family, c.ip);
    }
  }
  throw configError(`cannot understand ip ${JSON.stringify(text)} in ${from}`, from);
}

export interface ParseOptions {
  /** the value of `IP=` in CNI_ARGS, if any */
  envIp?: string | undefined;
}

/**
 * Parses and validates host-local's configuration from the complete network configuration object.
 * Throws IpamError `ERR_IPAM_CONFIG` with host-local's wording where it has one.
 */
export function parseIpamConfig(netconf: unknown, opts: ParseOptions = {}): IpamConfig {
  if (!isObject(netconf)) throw configError('network configuration must be a JSON object');
  const ipam = netconf.ipam;
  if (ipam === undefined || ipam === null) throw configError("IPAM config missing 'ipam' key", 'ipam');
  if (!isObject(ipam)) throw configError(`ipam must be an object, not ${JSON.stringify(ipam)}`, 'ipam');
  const name = netconf.name;
  if (typeof name !== 'string' || name === '') throw configError('missing network name', 'name');
  const cniVersion = typeof netconf.cniVersion === 'string' ? netconf.cniVersion : '';
  const type = typeof ipam.type === 'string' ? ipam.type : '';

  const requested: Ip[] = [];
  if (opts.envIp !== undefined && opts.envIp !== '') requested.push(parseRequested(opts.envIp, 'CNI_ARGS IP', false));
  const args = netconf.args;
  if (isObject(args) && isObject(args.cni) && args.cni.ips !== undefined && args.cni.ips !== null) {
    if (!Array.isArray(args.cni.ips)) throw configError('args.cni.ips must be a list of addresses', 'args.cni.ips');
    for (const t of args.cni.ips) requested.push(parseRequested(t, 'args.cni.ips', false));
  }
  const rc = isObject(netconf.runtimeConfig) ? netconf.runtimeConfig : {};
  if (rc.ips !== undefined && rc.ips !== null) {
    if (!Array.isArray(rc.ips)) throw configError('runtimeConfig.ips must be a list of addresses', 'runtimeConfig.ips');
    for (const t of rc.ips) requested.push(parseRequested(t, 'runtimeConfig.ips', true));
  }

  const rawSets: unknown[] = [];
  if (rc.ipRanges !== undefined && rc.ipRanges !== null) {
    if (!Array.isArray(rc.ipRanges)) throw configError('runtimeConfig.ipRanges must be a list of range sets', 'ipRanges');
    rawSets.push(...rc.ipRanges);
  }
  if (ipam.subnet !== undefined && ipam.subnet !== null && ipam.subnet !== '') {
    rawSets.push([{ subnet: ipam.subnet, rangeStart: ipam.rangeStart, rangeEnd: ipam.rangeEnd, gateway: ipam.gateway }]);
  }
  if (ipam.ranges !== undefined && ipam.ranges !== null) {
    if (!Array.isArray(ipam.ranges)) throw configError('ipam.ranges must be a list of range sets', 'ranges');
    rawSets.push(...ipam.ranges);
  }
  if (rawSets.length === 0) throw configError('no IP ranges specified', 'ranges');
  const rangeSets = rawSets.map((s, i) => parseRangeSet(s, i));
  for (let i = 0; i < rangeSets.length; i++) {
    for (let j = i + 1; j < rangeSets.length; j++) {
      if (rangeSetsOverlap(rangeSets[i]!, rangeSets[j]!)) throw configError(`range set ${i} overlaps with ${j}`, 'ranges');
    }
  }

  const dataDir = optString(ipam, 'dataDir', 'ipam.') ?? DEFAULT_DATA_DIR;
  if (!dataDir.startsWith('/') || dataDir.includes('\0')) {
    throw configError(`ipam.dataDir must be an absolute path, not ${JSON.stringify(dataDir)}`, 'dataDir');
  }
  return {
    name,
    cniVersion,
    type,
    dataDir,
    resolvConf: optString(ipam, 'resolvConf', 'ipam.'),
    routes: parseRoutes(ipam.routes),
    rangeSets,
    requestedIps: requested,
  };
}

/**
 * An overlay network's configuration (a JSON file given to `netplumbd --overlay FILE`): the cluster network,
 * the subnet size per host, the VNI, etcd (endpoints and TLS files), the underlay. Parsing has no side effects
 * and reads no file; every error names the key.
 * docs/OVERLAY.md.
 */
import { hostname } from 'node:os';
import { BITS, formatCidr, parseCidr, tryParseIp } from '../../addr/ip.js';
import { ERR, NetplumbError } from '../../errors.js';
import { ifnameProblem, isValidNetworkName } from '../../names.js';
import { ETCD_ENDPOINT } from './etcd.js';
import type { EtcdTlsFiles } from './etcd-tls.js';

export interface OverlayConfig {
  /** the overlay's name: etcd keys, the state file, the CNI network */
  name: string;
  /** the cluster network, `10.244.0.0/16` */
  network: string;
  /** the prefix length of each host's subnet, 24 */
  subnetPrefix: number;
  vni: number;
  /** the VXLAN UDP port (default 4789) */
  port: number;
  /** etcd: endpoints, key prefix, and for https the TLS files (etcd-tls.ts) */
  etcd: { endpoints: string[]; prefix: string } & EtcdTlsFiles;
  /** the underlay: an interface name or one of the host's addresses (IPv4 or IPv6) */
  underlay: string;
  /** this host's name in etcd (default the hostname) */
  node: string;
  /** the lease's time to live in seconds (default 10) */
  ttlSeconds: number;
  /** the VXLAN device (default `np-vx<vni>`) */
  device: string;
  /** the bridge containers attach to (default `np-ovl<vni>`) */
  bridge: string;
  /** where the agent writes what it leased (default /run/netplumb/overlay) */
  stateDir: string;
}

const bad = (key: string, why: string) =>
  new NetplumbError(`overlay config: ${key} ${why}`, { code: ERR.INVALID_ARG_VALUE, op: 'parseOverlayConfig', object: key });

/** Reads and checks an overlay configuration object. */
export function parseOverlayConfig(raw: unknown): OverlayConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('(top level)', 'must be an object');
  const o = raw as Record<string, unknown>;
  const name = o.name;
  if (typeof name !== 'string' || !isValidNetworkName(name)) throw bad('name', 'must be a valid network name');
  if (typeof o.network !== 'string') throw bad('network', 'must be a prefix such as 10.244.0.0/16');
  const net = parseCidr(o.network, 'overlay network');
  if (net.family !== 4) throw bad('network', 'must be IPv4');
  const int = (key: string, dflt: number, min: number, max: number, range: string): number => {
    const v = o[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(key, `must be ${range}`);
    return v;
  };
  const subnetPrefix = int('subnetPrefix', 24, net.prefix + 1, BITS[4] - 2, `an integer longer than the network's /${net.prefix} and at most /30`);
  const vni = int('vni', 1, 1, 0xffffff, '1..16777215');
  const port = int('port', 4789, 1, 65535, '1..65535');
  const etcd = (typeof o.etcd === 'object' && o.etcd !== null ? o.etcd : {}) as Record<string, unknown>;
  const endpoints = etcd.endpoints;
  if (!Array.isArray(endpoints) || endpoints.length === 0 || !endpoints.every((e): e is string => typeof e === 'string' && ETCD_ENDPOINT.test(e))) {
    throw bad('etcd.endpoints', 'must be a non-empty list of http(s)://HOST:PORT');
  }
  const prefix = etcd.prefix ?? `/netplumb/overlay/${name}/`;
  if (typeof prefix !== 'string' || !prefix.startsWith('/')) throw bad('etcd.prefix', 'must start with /');
  // the files themselves are read where the client is made (readEtcdTls): here only their names
  const tls: EtcdTlsFiles = {};
  for (const key of ['caFile', 'certFile', 'keyFile'] as const) {
    const v = etcd[key];
    if (v === undefined) continue;
    if (typeof v !== 'string' || !v.startsWith('/') || v.includes('\0')) throw bad(`etcd.${key}`, 'must be an absolute path');
    tls[key] = v;
  }
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    throw bad(tls.certFile === undefined ? 'etcd.certFile' : 'etcd.keyFile', 'must be given with etcd.certFile and etcd.keyFile both');
  }
  if (Object.keys(tls).length && !endpoints.every((e) => e.startsWith('https://'))) {
    throw bad('etcd.endpoints', 'must all be https:// when TLS files are given (else the files would be silently unused)');
  }
  if (typeof o.underlay !== 'string' || (tryParseIp(o.underlay) === undefined && ifnameProblem(o.underlay) !== undefined)) {
    throw bad('underlay', 'must be an interface name or an address of this host');
  }
  const ttlSeconds = int('ttlSeconds', 10, 2, 3600, '2..3600');
  const ifname = (key: string, dflt: string): string => {
    const v = o[key] ?? dflt;
    if (typeof v !== 'string' || ifnameProblem(v) !== undefined) throw bad(key, 'must be a valid interface name');
    return v;
  };
  const device = ifname('device', `np-vx${vni}`);
  const bridge = ifname('bridge', `np-ovl${vni}`);
  const node = o.node ?? hostname();
  if (typeof node !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/.test(node)) throw bad('node', 'must be a host name');
  const stateDir = o.stateDir ?? '/run/netplumb/overlay';
  if (typeof stateDir !== 'string' || !stateDir.startsWith('/')) throw bad('stateDir', 'must be an absolute path');
  return {
    name,
    network: formatCidr({ family: 4, value: net.network }, net.prefix),
    subnetPrefix,
    vni,
    port,
    etcd: { endpoints, prefix: prefix.endsWith('/') ? prefix : `${prefix}/`, ...tls },
    underlay: o.underlay as string,
    node,
    ttlSeconds,
    device,
    bridge,
    stateDir,
  };
}

/** Every subnet of the configured size in the network, in order. */
export function* subnetsOf(c: Pick<OverlayConfig, 'network' | 'subnetPrefix'>): Generator<string> {
  const net = parseCidr(c.network, 'overlay network');
  const count = 1n << BigInt(c.subnetPrefix - net.prefix);
  const step = 1n << BigInt(BITS[4] - c.subnetPrefix);
  for (let i = 0n; i < count; i++) yield formatCidr({ family: 4, value: net.network + i * step }, c.subnetPrefix);
}

/** The n-th address of a subnet (`10.244.3.0/24`, 1 → `10.244.3.1`). */
export function nthAddress(subnet: string, n: number): string {
  const c = parseCidr(subnet, 'subnet');
  return formatCidr({ family: 4, value: c.network + BigInt(n) }, 32).split('/')[0]!;
}

/**
 * The CNI Result. netplumb holds every Result in the 1.1.0 model and converts at the edges, the way libcni
 * does: a Result (or prevResult) of any supported version is parsed into the model, and the answer is
 * printed in the version the configuration asked for.
 *
 *   0.3.0 / 0.3.1 / 0.4.0: ips[] carry `version` ("4"/"6"); interfaces are {name, mac, sandbox}; routes
 *                          {dst, gw}; `dns` is always present (possibly `{}`).
 *   1.0.0 / 1.1.0:         no `version`; interfaces may add mtu, socketPath, pciID; routes may add mtu,
 *                          advmss, priority, table, scope; an empty `dns` is left out.
 * See docs/CNI.md for the rest.
 */
import type { IpamRoute } from '../ipam/config.js';
import { tryParseCidr, tryParseIp } from '../addr/ip.js';
import { CNI_ERR, CniError } from './errors.js';
import { CURRENT_VERSION, isLegacyResultVersion, isSupportedVersion } from './version.js';

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface CniIpConfig {
  /** `address/prefix` */
  address: string;
  gateway?: string;
  /** index into `interfaces` */
  interface?: number;
}

/** A route (CNI 1.1: dst, gw, mtu, advmss, priority, table, scope); lib/ipam's type, which lies below. */
export type CniRoute = IpamRoute;

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** A Result in netplumb's internal model (CNI 1.1.0). IPAM results have no `interfaces`. */
export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIpConfig[];
  routes?: CniRoute[];
  dns?: CniDns;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export interface ParseResultOptions {
  /** the version to assume when the Result carries none (libcni parses prevResult as the config's version) */
  defaultVersion?: string;
  /** the CNI code for a malformed Result (default 7, invalid network config: a bad prevResult) */
  code?: number;
  /** what is being parsed, for messages (default `prevResult`) */
  what?: string;
}

/** Parses a Result of any supported version into the 1.1.0 model; unknown fields are dropped. */
export function parseResult(raw: unknown, opts: ParseResultOptions = {}): CniResult {
  const what = opts.what ?? 'prevResult';
  const code = opts.code ?? CNI_ERR.INVALID_NETWORK_CONFIG;
  const bad = (msg: string) => new CniError(code, `invalid ${what}: ${msg}`, { object: what });
  if (!isObject(raw)) throw bad(`not a JSON object: ${JSON.stringify(raw)?.slice(0, 100)}`);
  const version = raw.cniVersion === undefined || raw.cniVersion === '' ? opts.defaultVersion : raw.cniVersion;
  if (!isSupportedVersion(version)) {
    throw new CniError(CNI_ERR.INCOMPATIBLE_VERSION, `${what} has unsupported cniVersion ${JSON.stringify(version)}`, { object: what });
  }
  const str = (o: Json, k: string, where: string, required = false): string | undefined => {
    const v = o[k];
    if (v === undefined || v === null || (v === '' && !required)) {
      if (required) throw bad(`${where}.${k} is missing`);
      return undefined;
    }
    if (typeof v !== 'string') throw bad(`${where}.${k} must be a string, not ${JSON.stringify(v)}`);
    return v;
  };
  const int = (o: Json, k: string, where: string): number | undefined => {
    const v = o[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw bad(`${where}.${k} must be a non-negative integer, not ${JSON.stringify(v)}`);
    return v;
  };
  const list = (k: string): unknown[] | undefined => {
    const v = raw[k];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) throw bad(`${k} must be a list, not ${JSON.stringify(v)}`);
    return v;
  };
  const obj = (v: unknown, where: string): Json => {
    if (!isObject(v)) throw bad(`${where} must be an object, not ${JSON.stringify(v)}`);
    return v;
  };
  const prefixed = (o: Json, k: string, where: string): string => {
    const v = str(o, k, where, true)!;
    if (!tryParseCidr(v)) throw bad(`${where}.${k} ${JSON.stringify(v)} is not an address with a prefix`);
    return v;
  };
  const address = (o: Json, k: string, where: string): string | undefined => {
    const v = str(o, k, where);
    if (v !== undefined && !tryParseIp(v)) throw bad(`${where}.${k} ${JSON.stringify(v)} is not an IP address`);
    return v;
  };
  const set = <T extends object>(target: T, k: keyof T, v: unknown) => {
    if (v !== undefined) (target as Record<keyof T, unknown>)[k] = v;
  };

  const out: CniResult = { cniVersion: CURRENT_VERSION };
  const ifs = list('interfaces');
  if (ifs) {
    out.interfaces = ifs.map((x, i) => {
      const w = `interfaces[${i}]`;
      const o = obj(x, w);
      const r: CniInterface = { name: str(o, 'name', w, true)! };
      set(r, 'mac', str(o, 'mac', w));
      set(r, 'mtu', int(o, 'mtu', w));
      set(r, 'sandbox', str(o, 'sandbox', w));
      set(r, 'socketPath', str(o, 'socketPath', w));
      set(r, 'pciID', str(o, 'pciID', w));
      return r;
    });
  }
  const ips = list('ips');
  if (ips) {
    out.ips = ips.map((x, i) => {
      const w = `ips[${i}]`;
      const o = obj(x, w);
      const r: CniIpConfig = { address: prefixed(o, 'address', w) };
      set(r, 'gateway', address(o, 'gateway', w));
      const idx = int(o, 'interface', w);
      if (idx !== undefined) {
        if (out.interfaces !== undefined && idx >= out.interfaces.length) throw bad(`${w}.interface ${idx} is not an index of interfaces`);
        r.interface = idx;
      }
      // 0.x `version` is derived from the address on output; reference meta plugins pass "" through.
      return r;
    });
  }
  const routes = list('routes');
  if (routes) {
    out.routes = routes.map((x, i) => {
      const w = `routes[${i}]`;
      const o = obj(x, w);
      const r: CniRoute = { dst: prefixed(o, 'dst', w) };
      set(r, 'gw', address(o, 'gw', w));
      for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) set(r, k, int(o, k, w));
      return r;
    });
  }
  if (raw.dns !== undefined && raw.dns !== null) {
    const d = obj(raw.dns, 'dns');
    const dns: CniDns = {};
    for (const k of ['nameservers', 'search', 'options'] as const) {
      const v = d[k];
      if (v === undefined || v === null) continue;
      if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw bad(`dns.${k} must be a list of strings`);
      if (v.length > 0) dns[k] = [...v];
    }
    set(dns, 'domain', str(d, 'domain', 'dns'));
    if (Object.keys(dns).length > 0) out.dns = dns;
  }
  return out;
}

function dnsJson(dns: CniDns | undefined): Json {
  const d: Json = {};
  if (dns?.nameservers?.length) d.nameservers = [...dns.nameservers];
  if (dns?.domain) d.domain = dns.domain;
  if (dns?.search?.length) d.search = [...dns.search];
  if (dns?.options?.length) d.options = [...dns.options];
  return d;
}

function pick<T extends object>(o: T, keys: readonly (keyof T)[]): Json {
  const r: Json = {};
  for (const k of keys) if (o[k] !== undefined && o[k] !== '') r[k as string] = o[k];
  return r;
}

/**
 * The Result as the JSON object of `version` (fields in libcni's order). Throws CniError 1 for a version
 * netplumb does not speak.
 */
export function convertResult(r: CniResult, version: string): Json {
  if (!isSupportedVersion(version)) {
    throw new CniError(CNI_ERR.INCOMPATIBLE_VERSION, `cannot answer in cniVersion ${JSON.stringify(version)}`);
  }
  const legacy = isLegacyResultVersion(version);
  const out: Json = { cniVersion: version };
  if (r.interfaces?.length) {
    out.interfaces = r.interfaces.map((i) => pick(i, legacy ? ['name', 'mac', 'sandbox'] : ['name', 'mac', 'mtu', 'sandbox', 'socketPath', 'pciID']));
    for (const i of out.interfaces as Json[]) i.name ??= '';
  }
  if (r.ips?.length) {
    out.ips = r.ips.map((ip) => {
      const o: Json = {};
      if (legacy) o.version = tryParseCidr(ip.address)?.family === 6 ? '6' : '4';
      if (ip.interface !== undefined) o.interface = ip.interface;
      o.address = ip.address;
      if (ip.gateway) o.gateway = ip.gateway;
      return o;
    });
  }
  if (r.routes?.length) {
    out.routes = r.routes.map((rt) => pick(rt, legacy ? ['dst', 'gw'] : ['dst', 'gw', 'mtu', 'advmss', 'priority', 'table', 'scope']));
  }
  const dns = dnsJson(r.dns);
  if (legacy || Object.keys(dns).length > 0) out.dns = dns;
  return out;
}

/** The Result printed as the runtime expects it: JSON of `version`, indented like libcni's. */
export function formatResult(r: CniResult, version: string): string {
  return JSON.stringify(convertResult(r, version), null, 4);
}

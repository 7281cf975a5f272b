/**
 * The bridge plugin's configuration: the reference `bridge` plugin's keys with the reference's defaults,
 * netplumb's own keys (`isolate`, `allowBridges`, `icc`), the capabilities it honours (`portMappings`, `mac`),
 * and the names it derives (host veth, alias). Parsing has no side effects: every error is raised before
 * anything is touched.
 *
 * The bridge plugin's error codes (110–114) are in the one registry, CNI_ERR in lib/cni/errors.ts.
 * See docs/BRIDGE.md for the rest.
 */
import { createHash } from 'node:crypto';
import { tryParseIp } from '../addr/ip.js';
import { parseUnicastMac } from '../addr/mac.js';
import { cniArgsValues } from '../cni/env.js';
import type { FieldTable } from '../cni/decode.js';
import { CniError, invalidConfig, unsupportedField } from '../cni/errors.js';
import type { CniRequest } from '../cni/request.js';
import type { CniDns } from '../cni/types.js';
import { ifnameProblem } from '../names.js';

/** Docker's default is `docker0`, the reference's `cni0`; netplumb's own bridge is `netplumb0`. */
export const DEFAULT_BRIDGE = 'netplumb0';

export interface PortMappingConf {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  hostIP?: string;
}

export interface BridgeConf {
  /** the network name */
  network: string;
  bridge: string;
  isGateway: boolean;
  isDefaultGateway: boolean;
  forceAddress: boolean;
  ipMasq: boolean;
  /** 0: the kernel's default */
  mtu: number;
  hairpinMode: boolean;
  promiscMode: boolean;
  macspoofchk: boolean;
  enabledad: boolean;
  disableContainerInterface: boolean;
  portIsolation: boolean;
  /** netplumb: drop traffic between this bridge and other netplumb bridges (default true) */
  isolate: boolean;
  /** netplumb: bridges this one may talk to although isolated */
  allowBridges: string[];
  /** netplumb, Docker's --icc: containers of this network may talk to each other (default true) */
  icc: boolean;
  /** the network configuration's `dns`, which wins over the IPAM's */
  dns: CniDns | undefined;
  /** an `ipam` section with a type: layer 3; otherwise layer 2 only (no addresses) */
  hasIpam: boolean;
  /** the container interface's MAC if the runtime asked for one (runtimeConfig.mac > args.cni.mac > CNI_ARGS MAC) */
  mac: string | undefined;
  /** the portMappings capability */
  portMappings: PortMappingConf[];
}

/**
 * The bridge's fields (the reference's `NetConf` of plugins/main/bridge, `PortMapEntry` of libcni for the
 * portMappings capability) and netplumb's own; matched and type-checked before parsing (lib/cni/decode.ts).
 */
export const BRIDGE_FIELDS: FieldTable = {
  bridge: 'string',
  isGateway: 'boolean',
  isDefaultGateway: 'boolean',
  forceAddress: 'boolean',
  ipMasq: 'boolean',
  ipMasqBackend: 'string',
  mtu: 'integer',
  hairpinMode: 'boolean',
  promiscMode: 'boolean',
  vlan: 'integer',
  vlanTrunk: { list: { fields: { id: 'integer', minID: 'integer', maxID: 'integer' } } },
  preserveDefaultVlan: 'boolean',
  macspoofchk: 'boolean',
  enabledad: 'boolean',
  disableContainerInterface: 'boolean',
  portIsolation: 'boolean',
  isolate: 'boolean',
  allowBridges: { list: 'string' },
  icc: 'boolean',
  args: { fields: { cni: { fields: { mac: 'string' } } } },
  runtimeConfig: {
    fields: {
      mac: 'string',
      portMappings: { list: { fields: { hostPort: 'integer', containerPort: 'integer', protocol: 'string', hostIP: 'string' } } },
    },
  },
};

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function bool(c: Json, key: string, dflt: boolean): boolean {
  const v = c[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw invalidConfig(`"${key}" must be true or false, not ${JSON.stringify(v)}`, key);
  return v;
}

function int(c: Json, key: string, dflt: number, min: number, max: number): number {
  const v = c[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalidConfig(`"${key}" must be an integer from ${min} to ${max}, not ${JSON.stringify(v)}`, key);
  }
  return v;
}

function ifname(v: unknown, key: string): string {
  if (typeof v !== 'string') throw invalidConfig(`"${key}" must be an interface name, not ${JSON.stringify(v)}`, key);
  const p = ifnameProblem(v);
  if (p !== undefined) throw invalidConfig(`"${key}" ${JSON.stringify(v)} ${p}`, key);
  return v;
}

/** A unicast MAC of the configuration in canonical form, or error 7 naming where it came from. */
export function configMac(v: unknown, where: string): string {
  try {
    return parseUnicastMac(v, where);
  } catch (e) {
    throw invalidConfig((e as Error).message, where, e);
  }
}

function parseDns(v: unknown): CniDns | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw invalidConfig(`"dns" must be an object, not ${JSON.stringify(v)}`, 'dns');
  const dns: CniDns = {};
  for (const k of ['nameservers', 'search', 'options'] as const) {
    const l = v[k];
    if (l === undefined || l === null) continue;
    if (!Array.isArray(l) || !l.every((s) => typeof s === 'string')) throw invalidConfig(`"dns.${k}" must be a list of strings`, 'dns');
    if (l.length > 0) dns[k] = [...l];
  }
  if (v.domain !== undefined && v.domain !== null && v.domain !== '') {
    if (typeof v.domain !== 'string') throw invalidConfig('"dns.domain" must be a string', 'dns');
    dns.domain = v.domain;
  }
  return Object.keys(dns).length > 0 ? dns : undefined;
}

function parsePortMappings(v: unknown): PortMappingConf[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalidConfig(`runtimeConfig.portMappings must be a list, not ${JSON.stringify(v)}`, 'portMappings');
  return v.map((m, i) => {
    const where = `runtimeConfig.portMappings[${i}]`;
    if (!isObject(m)) throw invalidConfig(`${where} must be an object`, 'portMappings');
    const port = (k: string) => {
      const p = m[k];
      if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535)
        throw invalidConfig(`${where}.${k} must be a port 1-65535, not ${JSON.stringify(p)}`, 'portMappings');
      return p;
    };
    const proto = m.protocol === undefined || m.protocol === null || m.protocol === '' ? 'tcp' : m.protocol;
    if (typeof proto !== 'string' || !['tcp', 'udp', 'sctp'].includes(proto.toLowerCase())) {
      throw invalidConfig(`${where}.protocol must be tcp, udp or sctp, not ${JSON.stringify(m.protocol)}`, 'portMappings');
    }
    const out: PortMappingConf = {
      hostPort: port('hostPort'),
      containerPort: port('containerPort'),
      protocol: proto.toLowerCase() as PortMappingConf['protocol'],
    };
    if (m.hostIP !== undefined && m.hostIP !== null && m.hostIP !== '') {
      if (typeof m.hostIP !== 'string' || tryParseIp(m.hostIP) === undefined)
        throw invalidConfig(`${where}.hostIP must be an IP address, not ${JSON.stringify(m.hostIP)}`, 'portMappings');
      out.hostIP = m.hostIP;
    }
    return out;
  });
}

function parseMtu(c: Json): number {
  const mtu = int(c, 'mtu', 0, 0, 65535);
  if (mtu !== 0 && mtu < 68) throw invalidConfig(`"mtu" must be 0 (the kernel's default) or 68 to 65535, not ${mtu}`, 'mtu');
  return mtu;
}

/** Whether the configuration has an IPAM section to delegate to (the reference: `ipam.type` not empty). */
export function hasIpam(c: Json): boolean {
  const ipam = c.ipam;
  return isObject(ipam) && ipam.type !== undefined && ipam.type !== null && ipam.type !== '';
}

/**
 * The configuration of ADD and CHECK, validated. `vlan`/`vlanTrunk` are refused with error 2: VLAN
 * filtering on the bridge is not implemented (and this kernel answers EOPNOTSUPP to it).
 */
export function parseBridgeConf(req: CniRequest): BridgeConf {
  const c = req.config as Json;
  const bridge = c.bridge === undefined || c.bridge === null || c.bridge === '' ? DEFAULT_BRIDGE : ifname(c.bridge, 'bridge');
  const vlan = int(c, 'vlan', 0, 0, 4094);
  if (vlan !== 0) throw unsupportedField('vlan', vlan, 'bridge VLAN filtering is not supported (this kernel answers EOPNOTSUPP to vlan_filtering)');
  if (c.vlanTrunk !== undefined && c.vlanTrunk !== null && !(Array.isArray(c.vlanTrunk) && c.vlanTrunk.length === 0)) {
    throw unsupportedField('vlanTrunk', c.vlanTrunk, 'bridge VLAN filtering is not supported (this kernel answers EOPNOTSUPP to vlan_filtering)');
  }
  bool(c, 'preserveDefaultVlan', true); // meaningful only with VLANs; checked for its type
  if (c.ipMasqBackend !== undefined && c.ipMasqBackend !== null && !['nftables', 'iptables'].includes(c.ipMasqBackend as string)) {
    throw invalidConfig(`"ipMasqBackend" must be "nftables" or "iptables", not ${JSON.stringify(c.ipMasqBackend)}`, 'ipMasqBackend');
  }
  const isDefaultGateway = bool(c, 'isDefaultGateway', false);
  const hairpinMode = bool(c, 'hairpinMode', false);
  const promiscMode = bool(c, 'promiscMode', false);
  if (hairpinMode && promiscMode) throw invalidConfig('cannot set hairpin mode and promiscuous mode at the same time', 'hairpinMode');
  const disableContainerInterface = bool(c, 'disableContainerInterface', false);
  const layer3 = hasIpam(c);
  if (c.ipam !== undefined && c.ipam !== null && !isObject(c.ipam)) throw invalidConfig(`"ipam" must be an object, not ${JSON.stringify(c.ipam)}`, 'ipam');
  if (disableContainerInterface && layer3) throw invalidConfig('cannot use IPAM when disableContainerInterface is set', 'disableContainerInterface');
  const allow = c.allowBridges ?? [];
  if (!Array.isArray(allow)) throw invalidConfig(`"allowBridges" must be a list of bridge names, not ${JSON.stringify(allow)}`, 'allowBridges');

  // The container interface's MAC: CNI_ARGS MAC=, then args.cni.mac, then the `mac` capability (the reference's order).
  let mac: string | undefined;
  const envMac = cniArgsValues(req.args, ['MAC', 'IP']).get('MAC');
  if (envMac) mac = configMac(envMac, 'CNI_ARGS MAC');
  const args = c.args;
  if (isObject(args) && isObject(args.cni) && args.cni.mac !== undefined && args.cni.mac !== '') mac = configMac(args.cni.mac, 'args.cni.mac');
  const rc = isObject(c.runtimeConfig) ? c.runtimeConfig : {};
  if (rc.mac !== undefined && rc.mac !== '') mac = configMac(rc.mac, 'runtimeConfig.mac');

  return {
    network: req.name,
    bridge,
    isGateway: bool(c, 'isGateway', false) || isDefaultGateway,
    isDefaultGateway,
    forceAddress: bool(c, 'forceAddress', false),
    ipMasq: bool(c, 'ipMasq', false),
    mtu: parseMtu(c),
    hairpinMode,
    promiscMode,
    macspoofchk: bool(c, 'macspoofchk', false),
    enabledad: bool(c, 'enabledad', false),
    disableContainerInterface,
    portIsolation: bool(c, 'portIsolation', false),
    isolate: bool(c, 'isolate', true),
    allowBridges: allow.map((b, i) => ifname(b, `allowBridges[${i}]`)),
    icc: bool(c, 'icc', true),
    dns: parseDns(c.dns),
    hasIpam: layer3,
    mac,
    portMappings: parsePortMappings(rc.portMappings),
  };
}

/**
 * The host end's name: `veth` + 8 hex characters of a hash of the container ID and the interface name, so
 * DEL finds it without the container's namespace (the reference picks a random name and must look inside).
 */
export function hostVethName(containerId: string, ifname: string): string {
  return `veth${createHash('sha256').update(`${containerId}\0${ifname}`).digest('hex').slice(0, 8)}`;
}

const ALIAS_MAX = 255;

/** The alias the host veth carries: whose it is, so DEL and GC never touch a veth of someone else. */
export function vethAlias(network: string, containerId: string, ifname: string): string {
  return `netplumb net=${network} if=${ifname} id=${containerId}`.slice(0, ALIAS_MAX);
}

/** The owner written in a host veth's alias, if netplumb wrote it. */
export function parseVethAlias(alias: string | undefined): { network: string; ifname: string; containerId: string } | undefined {
  const m = /^netplumb net=(\S+) if=(\S+) id=(\S+)$/.exec(alias ?? '');
  return m ? { network: m[1]!, ifname: m[2]!, containerId: m[3]! } : undefined;
}

/** An error of the bridge plugin with one of its codes. */
export function bridgeError(code: number, msg: string, object?: string, cause?: unknown): CniError {
  return new CniError(code, msg, { object, cause });
}

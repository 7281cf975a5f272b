/**
 * Network definitions on disk, in the spirit of `docker network create`: each network is a netplumb-bridge
 * configuration (bridge, subnet, gateway, internal, masquerade, IPv6) with its IPAM, kept as one JSON file
 * per network, and one JSON file per attached endpoint beside it:
 *
 *   <root>/networks/<name>/network.json           the definition (0600; directories 0700)
 *   <root>/networks/<name>/endpoints/<id>.json     one attached namespace (lib/networks/endpoints.ts)
 *   <root>/ipam/                                    the host-local store of every network (IPAM dataDir)
 *
 * <root> is /var/lib/netplumb unless NETPLUMB_STATE_DIR or the `root` option says otherwise (tests use a
 * temporary directory). Every file is written under a temporary name and renamed, so a reader never sees
 * half of one; names are validated before any path is made of them.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERR, NetplumbError, wrapError } from '../errors.js';
import { BITS, cidrContains, cidrOverlaps, formatIp, tryParseCidr, tryParseIp } from '../addr/ip.js';
import { ifnameProblem, isValidIfname, isValidNetworkName } from '../names.js';

export const DEFAULT_STATE_ROOT = '/var/lib/netplumb';
/** The environment variable that moves the whole state (definitions, endpoints, IPAM) elsewhere. */
export const STATE_ROOT_ENV = 'NETPLUMB_STATE_DIR';

export interface StoreOptions {
  /** the state root (default: $NETPLUMB_STATE_DIR, else /var/lib/netplumb) */
  root?: string;
}

export interface NetworkSpec {
  name: string;
  /** IPv4 subnet (default: the first free 10.89.N.0/24) */
  subnet?: string;
  /** default: the subnet's first address */
  gateway?: string;
  /** no gateway route and no masquerade: the network reaches nothing outside itself */
  internal?: boolean;
  /** masquerade traffic leaving the subnet (default: true unless internal) */
  masquerade?: boolean;
  /** an IPv6 subnet as well */
  ipv6Subnet?: string;
  ipv6Gateway?: string;
  /** the bridge's name (default: `np-` + the name, or a hash of it when too long) */
  bridge?: string;
  /** Docker's --icc: endpoints may talk to each other (default true); false: only what allow rules let */
  icc?: boolean;
}

export interface Network {
  name: string;
  /** 64 hex characters, as Docker's network IDs */
  id: string;
  created: string;
  driver: 'netplumb-bridge';
  bridge: string;
  subnet: string;
  gateway: string;
  ipv6?: { subnet: string; gateway: string };
  internal: boolean;
  masquerade: boolean;
  /** false: traffic between endpoints is dropped but for allow rules (absent: true) */
  icc?: boolean;
}

function usage(message: string, code: string, object?: string): NetplumbError {
  return new NetplumbError(message, { code, op: 'network', object });
}

/** The state root of these options. */
export function stateRoot(opts: StoreOptions = {}): string {
  const root = opts.root ?? process.env[STATE_ROOT_ENV] ?? DEFAULT_STATE_ROOT;
  if (!root.startsWith('/') || root.includes('\0'))
    throw usage(`the state directory must be an absolute path, not ${JSON.stringify(root)}`, ERR.INVALID_ARG_VALUE, root);
  return root;
}

/** Throws unless `name` is a network name (lib/names.ts): letters, digits, `_.-`, at most 64, not starting with a punctuation. */
export function checkNetworkName(name: string): string {
  if (!isValidNetworkName(name)) {
    throw usage(
      `invalid network name ${JSON.stringify(name)}: use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit`,
      ERR.INVALID_NAME,
      name,
    );
  }
  return name;
}

export const networksDir = (opts?: StoreOptions) => join(stateRoot(opts), 'networks');
export const networkDir = (name: string, opts?: StoreOptions) => join(networksDir(opts), checkNetworkName(name));
export const ipamDir = (opts?: StoreOptions) => join(stateRoot(opts), 'ipam');

/** Writes `data` as JSON to `path` atomically (temporary file, mode 0600, rename). */
export function writeJsonAtomic(path: string, data: unknown): void {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(tmp, `${JSON.stringify(data, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw wrapError(e, { op: 'write', what: `write ${path}`, object: path });
  }
}

/** mkdir -p with mode 0700 for every directory it makes. */
export function makePrivateDir(path: string): void {
  try {
    mkdirSync(path, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw wrapError(e, { op: 'mkdir', what: `make ${path}`, object: path });
  }
}

function defaultBridge(name: string): string {
  const b = `np-${name}`;
  return isValidIfname(b) ? b : `np-${createHash('sha256').update(name).digest('hex').slice(0, 12)}`;
}

function overlaps(a: string, b: string): boolean {
  const x = tryParseCidr(a);
  const y = tryParseCidr(b);
  return x !== undefined && y !== undefined && x.family === y.family && cidrOverlaps(x, y);
}

function firstFreeSubnet(taken: readonly string[]): string {
  for (let n = 1; n < 255; n++) {
    const s = `10.89.${n}.0/24`;
    if (!taken.some((t) => overlaps(t, s))) return s;
  }
  throw new NetplumbError('no free subnet left in 10.89.0.0/16: give one with --subnet', { code: ERR.NO_FREE_SUBNET, op: 'network create' });
}

function checkSubnet(subnet: string, family: 4 | 6, what: string): void {
  const c = tryParseCidr(subnet);
  if (!c || c.family !== family)
    throw usage(
      `${what} ${JSON.stringify(subnet)} is not an IPv${family} subnet such as ${family === 4 ? '10.89.1.0/24' : 'fd00:89::/64'}`,
      ERR.INVALID_ADDRESS,
      subnet,
    );
  if (c.prefix > BITS[family] - 2) throw usage(`${what} ${subnet} is too small (at most /${BITS[family] - 2})`, ERR.INVALID_ADDRESS, subnet);
  if (c.ip !== c.network) throw usage(`${what} ${subnet} has host bits set`, ERR.INVALID_ADDRESS, subnet);
}

function gatewayOf(subnet: string, gateway: string | undefined, family: 4 | 6, what: string): string {
  const c = tryParseCidr(subnet)!;
  if (gateway === undefined) return formatIp({ family, value: c.network + 1n });
  const g = tryParseIp(gateway);
  if (!g || g.family !== family || !cidrContains(c, g))
    throw usage(`${what} ${JSON.stringify(gateway)} is not an address inside ${subnet}`, ERR.INVALID_ADDRESS, gateway);
  return formatIp(g);
}

/** Reads one network's definition, or undefined when there is none of that name. */
export function readNetwork(name: string, opts?: StoreOptions): Network | undefined {
  const path = join(networkDir(name, opts), 'network.json');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw wrapError(e, { op: 'read', what: `read ${path}`, object: path });
  }
  try {
    return JSON.parse(text) as Network;
  } catch (e) {
    throw new NetplumbError(`${path} is not JSON: ${(e as Error).message}`, { code: ERR.MALFORMED_STATE, op: 'read', object: path, cause: e });
  }
}

/** One network's definition; an error naming `netplumb network ls` when there is none. */
export function getNetwork(name: string, opts?: StoreOptions): Network {
  const n = readNetwork(name, opts);
  if (!n) throw new NetplumbError(`no network named ${name} (see: netplumb network ls)`, { code: ERR.NOT_FOUND, op: 'network', object: name });
  return n;
}

/** Every defined network, by name. */
export function listNetworks(opts?: StoreOptions): Network[] {
  let names: string[];
  try {
    names = readdirSync(networksDir(opts));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw wrapError(e, { op: 'readdir', what: `list ${networksDir(opts)}`, object: networksDir(opts) });
  }
  return names
    .filter((n) => isValidNetworkName(n))
    .sort()
    .map((n) => readNetwork(n, opts))
    .filter((n): n is Network => n !== undefined);
}

/**
 * Validates `spec` and writes the definition (`docker network create`). Nothing is created in the kernel
 * until the first connect: the bridge is made by netplumb-bridge's ADD. Refuses a taken name, bridge or
 * overlapping subnet.
 */
export function createNetwork(spec: NetworkSpec, opts?: StoreOptions): Network {
  const name = checkNetworkName(spec.name);
  const others = listNetworks(opts);
  if (others.some((n) => n.name === name)) {
    throw new NetplumbError(`network ${name} exists already (remove it with: netplumb network rm ${name})`, {
      code: ERR.EXISTS,
      op: 'network create',
      object: name,
    });
  }
  const subnet = spec.subnet ?? firstFreeSubnet(others.map((n) => n.subnet));
  checkSubnet(subnet, 4, '--subnet');
  const clash = others.find((n) => overlaps(n.subnet, subnet) || (n.ipv6 && spec.ipv6Subnet && overlaps(n.ipv6.subnet, spec.ipv6Subnet)));
  if (clash)
    throw new NetplumbError(`subnet ${subnet} overlaps network ${clash.name}'s: choose another with --subnet`, {
      code: ERR.IN_USE,
      op: 'network create',
      object: subnet,
    });
  const bridge = spec.bridge ?? defaultBridge(name);
  const bridgeProblem = ifnameProblem(bridge);
  if (bridgeProblem !== undefined) throw usage(`bridge name ${JSON.stringify(bridge)} is not an interface name: it ${bridgeProblem}`, ERR.INVALID_NAME, bridge);
  const bclash = others.find((n) => n.bridge === bridge);
  if (bclash) throw new NetplumbError(`bridge ${bridge} belongs to network ${bclash.name}`, { code: ERR.IN_USE, op: 'network create', object: bridge });
  const internal = spec.internal ?? false;
  const net: Network = {
    name,
    id: createHash('sha256')
      .update(`${name}\0${randomBytes(16).toString('hex')}`)
      .digest('hex'),
    created: new Date().toISOString(),
    driver: 'netplumb-bridge',
    bridge,
    subnet,
    gateway: gatewayOf(subnet, spec.gateway, 4, '--gateway'),
    internal,
    masquerade: !internal && (spec.masquerade ?? true),
    ...(spec.icc === false ? { icc: false } : {}),
  };
  if (spec.ipv6Subnet !== undefined) {
    checkSubnet(spec.ipv6Subnet, 6, '--ipv6-subnet');
    net.ipv6 = { subnet: spec.ipv6Subnet, gateway: gatewayOf(spec.ipv6Subnet, spec.ipv6Gateway, 6, '--ipv6-gateway') };
  } else if (spec.ipv6Gateway !== undefined) throw usage('--ipv6-gateway needs --ipv6-subnet', ERR.INVALID_ARG_VALUE, spec.ipv6Gateway);
  const dir = networkDir(name, opts);
  makePrivateDir(networksDir(opts));
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new NetplumbError(`network ${name} exists already`, { code: ERR.EXISTS, op: 'network create', object: name, cause: e });
    }
    throw wrapError(e, { op: 'mkdir', what: `make ${dir}`, object: dir });
  }
  try {
    writeJsonAtomic(join(dir, 'network.json'), net);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return net;
}

/** Removes the definition's files (the caller has detached every endpoint first). */
export function deleteNetworkFiles(name: string, opts?: StoreOptions): void {
  rmSync(networkDir(name, opts), { recursive: true, force: true });
  rmSync(join(ipamDir(opts), checkNetworkName(name)), { recursive: true, force: true });
}

/**
 * The CNI network configuration of `net` for netplumb-bridge (what `netplumb install-cni --network` writes too,
 * and what connect hands to the plugin in process). `runtimeConfig` carries the per-endpoint capabilities.
 */
export function bridgeConfig(net: Network, opts?: StoreOptions, runtimeConfig?: Record<string, unknown>): Record<string, unknown> {
  const ranges: Array<Array<{ subnet: string; gateway: string }>> = [[{ subnet: net.subnet, gateway: net.gateway }]];
  if (net.ipv6) ranges.push([{ subnet: net.ipv6.subnet, gateway: net.ipv6.gateway }]);
  const routes = net.internal ? [] : [{ dst: '0.0.0.0/0' }, ...(net.ipv6 ? [{ dst: '::/0' }] : [])];
  return {
    cniVersion: '1.1.0',
    name: net.name,
    type: 'netplumb-bridge',
    bridge: net.bridge,
    isGateway: !net.internal,
    ipMasq: net.masquerade && !net.internal,
    hairpinMode: true,
    ...(net.icc === false ? { icc: false } : {}),
    capabilities: { portMappings: true, mac: true, ips: true },
    ipam: { type: 'netplumb-host-local', ranges, routes, dataDir: ipamDir(opts) },
    ...(runtimeConfig ? { runtimeConfig } : {}),
  };
}

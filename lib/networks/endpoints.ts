/**
 * Attaching namespaces to defined networks (`docker network connect/disconnect/inspect/rm`): connect is a CNI ADD
 * of netplumb-bridge run in process with the network's configuration, disconnect its DEL, and each attachment is
 * recorded as an endpoint (<root>/networks/<name>/endpoints/<id>.json) with the namespace's inode, so that an
 * endpoint whose namespace went away (its process exited) is recognised as stale and released by the next
 * command that looks (list, inspect, connect, rm) — DEL needs no namespace.
 *
 * A target is a PID, an absolute namespace path, or a name given earlier (`--name`, or `netplumb run --name`).
 * The CNI container ID is derived from the namespace's inode, so the same namespace named two ways is one
 * endpoint, and connect is idempotent.
 */
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ERR, NetplumbError } from '../errors.js';
import { tryParseCidr } from '../addr/ip.js';
import { isValidNetworkName } from '../names.js';
import { handle } from '../cni/skeleton.js';
import type { CniError } from '../cni/errors.js';
import type { CniResult } from '../cni/types.js';
import { bridgePlugin } from '../modes/bridge.js';
import {
  bridgeConfig,
  checkNetworkName,
  deleteNetworkFiles,
  getNetwork,
  listNetworks,
  makePrivateDir,
  networkDir,
  stateRoot,
  writeJsonAtomic,
  type Network,
  type StoreOptions,
} from './store.js';
import { forgetPolicyOf } from './policy-store.js';

export type Target = { kind: 'pid'; pid: number } | { kind: 'path'; path: string } | { kind: 'name'; name: string };

export interface PublishedPort {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
  hostIP?: string;
}

export interface Endpoint {
  network: string;
  /** the CNI container ID: `ns-` + the namespace's inode in hex */
  containerId: string;
  /** the name given with --name, if any */
  name?: string;
  /** how the target was given: `pid:N`, a path, or a name */
  target: string;
  /** the namespace file used (for a PID: /proc/N/ns/net) */
  netns: string;
  /** the namespace's inode when attached: a different one means the namespace went away */
  netnsInode: number;
  ifname: string;
  mac: string;
  /** CIDRs of the interface */
  addresses: string[];
  publish: PublishedPort[];
  created: string;
}

export interface ConnectOptions extends StoreOptions {
  ip?: string;
  mac?: string;
  publish?: readonly PublishedPort[];
  /** remember the target under this name (for later commands and `run --net=container:NAME`) */
  name?: string;
  /** the interface inside (default: the first ethN free in that namespace among netplumb's endpoints) */
  ifname?: string;
  /** CNI_PATH for the plugin (unused by netplumb-host-local, which runs in process) */
  cniPath?: string;
}

/** A remembered namespace name follows the network names' rules (lib/names.ts): one safe path component. */
const isValidTargetName = isValidNetworkName;

function fail(message: string, code: string, object?: string, cause?: unknown): NetplumbError {
  return new NetplumbError(message, { code, op: 'connect', object, cause });
}

/** Reads a target as the CLI takes it: digits are a PID, an absolute path a namespace file, anything else a name. */
export function parseTarget(s: string): Target {
  if (/^[0-9]+$/.test(s)) {
    const pid = Number(s);
    if (pid < 1 || pid > 4_194_304) throw fail(`${s} is not a process ID`, ERR.INVALID_ARG_VALUE, s);
    return { kind: 'pid', pid };
  }
  if (s.startsWith('/')) {
    if (s.includes('\0') || s.split('/').some((x, i) => i > 0 && (x === '' || x === '.' || x === '..')))
      throw fail(`${JSON.stringify(s)} is not a normalised absolute path`, ERR.INVALID_ARG_VALUE, s);
    return { kind: 'path', path: s };
  }
  if (!isValidTargetName(s))
    throw fail(`${JSON.stringify(s)} is neither a PID, an absolute namespace path nor a name (letters, digits, '_.-')`, ERR.INVALID_NAME, s);
  return { kind: 'name', name: s };
}

/** The text a target is recorded as. */
export const formatTarget = (t: Target): string => (t.kind === 'pid' ? `pid:${t.pid}` : t.kind === 'path' ? t.path : t.name);

const namesDir = (opts?: StoreOptions) => join(stateRoot(opts), 'names');

interface NameRecord {
  name: string;
  netns: string;
  netnsInode: number;
  pid?: number;
}

/** Remembers `name` for the namespace at `netns` (a later `connect NET NAME`, `run --net=container:NAME`). */
export function rememberName(name: string, netns: string, pid: number | undefined, opts?: StoreOptions): void {
  if (!isValidTargetName(name)) throw fail(`invalid name ${JSON.stringify(name)}: use letters, digits, '_', '.' or '-'`, ERR.INVALID_NAME, name);
  const ino = statSync(netns).ino;
  const old = readName(name, opts);
  if (old && old.netnsInode !== ino && inodeOf(old.netns) === old.netnsInode) {
    throw fail(`the name ${name} is taken by another live namespace (${old.netns})`, ERR.EXISTS, name);
  }
  makePrivateDir(namesDir(opts));
  writeJsonAtomic(join(namesDir(opts), `${name}.json`), { name, netns, netnsInode: ino, ...(pid ? { pid } : {}) } satisfies NameRecord);
}

/** Forgets a name (when the namespace it named is gone). */
export function forgetName(name: string, opts?: StoreOptions): void {
  if (isValidTargetName(name)) rmSync(join(namesDir(opts), `${name}.json`), { force: true });
}

function readName(name: string, opts?: StoreOptions): NameRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(namesDir(opts), `${name}.json`), 'utf8')) as NameRecord;
  } catch {
    return undefined;
  }
}

function inodeOf(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

export interface ResolvedTarget {
  netns: string;
  netnsInode: number;
  pid?: number;
  name?: string;
}

/**
 * The namespace file of a target, checked: the process exists, the path is a network namespace, the name was
 * given and its namespace is still there. Refuses the caller's own namespace (connect would rename the host's links).
 */
export function resolveTarget(t: Target, opts?: StoreOptions): ResolvedTarget {
  let r: ResolvedTarget;
  if (t.kind === 'pid') {
    const netns = `/proc/${t.pid}/ns/net`;
    const ino = inodeOf(`/proc/${t.pid}`) === undefined ? undefined : inodeOf(netns);
    if (ino === undefined)
      throw fail(`there is no process ${t.pid} (or it is not visible here): give the PID of a running process`, ERR.NOT_FOUND, String(t.pid));
    r = { netns, netnsInode: ino, pid: t.pid };
  } else if (t.kind === 'path') {
    let st;
    try {
      st = statSync(t.path);
    } catch (e) {
      throw fail(`${t.path} does not exist: give a network namespace file such as /run/netns/NAME or /proc/PID/ns/net`, ERR.NOT_FOUND, t.path, e);
    }
    if (st.dev !== statSync('/proc/self/ns/net').dev) throw fail(`${t.path} is not a network namespace file (nsfs)`, ERR.NOT_A_NETNS, t.path);
    r = { netns: t.path, netnsInode: st.ino };
  } else {
    const rec = readName(t.name, opts);
    if (!rec) throw fail(`no namespace is named ${t.name}: give a PID or a namespace path (with --name ${t.name} to name it)`, ERR.NOT_FOUND, t.name);
    if (inodeOf(rec.netns) !== rec.netnsInode) {
      throw fail(`the namespace named ${t.name} is gone (its process exited)`, ERR.NOT_FOUND, t.name);
    }
    r = { netns: rec.netns, netnsInode: rec.netnsInode, name: t.name, ...(rec.pid ? { pid: rec.pid } : {}) };
  }
  if (r.netnsInode === statSync('/proc/self/ns/net').ino) {
    throw fail(
      `${formatTarget(t)} is in netplumb's own network namespace (the host's): give a process in a namespace of its own`,
      ERR.NETNS_SELF,
      formatTarget(t),
    );
  }
  return r;
}

const endpointsDir = (network: string, opts?: StoreOptions) => join(networkDir(network, opts), 'endpoints');
export const containerIdOf = (netnsInode: number) => `ns-${netnsInode.toString(16)}`;

/** The endpoints recorded on `network` (stale ones included; see pruneNetwork). */
export function listEndpoints(network: string, opts?: StoreOptions): Endpoint[] {
  let files: string[];
  try {
    files = readdirSync(endpointsDir(network, opts));
  } catch {
    return [];
  }
  const out: Endpoint[] = [];
  for (const f of files.filter((x) => x.endsWith('.json')).sort()) {
    try {
      out.push(JSON.parse(readFileSync(join(endpointsDir(network, opts), f), 'utf8')) as Endpoint);
    } catch {
      /* being replaced */
    }
  }
  return out;
}

/** Whether the endpoint's namespace is still the one it was attached to. */
export const isLive = (e: Endpoint) => inodeOf(e.netns) === e.netnsInode;

function cniEnv(command: 'ADD' | 'DEL', containerId: string, netns: string, ifname: string, opts: ConnectOptions, ip?: string): Record<string, string> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: containerId,
    CNI_NETNS: netns,
    CNI_IFNAME: ifname,
    CNI_PATH: opts.cniPath ?? '/opt/cni/bin',
    ...(ip ? { CNI_ARGS: `IP=${ip}` } : {}),
  };
}

async function runBridge(env: Record<string, string>, conf: unknown): Promise<CniResult | undefined> {
  const o = await handle(bridgePlugin, env, { readStdin: async () => Buffer.from(JSON.stringify(conf)) });
  if (o.exitCode !== 0) throw o.error as CniError;
  return o.stdout ? (JSON.parse(o.stdout) as CniResult) : undefined;
}

function pickIfname(netnsInode: number, opts?: StoreOptions): string {
  const used = new Set(
    listNetworks(opts)
      .flatMap((n) => listEndpoints(n.name, opts))
      .filter((e) => e.netnsInode === netnsInode)
      .map((e) => e.ifname),
  );
  for (let i = 0; ; i++) if (!used.has(`eth${i}`)) return `eth${i}`;
}

/**
 * Attaches a target to `network` (`docker network connect`): CNI ADD of netplumb-bridge in process, then the
 * endpoint record. Idempotent: a target already attached gets its existing endpoint back.
 */
export async function connect(network: string, target: Target, opts: ConnectOptions = {}): Promise<Endpoint> {
  const net = getNetwork(checkNetworkName(network), opts);
  await pruneNetwork(network, opts);
  const t = resolveTarget(target, opts);
  const containerId = containerIdOf(t.netnsInode);
  const existing = listEndpoints(network, opts).find((e) => e.containerId === containerId);
  if (opts.name) rememberName(opts.name, t.netns, t.pid, opts);
  if (existing) return existing;
  const ifname = opts.ifname ?? pickIfname(t.netnsInode, opts);
  const publish = [...(opts.publish ?? [])];
  const rc: Record<string, unknown> = {};
  if (publish.length) rc.portMappings = publish;
  if (opts.mac) rc.mac = opts.mac;
  const conf = bridgeConfig(net, opts, Object.keys(rc).length ? rc : undefined);
  const env = cniEnv('ADD', containerId, t.netns, ifname, opts, opts.ip);
  const result = (await runBridge(env, conf))!;
  const ep: Endpoint = {
    network,
    containerId,
    ...((opts.name ?? t.name) ? { name: (opts.name ?? t.name)! } : {}),
    target: formatTarget(target),
    netns: t.netns,
    netnsInode: t.netnsInode,
    ifname,
    mac: result.interfaces?.find((i) => i.sandbox)?.mac ?? '',
    addresses: (result.ips ?? []).map((i) => i.address),
    publish,
    created: new Date().toISOString(),
  };
  try {
    makePrivateDir(endpointsDir(network, opts));
    writeJsonAtomic(join(endpointsDir(network, opts), `${containerId}.json`), ep);
  } catch (e) {
    await runBridge(cniEnv('DEL', containerId, t.netns, ifname, opts), conf).catch(() => undefined);
    throw e;
  }
  return ep;
}

async function release(net: Network, ep: Endpoint, opts: StoreOptions): Promise<void> {
  const live = isLive(ep);
  const rc = ep.publish.length ? { portMappings: ep.publish } : undefined;
  await runBridge(cniEnv('DEL', ep.containerId, live ? ep.netns : '', ep.ifname, opts), bridgeConfig(net, opts, rc));
  forgetPolicyOf(net.name, ep.containerId, opts); // the plugin's DEL removed the rules' set elements
  rmSync(join(endpointsDir(net.name, opts), `${ep.containerId}.json`), { force: true });
}

/**
 * Detaches a target (`docker network disconnect`): CNI DEL, then the record goes. A target that is not
 * attached is an error naming what is; a target whose namespace is gone can be named by its recorded
 * name or target text.
 */
export async function disconnect(network: string, target: Target, opts: StoreOptions = {}): Promise<Endpoint> {
  const net = getNetwork(checkNetworkName(network), opts);
  const eps = listEndpoints(network, opts);
  const text = formatTarget(target);
  let ep = eps.find((e) => e.target === text || (target.kind === 'name' && e.name === target.name));
  if (!ep) {
    try {
      const t = resolveTarget(target, opts);
      ep = eps.find((e) => e.containerId === containerIdOf(t.netnsInode));
    } catch {
      /* not resolvable: not attached either */
    }
  }
  if (!ep)
    throw new NetplumbError(`${text} is not attached to ${network} (see: netplumb network inspect ${network})`, {
      code: ERR.NOT_FOUND,
      op: 'disconnect',
      object: text,
    });
  await release(net, ep, opts);
  return ep;
}

/** Releases the endpoints of `network` whose namespace went away; returns them. */
export async function pruneNetwork(network: string, opts: StoreOptions = {}): Promise<Endpoint[]> {
  const net = getNetwork(network, opts);
  const stale = listEndpoints(network, opts).filter((e) => !isLive(e));
  for (const e of stale) await release(net, e, opts);
  return stale;
}

export interface NetworkInspect extends Network {
  ipam: { driver: 'netplumb-host-local'; config: Array<{ subnet: string; gateway: string }>; dataDir: string };
  containers: Record<
    string,
    { name?: string; target: string; netns: string; ifname: string; macAddress: string; ipv4Address?: string; ipv6Address?: string; publish: PublishedPort[] }
  >;
  cniConfig: Record<string, unknown>;
}

/** `docker network inspect`: the definition, its IPAM, the attached endpoints with their addresses, the CNI config. */
export async function inspectNetwork(network: string, opts: StoreOptions = {}): Promise<NetworkInspect> {
  await pruneNetwork(network, opts);
  const net = getNetwork(network, opts);
  const conf = bridgeConfig(net, opts);
  const containers: NetworkInspect['containers'] = {};
  for (const e of listEndpoints(network, opts)) {
    const v4 = e.addresses.find((a) => tryParseCidr(a)?.family === 4);
    const v6 = e.addresses.find((a) => tryParseCidr(a)?.family === 6);
    containers[e.containerId] = {
      ...(e.name ? { name: e.name } : {}),
      target: e.target,
      netns: e.netns,
      ifname: e.ifname,
      macAddress: e.mac,
      ...(v4 ? { ipv4Address: v4 } : {}),
      ...(v6 ? { ipv6Address: v6 } : {}),
      publish: e.publish,
    };
  }
  return {
    ...net,
    ipam: {
      driver: 'netplumb-host-local',
      config: [{ subnet: net.subnet, gateway: net.gateway }, ...(net.ipv6 ? [net.ipv6] : [])],
      dataDir: (conf.ipam as { dataDir: string }).dataDir,
    },
    containers,
    cniConfig: conf,
  };
}

/**
 * Removes a network (`docker network rm`): refuses while endpoints are attached unless `force`, which
 * disconnects them first (`onProgress` is told of each); then the bridge, its firewall chains and the files go.
 */
export async function removeNetwork(
  network: string,
  opts: StoreOptions & { force?: boolean; onProgress?: (done: number, total: number) => void } = {},
): Promise<void> {
  const net = getNetwork(checkNetworkName(network), opts);
  await pruneNetwork(network, opts);
  const eps = listEndpoints(network, opts);
  if (eps.length && !opts.force) {
    throw new NetplumbError(`network ${network} has ${eps.length} attached endpoint(s): disconnect them, or use --force`, {
      code: ERR.IN_USE,
      op: 'network rm',
      object: network,
    });
  }
  for (const [i, e] of eps.entries()) {
    await release(net, e, opts);
    opts.onProgress?.(i + 1, eps.length);
  }
  const { openHandleSync } = await import('../net/handle.js');
  const { findLink, deleteLink } = await import('../net/link.js');
  const h = openHandleSync();
  try {
    const br = await findLink(h, net.bridge);
    if (br && br.kind === 'bridge') await deleteLink(h, br.index);
  } finally {
    h.close();
  }
  const { removeNetworkFirewall } = await import('../firewall/index.js');
  await removeNetworkFirewall(net.bridge);
  deleteNetworkFiles(network, opts);
}

/**
 * The requests behind the attachments the agent made, kept so that the agent can undo an attachment nobody will
 * DEL (its container's namespace vanished, the runtime crashed): the environment and stdin of the successful ADD,
 * and the identity of the namespace it attached, one file per attachment:
 *
 *   /run/netplumb/agent/<containerID>/<plugin>:<network>:<ifname>.json
 *
 * Names are safe path components: the plugin validated container ID, network and interface name before it
 * answered success (the same rules as lib/modes/state.ts records). Written atomically; removed when a DEL of the
 * same attachment succeeds. Under /run: what it describes does not survive a reboot either.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isValidContainerId } from '../names.js';

export const AGENT_STATE_DIR = '/run/netplumb/agent';
const ENV_KEPT = /^(CNI_[A-Z_]+|PATH|NETPLUMB_[A-Z_]+)$/;

export interface KeptRequest {
  plugin: string;
  env: Record<string, string>;
  /** stdin, base64 */
  stdin: string;
  /** `dev:ino` of CNI_NETNS at ADD */
  netnsId: string;
  /** `dev:ino` of the agent's own network namespace (agents in other namespaces leave it alone) */
  hostNetnsId: string;
}

const ownNetnsId = () => netnsIdOf('/proc/self/ns/net') ?? '';

function fileOf(dir: string, plugin: string, env: Record<string, string>, network: string): string | undefined {
  const id = env.CNI_CONTAINERID ?? '';
  const ifname = env.CNI_IFNAME ?? '';
  if (!isValidContainerId(id) || ifname.includes('/') || network.includes('/') || network === '' || ifname === '') return undefined;
  return join(dir, id, `${plugin}:${network}:${ifname}.json`);
}

/** The `dev:ino` of a namespace file, or undefined when it is gone. */
export function netnsIdOf(path: string): string | undefined {
  if (!path) return undefined;
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/** Keeps the request of a successful ADD; returns what it kept (undefined when there is nothing to keep). */
export function keepRequest(plugin: string, env: Record<string, string>, stdin: Buffer, network: string, dir = AGENT_STATE_DIR): KeptRequest | undefined {
  const f = fileOf(dir, plugin, env, network);
  const netnsId = netnsIdOf(env.CNI_NETNS ?? '');
  if (f === undefined || netnsId === undefined) return undefined;
  const kept: KeptRequest = {
    plugin,
    env: Object.fromEntries(Object.entries(env).filter(([k]) => ENV_KEPT.test(k))),
    stdin: stdin.toString('base64'),
    netnsId,
    hostNetnsId: ownNetnsId(),
  };
  mkdirSync(join(f, '..'), { recursive: true, mode: 0o700 });
  const t = `${f}.${process.pid}.tmp`;
  writeFileSync(t, JSON.stringify(kept), { mode: 0o600 });
  renameSync(t, f);
  indexes.get(dir)?.set(f, whereOf(kept));
  return kept;
}

/** Where a kept request's namespace was: what a sweep checks before it reads the request itself. */
interface Whereabouts {
  netns: string;
  netnsId: string;
  hostNetnsId: string;
}
const whereOf = (k: KeptRequest): Whereabouts => ({ netns: k.env.CNI_NETNS ?? '', netnsId: k.netnsId, hostNetnsId: k.hostNetnsId });

/**
 * Per state directory, the whereabouts of every kept request file, built by keptRequests() and kept up to date
 * by this process's keep and forget calls (the only writer of its own requests): so that the sweep each vanished
 * namespace triggers stats one path per attachment instead of reading and parsing every file (≈ 7 ms at 300).
 */
const indexes = new Map<string, Map<string, Whereabouts>>();

/** Forgets the request of an attachment a DEL removed. */
export function forgetRequest(plugin: string, env: Record<string, string>, network: string, dir = AGENT_STATE_DIR): void {
  const f = fileOf(dir, plugin, env, network);
  if (f === undefined) return;
  indexes.get(dir)?.delete(f);
  try {
    unlinkSync(f);
    rmdirSync(join(f, '..'));
  } catch {
    /* absent, or other attachments of the container remain */
  }
}

/** The kept request files under `dir`: `<dir>/<container ID>/<plugin>:<network>:<ifname>.json`. */
function* keptFiles(dir: string): Generator<{ id: string; name: string; path: string }> {
  let ids: string[];
  try {
    ids = readdirSync(dir).filter(isValidContainerId);
  } catch {
    return;
  }
  for (const id of ids) {
    let names: string[];
    try {
      names = readdirSync(join(dir, id));
    } catch {
      continue;
    }
    for (const name of names) if (name.endsWith('.json')) yield { id, name, path: join(dir, id, name) };
  }
}

/**
 * Forgets the kept requests of `plugin` on `network` whose attachment (`containerID\0ifname`) is not in `valid`:
 * a GC released them.
 */
export function forgetUnlisted(plugin: string, network: string, valid: ReadonlySet<string>, dir = AGENT_STATE_DIR): void {
  const prefix = `${plugin}:${network}:`;
  for (const { id, name } of [...keptFiles(dir)]) {
    if (!name.startsWith(prefix)) continue;
    const ifname = name.slice(prefix.length, -'.json'.length);
    if (!valid.has(`${id}\0${ifname}`)) forgetRequest(plugin, { CNI_CONTAINERID: id, CNI_IFNAME: ifname }, network, dir);
  }
}

/** Every kept request (unreadable files skipped). */
export function keptRequests(dir = AGENT_STATE_DIR): KeptRequest[] {
  const out: KeptRequest[] = [];
  const index = new Map<string, Whereabouts>();
  indexes.set(dir, index);
  for (const { path } of keptFiles(dir)) {
    const k = readKept(path);
    if (k === undefined) continue;
    out.push(k);
    index.set(path, whereOf(k));
  }
  return out;
}

function readKept(file: string): KeptRequest | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as KeptRequest;
  } catch {
    return undefined; // gone, torn or foreign: not ours to act on
  }
}

/**
 * The kept requests whose namespace is gone (isOrphan). After a first keptRequests() of `dir`, only the requests
 * whose namespace path no longer names their namespace are read.
 */
export function orphanedRequests(dir = AGENT_STATE_DIR): KeptRequest[] {
  const index = indexes.get(dir);
  if (index === undefined) return keptRequests(dir).filter(isOrphan);
  const own = ownNetnsId();
  const out: KeptRequest[] = [];
  for (const [file, w] of index) {
    if (w.hostNetnsId !== own || netnsIdOf(w.netns) === w.netnsId) continue;
    const k = readKept(file);
    if (k === undefined) index.delete(file);
    else if (isOrphan(k)) out.push(k);
  }
  return out;
}

/** Whether a kept request is of an attachment made from this agent's namespace (agents elsewhere keep theirs). */
export function keptHere(k: KeptRequest): boolean {
  return k.hostNetnsId === ownNetnsId();
}

/**
 * Whether the namespace a kept request attached is gone (its path names nothing, or another namespace), for an
 * attachment this agent's namespace made.
 */
export function isOrphan(k: KeptRequest): boolean {
  return keptHere(k) && netnsIdOf(k.env.CNI_NETNS ?? '') !== k.netnsId;
}

/**
 * Network namespaces: named ones under /var/run/netns (as `ip netns add` makes them), namespaces of processes
 * (/proc/PID/ns/net), identity by device and inode (two paths to one namespace compare equal), and the guard
 * that refuses to act on the caller's own namespace when the caller asked for another.
 * See docs/NET.md for the rest.
 */
import { closeSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, statSync, symlinkSync, unlinkSync, constants as fsc } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { ERR, NetplumbError, SyscallError } from '../errors.js';
import { isValidNetnsName } from '../names.js';
import { CLONE_NEWNET, flockSync, LOCK_EX, LOCK_UN, mount, MNT_DETACH, MS_BIND, MS_REC, MS_SHARED, namespaceType, umount2 } from '../sys/libc.js';
import { inNewNetnsSync } from '../sys/netns-window.js';

export const NETNS_RUN_DIR = '/var/run/netns';

/** An open network namespace: an fd that keeps it alive while open, and its identity. Made by openNetnsSync and friends. */
export class Netns {
  #fd: number;

  /** @internal use openNetnsSync */
  static _adopt(fd: number, path: string, dev: number, ino: number, name?: string): Netns {
    return new Netns(fd, path, dev, ino, name);
  }

  private constructor(
    fd: number,
    /** the path it was opened from */
    readonly path: string,
    readonly dev: number,
    readonly ino: number,
    /** the name under /var/run/netns, when opened by name */
    readonly name?: string,
  ) {
    this.#fd = fd;
  }

  get fd(): number {
    if (this.#fd < 0) throw new NetplumbError(`network namespace ${this.path} is closed`, { code: ERR.NETNS_CLOSED, op: 'netns', object: this.path });
    return this.#fd;
  }

  /** `dev:ino`, equal for every path to the same namespace. */
  get id(): string {
    return `${this.dev}:${this.ino}`;
  }

  /** How the namespace reads in messages: its name or path. */
  get label(): string {
    return this.name ?? this.path;
  }

  /** True when `other` is the same namespace (by device and inode). */
  isSame(other: Netns): boolean {
    return this.dev === other.dev && this.ino === other.ino;
  }

  /** Closes the fd (the namespace lives on while anything else holds it). Idempotent. */
  close(): void {
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
  }

  /** `using ns = openNetnsSync(…)`: closes it at the end of the block. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Ways to name a namespace. */
export type NetnsRef = Netns | { name: string } | { path: string } | { pid: number } | { fd: number };

export interface OpenNetnsOptions {
  /**
   * Allow the result to be the caller's own namespace. Off by default: a container's path that resolves to the
   * caller's namespace is almost always a mistake (a dead PID's recycled number, a wrong path), and acting on it
   * would rename or address the host's links.
   */
  allowCurrent?: boolean;
}

function checkName(name: string): void {
  if (!isValidNetnsName(name)) {
    throw new NetplumbError(`invalid network namespace name ${JSON.stringify(name)}`, { code: ERR.INVALID_NAME, op: 'netns', object: name });
  }
}

function fromFd(fd: number, path: string, name?: string): Netns {
  if (namespaceType(fd) !== CLONE_NEWNET) {
    closeSync(fd);
    throw new NetplumbError(`${path} is not a network namespace`, { code: ERR.NOT_A_NETNS, op: 'netns', object: path });
  }
  const st = fstatSync(fd);
  return Netns._adopt(fd, path, st.dev, st.ino, name);
}

function openPath(path: string, name?: string): Netns {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    throw new NetplumbError(`open network namespace ${path}: ${code}`, { code, op: 'netns', object: path, cause: e });
  }
  return fromFd(fd, path, name);
}

/** The calling thread's namespace, open. Equivalent to: `ip netns identify` (which names it). */
export function currentNetnsSync(): Netns {
  return openPath('/proc/thread-self/ns/net');
}

/** `dev:ino` of the caller's namespace. */
export function currentNetnsIdSync(): string {
  const st = statSync('/proc/thread-self/ns/net');
  return `${st.dev}:${st.ino}`;
}

/** The path a reference resolves to (without opening it); validates names and PIDs. */
export function netnsPath(ref: Exclude<NetnsRef, Netns | { fd: number }>): string {
  if ('name' in ref) {
    checkName(ref.name);
    return `${NETNS_RUN_DIR}/${ref.name}`;
  }
  if ('pid' in ref) {
    if (!Number.isInteger(ref.pid) || ref.pid <= 0)
      throw new NetplumbError(`invalid PID ${ref.pid}`, { code: ERR.INVALID_ARG_VALUE, op: 'netns', object: String(ref.pid) });
    return `/proc/${ref.pid}/ns/net`;
  }
  return ref.path;
}

/**
 * Opens a namespace by name (/var/run/netns/NAME), path, PID or fd (the fd is duplicated by reopening it
 * through /proc, so the caller keeps its own). The caller closes the result. Refuses (ERR_NETNS_SELF) a
 * namespace that turns out to be the caller's own unless `allowCurrent`; for a just-spawned PID see waitForOwnNetns.
 */
export function openNetnsSync(ref: NetnsRef, opts: OpenNetnsOptions = {}): Netns {
  let ns: Netns;
  if (ref instanceof Netns) ns = openPath(`/proc/self/fd/${ref.fd}`, ref.name);
  else if ('fd' in ref) ns = openPath(`/proc/self/fd/${ref.fd}`);
  else ns = openPath(netnsPath(ref), 'name' in ref ? ref.name : undefined);
  if (!opts.allowCurrent && ns.id === currentNetnsIdSync()) {
    const path = ref instanceof Netns ? ref.path : 'fd' in ref ? `fd ${ref.fd}` : netnsPath(ref);
    ns.close();
    throw new NetplumbError(`${path} is the caller's own network namespace; refusing to act on it as another`, {
      code: ERR.NETNS_SELF,
      op: 'netns',
      object: path,
    });
  }
  return ns;
}

/** How long waitForOwnNetns waits, and what can stop it early. */
export interface WaitForOwnNetnsOptions {
  /** give up after this long with ERR_TIMEOUT (default 5000) */
  timeoutMs?: number;
  /** stop waiting (rejects with Node's AbortError) */
  signal?: AbortSignal;
}

/**
 * Resolves once process `pid` is in a network namespace other than the caller's: a child spawned to run
 * `unshare -n …` (or a runtime's container init) starts in its parent's namespace and gets its own a moment
 * later, and the kernel offers no event for that. Polls /proc/PID/ns/net with a backoff (1 ms doubling up to
 * 50 ms), bounded by `timeoutMs`; rejects with ERR_TIMEOUT when the time is up, ESRCH when the process is gone.
 * Keeps the process alive while waiting.
 */
export async function waitForOwnNetns(pid: number, opts: WaitForOwnNetnsOptions = {}): Promise<void> {
  const path = netnsPath({ pid });
  const timeoutMs = opts.timeoutMs ?? 5000;
  const own = currentNetnsIdSync();
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    let st;
    try {
      st = statSync(path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new NetplumbError(`wait for process ${pid} to have its own network namespace: ${code === 'ENOENT' ? 'no such process' : code}`, {
        code: code === 'ENOENT' ? 'ESRCH' : (code ?? 'EIO'),
        op: 'netns wait',
        object: String(pid),
        cause: e,
      });
    }
    if (`${st.dev}:${st.ino}` !== own) return;
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new NetplumbError(`process ${pid} is still in the caller's network namespace after ${timeoutMs} ms`, {
        code: ERR.TIMEOUT,
        op: 'netns wait',
        object: String(pid),
      });
    }
    await sleep(Math.min(delay, left), undefined, opts.signal ? { signal: opts.signal } : undefined);
  }
}

/** True when both references are the same namespace (by device and inode, not by path). */
export function isSameNetnsSync(a: NetnsRef, b: NetnsRef): boolean {
  const x = a instanceof Netns ? a : openNetnsSync(a, { allowCurrent: true });
  const y = b instanceof Netns ? b : openNetnsSync(b, { allowCurrent: true });
  try {
    return x.isSame(y);
  } finally {
    if (x !== a) x.close();
    if (y !== b) y.close();
  }
}

/**
 * Makes /var/run/netns exist and be a shared mount point, as iproute2 does, so that bind mounts made in it
 * show up in mount namespaces that were cloned from this one.
 */
function prepareRunDir(): void {
  mkdirSync(NETNS_RUN_DIR, { recursive: true, mode: 0o755 });
  try {
    mount('', NETNS_RUN_DIR, 'none', MS_SHARED | MS_REC);
  } catch (e) {
    if ((e as SyscallError).code !== 'EINVAL') throw e;
    // Not a mount point yet: bind it onto itself, then share it.
    mount(NETNS_RUN_DIR, NETNS_RUN_DIR, 'none', MS_BIND | MS_REC);
    mount('', NETNS_RUN_DIR, 'none', MS_SHARED | MS_REC);
  }
}

function withRunDirLock<T>(fn: () => T): T {
  mkdirSync(NETNS_RUN_DIR, { recursive: true, mode: 0o755 });
  const fd = openSync(NETNS_RUN_DIR, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    flockSync(fd, LOCK_EX, NETNS_RUN_DIR);
    try {
      return fn();
    } finally {
      flockSync(fd, LOCK_UN, NETNS_RUN_DIR);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Creates /var/run/netns/NAME (O_EXCL) and mounts a namespace on it with `mountIt`; on failure leaves nothing.
 * Call with the run directory locked.
 */
function bindOnto(path: string, name: string, op: string, mountIt: () => void): void {
  prepareRunDir();
  try {
    closeSync(openSync(path, fsc.O_RDONLY | fsc.O_CREAT | fsc.O_EXCL, 0));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    throw new NetplumbError(`${op} ${name}: ${code}`, { code, op, object: name, cause: e });
  }
  try {
    mountIt();
    // a file with nothing of the right type mounted on it must not be left behind
    const fd = openSync(path, fsc.O_RDONLY);
    const ok = namespaceType(fd) === CLONE_NEWNET;
    closeSync(fd);
    if (!ok) throw new NetplumbError(`${op} ${name}: no network namespace mounted`, { code: ERR.NETNS_NOT_MOUNTED, op, object: name });
  } catch (e) {
    try {
      umount2(path, MNT_DETACH);
    } catch {
      /* not mounted */
    }
    unlinkSync(path);
    throw e;
  }
}

/**
 * Creates a named namespace: an empty file /var/run/netns/NAME with a new namespace bind-mounted on it. The
 * namespace is made by unshare on the calling thread, which then returns to its own. Returns it, open.
 * Equivalent to: `ip netns add NAME`.
 */
export function createNamedNetnsSync(name: string): Netns {
  const path = netnsPath({ name });
  return withRunDirLock(() => {
    bindOnto(path, name, 'netns add', () => inNewNetnsSync(() => mount('/proc/thread-self/ns/net', path, 'none', MS_BIND)));
    return openPath(path, name);
  });
}

/** Deletes a named namespace (unmount and remove the file). Equivalent to: `ip netns delete NAME`. */
export function deleteNamedNetnsSync(name: string): void {
  const path = netnsPath({ name });
  withRunDirLock(() => {
    let st;
    try {
      st = lstatSync(path);
    } catch {
      throw new NetplumbError(`delete network namespace ${name}: ENOENT`, { code: 'ENOENT', op: 'netns delete', object: name });
    }
    if (!st.isSymbolicLink()) {
      try {
        umount2(path, MNT_DETACH);
      } catch (e) {
        // EINVAL: not a mount point (a stale file); remove it all the same
        if ((e as SyscallError).code !== 'EINVAL') throw e;
      }
    }
    unlinkSync(path);
  });
}

/** An entry of /var/run/netns. */
export interface NamedNetns {
  name: string;
  path: string;
  /** false for a stale entry: a dangling link, or a file with no namespace mounted on it */
  alive: boolean;
  /** `dev:ino` of a live entry */
  id?: string;
  /** a symlink (as the --net=none walkthrough makes) rather than a bind mount */
  symlink: boolean;
}

function inspect(name: string): NamedNetns {
  const path = `${NETNS_RUN_DIR}/${name}`;
  let symlink = false;
  try {
    symlink = lstatSync(path).isSymbolicLink();
  } catch {
    return { name, path, alive: false, symlink };
  }
  try {
    const fd = openSync(path, fsc.O_RDONLY);
    try {
      const ok = namespaceType(fd) === CLONE_NEWNET;
      const st = fstatSync(fd);
      return ok ? { name, path, alive: true, id: `${st.dev}:${st.ino}`, symlink } : { name, path, alive: false, symlink };
    } finally {
      closeSync(fd);
    }
  } catch {
    return { name, path, alive: false, symlink };
  }
}

/** The entries of /var/run/netns, each with whether a namespace is really behind it. Equivalent to: `ip netns list`. */
export function listNamedNetnsSync(): NamedNetns[] {
  let names: string[];
  try {
    names = readdirSync(NETNS_RUN_DIR);
  } catch {
    return [];
  }
  return names.sort().map(inspect);
}

/** How attachNetnsSync names the namespace. */
export interface AttachOptions {
  /** make a symlink to /proc/PID/ns/net (the walkthrough's `ln -s`) instead of a bind mount (`ip netns attach`) */
  symlink?: boolean;
}

/**
 * Gives a process's namespace a name under /var/run/netns. A bind mount keeps the namespace alive after the
 * process exits; a symlink does not (it goes stale, see removeStaleNetnsSync).
 * Equivalent to: `ip netns attach NAME PID` (or `ln -s /proc/PID/ns/net /var/run/netns/NAME`).
 */
export function attachNetnsSync(name: string, pid: number, opts: AttachOptions = {}): Netns {
  const path = netnsPath({ name });
  const source = netnsPath({ pid });
  const ns = openPath(source);
  try {
    withRunDirLock(() => {
      if (opts.symlink) {
        try {
          symlinkSync(source, path);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
          throw new NetplumbError(`link ${source} to ${path}: ${code}`, { code, op: 'netns attach', object: name, cause: e });
        }
        return;
      }
      bindOnto(path, name, 'netns attach', () => mount(source, path, 'none', MS_BIND));
    });
  } catch (e) {
    ns.close();
    throw e;
  }
  return Netns._adopt(ns.fd, path, ns.dev, ns.ino, name);
}

/**
 * Removes the entries of /var/run/netns whose namespace is gone: dangling symlinks (the guide's
 * `find -L /var/run/netns -type l -delete`) and files with nothing mounted on them. Returns their names.
 */
export function removeStaleNetnsSync(): string[] {
  const removed: string[] = [];
  for (const e of listNamedNetnsSync()) {
    if (e.alive) continue;
    try {
      if (!e.symlink) {
        try {
          umount2(e.path, MNT_DETACH);
        } catch {
          /* nothing mounted: the usual case for a stale file */
        }
      }
      unlinkSync(e.path);
      removed.push(e.name);
    } catch {
      /* raced with someone else's cleanup */
    }
  }
  return removed;
}

/**
 * The on-disk store, byte for byte host-local's:
 *
 *   <dataDir>/<network>/            directory, 0700 (host-local: 0755)
 *   <dataDir>/<network>/lock        taken with flock(LOCK_EX) around every operation
 *   <dataDir>/<network>/<ip>        one file per reserved address: `<containerID>\r\n<ifname>`
 *   <dataDir>/<network>/last_reserved_ip.<N>   the last address handed out from range set N
 *
 * so that netplumb and the reference plugin can share one store at the same time. What netplumb adds:
 *  - a reservation is written to a temporary file, fsynced, then hard-linked to its name: link(2) fails
 *    when the name exists (O_EXCL semantics, two allocators never both win) and the name never points at
 *    a torn or empty file, even after SIGKILL or a power cut; last_reserved_ip is replaced by rename(2);
 *    the directory is fsynced before the lock is released. A crash can leave only a `.netplumb-tmp.*`
 *    file, which the next operation removes.
 *  - nothing is followed: the network directory and the lock must not be symlinks, files are opened
 *    O_NOFOLLOW|O_NONBLOCK and must be regular, names are validated so nothing leaves the directory.
 *  - files are created 0600 (host-local 1.1.1 uses 0644, newer host-local 0600).
 *
 * Inside a lock everything is synchronous: the critical section is a handful of small files, and holding
 * a cross-process lock across event-loop turns would only make everyone else wait longer.
 * See docs/CNI.md for the rest.
 */
import {
  closeSync,
  constants as FS,
  fstatSync,
  fsyncSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { DirChanges } from '../sys/dir-changes.js';
import { faultPoint } from '../sys/fault.js';
import { readUpTo } from '../sys/read.js';
import { NetplumbError, wrapError } from '../errors.js';
import { IpamError } from './errors.js';
import { formatIp, tryParseIp, type Ip } from '../addr/ip.js';
import { isValidContainerId, isValidIfname, isValidNetworkName } from '../names.js';

export const LOCK_FILE = 'lock';
export const LAST_RESERVED_PREFIX = 'last_reserved_ip.';
export const TEMP_PREFIX = '.netplumb-tmp.';
export const LINE_BREAK = '\r\n';
const MAX_FILE_BYTES = 4096;
const FILE_MODE = 0o600;
/** Stricter than host-local's 0755 (the store names every container), and as usable by a root reference plugin. */
const DIR_MODE = 0o700;

/** Who holds an address. `ifname` is undefined for the legacy format (container ID only). */
export interface Owner {
  containerId: string;
  ifname: string | undefined;
}

/** The content of a reservation file: host-local's `<containerID>\r\n<ifname>`. */
export function formatOwner(containerId: string, ifname: string): string {
  return `${containerId.trim()}${LINE_BREAK}${ifname}`;
}

/** Parses a reservation file's content the way host-local matches it (trimmed), or says what is wrong. */
export function parseOwner(content: string): Owner | { problem: string } {
  const t = content.trim();
  if (t === '') return { problem: 'empty' };
  const i = t.indexOf(LINE_BREAK);
  const containerId = i === -1 ? t : t.slice(0, i);
  const ifname = i === -1 ? undefined : t.slice(i + LINE_BREAK.length);
  if (!isValidContainerId(containerId)) return { problem: `invalid container ID ${JSON.stringify(containerId)}` };
  if (ifname !== undefined && !isValidIfname(ifname)) return { problem: `invalid interface name ${JSON.stringify(ifname)}` };
  return { containerId, ifname };
}

export function isProblem(o: Owner | { problem: string }): o is { problem: string } {
  return 'problem' in o;
}

/** True if `owner` is the attachment (containerID, ifname), counting legacy files by container ID alone. */
export function ownedBy(owner: Owner, containerId: string, ifname: string, legacy = true): boolean {
  if (owner.containerId !== containerId.trim()) return false;
  return owner.ifname === undefined ? legacy : owner.ifname === ifname;
}

export type EntryKind = 'reservation' | 'last-reserved' | 'lock' | 'temp' | 'foreign';

export interface StoreEntry {
  name: string;
  kind: EntryKind;
  /** the address a reservation is for, or a last_reserved_ip file holds */
  ip?: Ip;
  owner?: Owner;
  /** set when the entry is not well formed */
  problem?: string;
}

function errCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

/**
 * A file-system failure of the store (EACCES on the data directory, ENOSPC, EROFS …) as a NetplumbError that
 * names the store operation and the path; `code` stays the errno name, so lib/cni still answers it as an I/O
 * failure. Errors of netplumb's own and values without an errno name pass through unchanged.
 */
function fsFailure(e: unknown, op: string, path: string): unknown {
  if (e instanceof NetplumbError || errCode(e) === undefined) return e;
  return wrapError(e, { op, what: `${op} ${path}`, object: path });
}

/** Runs the file-system step `fn` of operation `op` on `path`; its failure is said as fsFailure says. */
export function fsStep<T>(op: string, path: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw fsFailure(e, op, path);
  }
}

function unsafe(message: string, object: string, cause?: unknown): IpamError {
  return new IpamError('ERR_IPAM_UNSAFE_STORE', message, 'open ipam store', object, cause);
}

let libc: typeof import('../sys/libc.js') | undefined;

export interface LockOptions {
  /** give up (IPAM_BUSY, CNI "try again later") after this long; default 60 s */
  timeoutMs?: number;
}

export class Store {
  /** `<dataDir>/<network>` */
  readonly dir: string;

  private constructor(
    readonly dataDir: string,
    readonly network: string,
  ) {
    this.dir = join(dataDir, network);
  }

  /**
   * The store of one network. Validates the name (a single safe path component) and, with `create`, makes
   * the directories (0700; host-local: 0755; existing ones are left as they are). Refuses a network directory
   * that is a symlink.
   */
  static open(dataDir: string, network: string, opts: { create?: boolean } = {}): Store {
    if (!isValidNetworkName(network)) {
      throw new IpamError('ERR_IPAM_CONFIG', `invalid network name ${JSON.stringify(network)}`, 'open ipam store', network);
    }
    if (typeof dataDir !== 'string' || !dataDir.startsWith('/') || dataDir.includes('\0')) {
      throw new IpamError('ERR_IPAM_CONFIG', `dataDir must be an absolute path, not ${JSON.stringify(dataDir)}`, 'open ipam store', dataDir);
    }
    const s = new Store(dataDir, network);
    if (opts.create ?? true) {
      if (!s.checkDir()) {
        fsStep('create ipam store', dataDir, () => mkdirSync(dataDir, { recursive: true, mode: DIR_MODE }));
        try {
          mkdirSync(s.dir, { mode: DIR_MODE });
        } catch (e) {
          if (errCode(e) !== 'EEXIST') throw fsFailure(e, 'create ipam store', s.dir);
        }
        s.checkDir();
      }
    }
    return s;
  }

  /** True if the directory exists (and is a real directory); throws if it is anything else. */
  checkDir(): boolean {
    return this.#identity() !== undefined;
  }

  /** The directory's `dev:ino`, undefined if it does not exist; throws if it is not a real directory. */
  #identity(): string | undefined {
    let st;
    try {
      st = lstatSync(this.dir);
    } catch (e) {
      if (errCode(e) === 'ENOENT') return undefined;
      throw fsFailure(e, 'open ipam store', this.dir);
    }
    if (st.isSymbolicLink()) throw unsafe(`ipam store ${this.dir} is a symbolic link; refusing to follow it`, this.dir);
    if (!st.isDirectory()) throw unsafe(`ipam store ${this.dir} is not a directory`, this.dir);
    return `${st.dev}:${st.ino}`;
  }

  /**
   * Runs `fn` holding the store's flock. The wait polls LOCK_NB with a growing, jittered pause (≤ 10 ms),
   * so it never blocks the event loop or a thread and is bounded by `timeoutMs`. The directory is fsynced
   * before the lock is released if `fn` changed anything.
   */
  async locked<T>(fn: (tx: StoreTx) => T | Promise<T>, opts: LockOptions = {}): Promise<T> {
    libc ??= await import('../sys/libc.js');
    const { flockSync, LOCK_EX, LOCK_NB } = libc;
    const identity = this.#identity();
    const lockPath = join(this.dir, LOCK_FILE);
    let fd: number;
    try {
      fd = openSync(lockPath, FS.O_RDONLY | FS.O_CREAT | FS.O_NOFOLLOW | FS.O_NONBLOCK, FILE_MODE);
    } catch (e) {
      if (errCode(e) === 'ELOOP') throw unsafe(`${lockPath} is a symbolic link; refusing to follow it`, lockPath, e);
      throw fsFailure(e, 'lock ipam store', lockPath);
    }
    try {
      if (!fstatSync(fd).isFile()) throw unsafe(`${lockPath} is not a regular file`, lockPath);
      const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
      for (let pause = 1; ; pause = Math.min(pause * 2, 10)) {
        try {
          flockSync(fd, LOCK_EX | LOCK_NB, lockPath);
          break;
        } catch (e) {
          if (errCode(e) !== 'EAGAIN') throw e;
        }
        if (Date.now() >= deadline) {
          throw new IpamError('ERR_IPAM_BUSY', `ipam store ${this.dir} is locked by another process; try again later`, 'flock', lockPath);
        }
        await sleep(pause * (0.5 + Math.random()));
      }
      const memo = identity === undefined ? undefined : memoFor(this.dir, identity);
      const tx = new StoreTx(this.dir, memo);
      let result: T;
      try {
        result = await fn(tx);
      } catch (e) {
        memo?.forget(); // what fn changed before failing is not worth reasoning about
        try {
          tx.commit(); // whatever fn changed before failing is made durable too
        } catch {
          /* the original error matters more */
        }
        throw e;
      } finally {
        memo?.settle();
      }
      tx.commit();
      return result;
    } finally {
      closeSync(fd); // releases the flock
    }
  }

  /** Every entry of the store with its kind and, for malformed ones, the problem. Reads without locking. */
  inspect(): StoreEntry[] {
    if (!this.checkDir()) return [];
    return new StoreTx(this.dir).inspect();
  }
}

/**
 * What a long-running process (netplumbd) remembers of a store between two operations: its listing and
 * who holds each reservation, so that an operation costs the same with 3 or 3000 reservations instead of
 * reading every file (as host-local does). Other processes (plugin execs, the reference host-local) change
 * the store too, always under the lock: the memo watches the directory (DirChanges, inotify) and, once it
 * holds the lock, forgets what changed since its last look before trusting the rest. Off by default: a
 * plugin exec does one operation and would only pay for the watch (rememberStores()).
 */
export class StoreMemo {
  /** the entries, as list() would read them; undefined: read them again */
  listing: Listed[] | undefined;
  readonly owners = new Map<string, Owner | { problem: string }>();

  constructor(
    readonly identity: string,
    readonly changes: DirChanges,
  ) {}

  /** Forgets everything (a change it cannot follow). */
  forget(): void {
    this.listing = undefined;
    this.owners.clear();
  }

  /** Forgets what others changed since the last look; false if the watch lost track (overflow, directory gone). */
  catchUp(): boolean {
    const changed = this.changes.take();
    if (changed === 'all') return false;
    if (changed.size > 0) this.listing = undefined;
    for (const name of changed) this.owners.delete(name);
    return true;
  }

  /** Called before the lock is released: the events of this holder's own changes, already applied, are dropped. */
  settle(): void {
    if (this.changes.take() === 'all') this.forget();
  }

  added(name: string, owner?: Owner | { problem: string }): void {
    if (this.listing && !this.listing.some((l) => l.name === name)) this.listing.push({ name, file: true });
    if (owner) this.owners.set(name, owner);
    else this.owners.delete(name);
  }

  removed(name: string): void {
    if (this.listing) this.listing = this.listing.filter((l) => l.name !== name);
    this.owners.delete(name);
  }
}

/** At most this many stores are remembered (each holds an inotify instance; the oldest is dropped). */
const MAX_REMEMBERED = 32;
let remembered: Map<string, StoreMemo> | undefined;
let openChanges: typeof DirChanges.open | undefined;

/**
 * Makes this process remember stores between operations (StoreMemo): for the agent, never for one plugin exec
 * (which would load koffi for inotify, and a host-local VERSION loads no native code at all).
 */
export async function rememberStores(): Promise<void> {
  const { DirChanges } = await import('../sys/dir-changes.js');
  openChanges ??= (dir) => DirChanges.open(dir);
  remembered ??= new Map();
}

/** The memo of the store at `dir` (whose lock the caller holds), caught up; undefined when not remembering. */
function memoFor(dir: string, identity: string): StoreMemo | undefined {
  if (remembered === undefined || openChanges === undefined) return undefined;
  const known = remembered.get(dir);
  if (known !== undefined) {
    remembered.delete(dir); // re-inserted below: the map's order is least recently used first
    if (known.identity === identity && known.catchUp()) {
      remembered.set(dir, known);
      return known;
    }
    known.changes.close();
  }
  let changes: DirChanges;
  try {
    changes = openChanges(dir);
  } catch {
    return undefined; // no inotify instance left (fs.inotify.max_user_instances): read the store as a plugin does
  }
  if (remembered.size >= MAX_REMEMBERED) {
    const [oldest, memo] = remembered.entries().next().value!;
    memo.changes.close();
    remembered.delete(oldest);
  }
  const memo = new StoreMemo(identity, changes);
  remembered.set(dir, memo);
  return memo;
}

interface Listed {
  name: string;
  file: boolean;
}

/** Operations on a store whose lock is held. Obtained only through Store.locked(). */
export class StoreTx {
  #changed = false;
  #tempSeq = 0;

  constructor(
    readonly dir: string,
    readonly memo?: StoreMemo,
  ) {}

  /** The directory's entries; `file` is true for regular files (d_type, no stat). */
  list(): Listed[] {
    if (this.memo?.listing) return [...this.memo.listing];
    const listing = fsStep('list ipam store', this.dir, () => readdirSync(this.dir, { withFileTypes: true })).map((d) => ({ name: d.name, file: d.isFile() }));
    if (this.memo) this.memo.listing = [...listing];
    return listing;
  }

  /**
   * Reservation files by canonical address text. A name that parses as an address counts even when it is
   * not canonical or not a regular file: the address is taken either way.
   */
  reservations(listing = this.list()): Map<string, Listed & { ip: Ip }> {
    const out = new Map<string, Listed & { ip: Ip }>();
    for (const l of listing) {
      const ip = tryParseIp(l.name);
      if (ip !== undefined) out.set(formatIp(ip), { ...l, ip });
    }
    return out;
  }

  /** A small regular file's content; undefined if missing, not regular, a symlink or too large. */
  read(name: string): string | undefined {
    let fd: number;
    try {
      fd = openSync(join(this.dir, name), FS.O_RDONLY | FS.O_NOFOLLOW | FS.O_NONBLOCK);
    } catch {
      return undefined;
    }
    try {
      if (!fstatSync(fd).isFile()) return undefined;
      const content = readUpTo(fd, MAX_FILE_BYTES + 1);
      return content.length > MAX_FILE_BYTES ? undefined : content.toString('utf8');
    } finally {
      closeSync(fd);
    }
  }

  /** Who holds the reservation file `name`, or the problem with it. */
  owner(name: string): Owner | { problem: string } {
    const known = this.memo?.owners.get(name);
    if (known) return known;
    const content = this.read(name);
    const owner = content === undefined ? { problem: 'not a readable regular file' } : parseOwner(content);
    this.memo?.owners.set(name, owner);
    return owner;
  }

  #writeTemp(content: string): string {
    for (;;) {
      const tmp = join(this.dir, `${TEMP_PREFIX}${process.pid}.${++this.#tempSeq}.${Math.random().toString(36).slice(2, 10)}`);
      let fd: number;
      try {
        fd = openSync(tmp, FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL | FS.O_NOFOLLOW, FILE_MODE);
      } catch (e) {
        if (errCode(e) === 'EEXIST') continue;
        throw fsFailure(e, 'write ipam store', tmp);
      }
      try {
        faultPoint('ipam-open'); // an empty temporary file exists
        writeSync(fd, content);
        fsyncSync(fd);
      } catch (e) {
        closeSync(fd);
        this.#unlink(tmp);
        throw fsFailure(e, 'write ipam store', tmp);
      }
      closeSync(fd);
      return tmp;
    }
  }

  #unlink(path: string): boolean {
    try {
      unlinkSync(path);
      return true;
    } catch (e) {
      if (errCode(e) === 'ENOENT') return false;
      throw fsFailure(e, 'remove ipam store entry', path);
    }
  }

  /** Reserves `ip` for the attachment; false if the address is already taken. */
  reserve(ip: Ip, containerId: string, ifname: string): boolean {
    if (!isValidContainerId(containerId)) throw new IpamError('ERR_IPAM_CONFIG', `invalid container ID ${JSON.stringify(containerId)}`, 'reserve', containerId);
    if (!isValidIfname(ifname)) throw new IpamError('ERR_IPAM_CONFIG', `invalid interface name ${JSON.stringify(ifname)}`, 'reserve', ifname);
    const tmp = this.#writeTemp(formatOwner(containerId, ifname));
    const name = join(this.dir, formatIp(ip));
    try {
      linkSync(tmp, name);
    } catch (e) {
      this.#unlink(tmp);
      if (errCode(e) === 'EEXIST') {
        this.memo?.forget(); // made by someone ignoring the lock: the remembered listing is stale
        return false;
      }
      throw fsFailure(e, 'reserve', name);
    }
    this.#changed = true;
    this.memo?.added(formatIp(ip), parseOwner(formatOwner(containerId, ifname)));
    // The address is reserved now: a failure before reserve() returns must give it back, or nobody would
    // (the caller releases only what reserve() reported as made).
    try {
      faultPoint('ipam-link'); // the reservation exists, and so does its temporary file
      this.#unlink(tmp);
    } catch (e) {
      this.#unlink(name);
      this.#unlink(tmp);
      throw e;
    }
    return true;
  }

  /** Removes the entry `name` (never follows a link). True if it existed. */
  remove(name: string): boolean {
    if (name.includes('/') || name === '.' || name === '..' || name === '')
      throw new IpamError('ERR_IPAM_CONFIG', `bad store entry name ${JSON.stringify(name)}`, 'remove', name);
    const gone = this.#unlink(join(this.dir, name));
    if (gone) this.#changed = true;
    if (gone) this.memo?.removed(name);
    else this.memo?.forget();
    faultPoint('ipam-remove');
    return gone;
  }

  /** The address recorded in last_reserved_ip.<rangeSet>, if readable. */
  lastReserved(rangeSet: number): Ip | undefined {
    const t = this.read(`${LAST_RESERVED_PREFIX}${rangeSet}`);
    return t === undefined ? undefined : tryParseIp(t.trim());
  }

  setLastReserved(rangeSet: number, ip: Ip): void {
    const tmp = this.#writeTemp(formatIp(ip));
    try {
      faultPoint('ipam-last'); // the new last_reserved_ip is written, not yet in place
      renameSync(tmp, join(this.dir, `${LAST_RESERVED_PREFIX}${rangeSet}`));
    } catch (e) {
      this.#unlink(tmp);
      throw fsFailure(e, 'write ipam store', join(this.dir, `${LAST_RESERVED_PREFIX}${rangeSet}`));
    }
    this.#changed = true;
    this.memo?.added(`${LAST_RESERVED_PREFIX}${rangeSet}`);
  }

  /** Removes temporary files left by a crashed netplumb process (none can be in flight: we hold the lock). */
  removeStaleTemps(listing = this.list()): number {
    let n = 0;
    for (const l of listing) if (l.name.startsWith(TEMP_PREFIX) && this.remove(l.name)) n++;
    return n;
  }

  /** fsyncs the directory if anything changed. Called by Store.locked() before the lock is released. */
  commit(): void {
    if (!this.#changed) return;
    const fd = fsStep('sync ipam store', this.dir, () => openSync(this.dir, FS.O_RDONLY | FS.O_DIRECTORY));
    try {
      fsStep('sync ipam store', this.dir, () => fsyncSync(fd));
    } finally {
      closeSync(fd);
    }
    this.#changed = false;
  }

  inspect(): StoreEntry[] {
    const out: StoreEntry[] = [];
    for (const l of this.list()) {
      const e: StoreEntry = { name: l.name, kind: 'foreign' };
      const ip = tryParseIp(l.name);
      if (l.name === LOCK_FILE) {
        e.kind = 'lock';
        if (!l.file) e.problem = 'not a regular file';
      } else if (l.name.startsWith(TEMP_PREFIX)) {
        e.kind = 'temp';
      } else if (l.name.startsWith(LAST_RESERVED_PREFIX)) {
        e.kind = 'last-reserved';
        const t = l.file ? this.read(l.name) : undefined;
        const lip = t === undefined ? undefined : tryParseIp(t);
        if (!/^[0-9]+$/.test(l.name.slice(LAST_RESERVED_PREFIX.length))) e.problem = 'bad range set index';
        else if (lip === undefined) e.problem = `content is not an address: ${JSON.stringify(t)}`;
        else if (formatIp(lip) !== t) e.problem = `address not in canonical form: ${JSON.stringify(t)}`;
        else e.ip = lip;
      } else if (ip !== undefined) {
        e.kind = 'reservation';
        e.ip = ip;
        if (formatIp(ip) !== l.name) e.problem = 'name is not the canonical form of its address';
        else if (!l.file) e.problem = 'not a regular file';
        else {
          const o = this.owner(l.name);
          if (isProblem(o)) e.problem = o.problem;
          else e.owner = o;
        }
      }
      out.push(e);
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}

/** A pause (node:timers/promises costs a few ms of start-up in every plugin exec). */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

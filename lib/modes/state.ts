/**
 * netplumb's record of attachments: which network namespace a netplumb plugin attached a container in, so
 * that netplumb-container can find a container's namespace by its ID (and undo its own bind mount at DEL
 * without CNI_NETNS), and DEL can tell whether a namespace is shared with another container.
 *
 *   /run/netplumb/attachments/<containerID>/<mode>:<network>:<ifname>     one JSON record per attachment
 *
 * The names are safe path components by construction: container IDs and network names are
 * `[a-zA-Z0-9][a-zA-Z0-9_.-]*` and interface names have no `/` (the skeleton refuses anything else), and
 * network names and interface names contain no `:`. Records live under /run because what they describe —
 * namespaces and mounts — does not survive a reboot either.
 *
 * Writes are atomic (a temporary file renamed over the record), so a record is whole or absent. Nothing is
 * followed: the directories must be real directories and the records regular files, owned by the effective
 * user and writable by no one else; anything else is CNI error 106 (unsafe state), never read as a record.
 * See docs/MODES.md for the rest.
 */
import {
  closeSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmdirSync,
  unlinkSync,
  writeSync,
  constants as fsc,
  type Stats,
} from 'node:fs';
import { CNI_ERR, CniError } from '../cni/errors.js';
import { ERR, NetplumbError } from '../errors.js';
import type { GcAttachment } from '../cni/request.js';
import { isValidContainerId, isValidNetworkName } from '../names.js';
import { readUpTo } from '../sys/read.js';
import { netnsIdOf } from './common.js';
import { parseRecordedTarget } from './target.js';

export const STATE_ROOT = '/run/netplumb';
export const ATTACHMENTS_DIR = `${STATE_ROOT}/attachments`;
/** a record is a few hundred bytes; anything bigger is not one of ours */
const MAX_RECORD_BYTES = 64 * 1024;
const TEMP_PREFIX = '.tmp-';
/** temporary files older than this are leftovers of a killed plugin (GC removes them) */
const TEMP_MAX_AGE_MS = 60_000;

export type AttachmentMode = 'none' | 'container' | 'bridge';
const MODES: readonly AttachmentMode[] = ['none', 'container', 'bridge'];

/** What netplumb-container did to join another container's namespace. */
export interface JoinState {
  /**
   * the target as it was named (lib/modes/target.ts, formatTarget): a container ID, `pid:N` or `ns:PATH`
   * (the key keeps its name: records written before the other forms existed hold a container ID)
   */
  container: string;
  /** for a process's namespace (`pid:N`, `ns:/proc/N/ns/net`): its start time, to tell a reused PID */
  pidStart?: string;
  /** `dev:ino` of the target's namespace when it was joined */
  netnsId: string;
  /** true when ADD bind-mounted the target's namespace over CNI_NETNS (DEL unmounts it) */
  mounted: boolean;
  /** `dev:ino` of the namespace the runtime had mounted on CNI_NETNS (under our mount) */
  originalNetnsId?: string;
}

export interface AttachmentRecord {
  containerId: string;
  network: string;
  ifname: string;
  mode: AttachmentMode;
  /** CNI_NETNS as given at ADD */
  netns: string;
  /** `dev:ino` of the namespace the container's network lives in (for a joined one: the target's) */
  netnsId: string;
  joined?: JoinState;
}

export interface AttachmentKey {
  containerId: string;
  network: string;
  ifname: string;
  mode: AttachmentMode;
}

/** The record key of the attachment a CNI request is about. */
export function attachmentKey(req: { containerId: string; name: string; ifname: string }, mode: AttachmentMode): AttachmentKey {
  return { containerId: req.containerId, network: req.name, ifname: req.ifname, mode };
}

const errCode = (e: unknown) => (e as NodeJS.ErrnoException | null)?.code;

function unsafe(msg: string, object: string): CniError {
  return new CniError(CNI_ERR.UNSAFE_STATE, msg, { object });
}

function euid(): number {
  return process.geteuid?.() ?? 0;
}

/** Throws 106 unless `st` is a directory (or regular file) owned by us and writable only by us. */
function checkOwned(st: Stats, path: string, want: 'directory' | 'file'): void {
  const kind = st.isSymbolicLink() ? 'a symbolic link' : st.isDirectory() ? 'a directory' : st.isFile() ? 'a regular file' : 'a special file';
  const ok = want === 'directory' ? st.isDirectory() : st.isFile();
  if (!ok) throw unsafe(`netplumb state ${path} is ${kind}, not a ${want === 'directory' ? 'directory' : 'regular file'}; refusing to use it`, path);
  if (st.uid !== euid()) throw unsafe(`netplumb state ${path} is owned by uid ${st.uid}, not ${euid()}; refusing to use it`, path);
  if ((st.mode & 0o022) !== 0)
    throw unsafe(`netplumb state ${path} is writable by group or others (mode ${(st.mode & 0o777).toString(8)}); refusing to use it`, path);
}

/** lstat + checkOwned; undefined when the directory does not exist. */
function safeDir(path: string): true | undefined {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (e) {
    if (errCode(e) === 'ENOENT') return undefined;
    throw e;
  }
  checkOwned(st, path, 'directory');
  return true;
}

function ensureDir(path: string, mode: number): void {
  try {
    mkdirSync(path, { mode });
  } catch (e) {
    if (errCode(e) !== 'EEXIST') throw e;
  }
  safeDir(path);
}

function containerDir(containerId: string): string {
  if (!isValidContainerId(containerId)) {
    throw new CniError(CNI_ERR.INVALID_NETWORK_CONFIG, `invalid container ID ${JSON.stringify(containerId)}: it must match [a-zA-Z0-9][a-zA-Z0-9_.-]*`, {
      object: 'container',
    });
  }
  return `${ATTACHMENTS_DIR}/${containerId}`;
}

function recordName(k: Pick<AttachmentKey, 'mode' | 'network' | 'ifname'>): string {
  return `${k.mode}:${k.network}:${k.ifname}`;
}

function isRecord(v: unknown): v is AttachmentRecord {
  const r = v as AttachmentRecord | null;
  if (typeof r !== 'object' || r === null) return false;
  const str = (x: unknown) => typeof x === 'string';
  if (!isValidContainerId(r.containerId) || !isValidNetworkName(r.network) || !str(r.ifname) || !MODES.includes(r.mode)) return false;
  if (!str(r.netns) || !/^\d+:\d+$/.test(r.netnsId)) return false;
  if (r.joined !== undefined) {
    const j = r.joined;
    if (typeof j !== 'object' || j === null || !parseRecordedTarget(j.container) || !/^\d+:\d+$/.test(j.netnsId) || typeof j.mounted !== 'boolean')
      return false;
    if (j.originalNetnsId !== undefined && !/^\d+:\d+$/.test(j.originalNetnsId)) return false;
    if (j.pidStart !== undefined && !/^\d+$/.test(j.pidStart)) return false;
  }
  return true;
}

/** Reads one record file without following links or blocking on a FIFO; undefined if it does not exist. */
function readRecordFile(path: string): AttachmentRecord | undefined {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (e) {
    const c = errCode(e);
    if (c === 'ENOENT') return undefined;
    if (c === 'ELOOP') throw unsafe(`netplumb state ${path} is a symbolic link; refusing to follow it`, path);
    throw e;
  }
  try {
    const st = fstatSync(fd);
    checkOwned(st, path, 'file');
    if (st.size > MAX_RECORD_BYTES) throw unsafe(`netplumb state ${path} is ${st.size} bytes, too big for a record`, path);
    let v: unknown;
    try {
      v = JSON.parse(readUpTo(fd, st.size).toString('utf8'));
    } catch {
      throw unsafe(`netplumb state ${path} is not a JSON record`, path);
    }
    if (!isRecord(v)) throw unsafe(`netplumb state ${path} is not a valid attachment record`, path);
    return v;
  } finally {
    closeSync(fd);
  }
}

/** The record of one attachment, if netplumb has one. */
export function readAttachment(k: AttachmentKey): AttachmentRecord | undefined {
  const dir = containerDir(k.containerId);
  if (!safeDir(ATTACHMENTS_DIR) || !safeDir(dir)) return undefined;
  const r = readRecordFile(`${dir}/${recordName(k)}`);
  if (r && (r.containerId !== k.containerId || r.network !== k.network || r.ifname !== k.ifname || r.mode !== k.mode)) {
    throw unsafe(`netplumb state ${dir}/${recordName(k)} describes another attachment`, `${dir}/${recordName(k)}`);
  }
  return r;
}

/** The records among the entries `names` of container directory `dir`; `tolerant` as in recordsOf. */
function recordsIn(containerId: string, dir: string, names: readonly string[], tolerant: boolean): AttachmentRecord[] {
  const out: AttachmentRecord[] = [];
  for (const n of names) {
    if (n.startsWith('.')) continue;
    let r: AttachmentRecord | undefined;
    try {
      r = readRecordFile(`${dir}/${n}`);
    } catch (e) {
      if (tolerant) continue;
      throw e;
    }
    if (r && r.containerId === containerId && recordName(r) === n) out.push(r);
  }
  return out;
}

/**
 * The records of one container. `tolerant`: an unsafe entry is skipped instead of being error 106 (when
 * looking through every container: an entry under another container's name is no record of ours, and it
 * must not make every other container's operations fail).
 */
function recordsOf(containerId: string, tolerant: boolean): AttachmentRecord[] {
  const dir = containerDir(containerId);
  let names: string[];
  try {
    if (!safeDir(ATTACHMENTS_DIR) || !safeDir(dir)) return [];
    names = readdirSync(dir).sort();
  } catch (e) {
    if (tolerant || errCode(e) === 'ENOENT') return [];
    throw e;
  }
  return recordsIn(containerId, dir, names, tolerant);
}

/** Every record of one container (any network, interface or mode); 106 if any entry is unsafe. */
export function containerAttachments(containerId: string): AttachmentRecord[] {
  return recordsOf(containerId, false);
}

/** Every record netplumb holds, unsafe entries skipped. */
export function allAttachments(): AttachmentRecord[] {
  if (!safeDir(ATTACHMENTS_DIR)) return [];
  return readdirSync(ATTACHMENTS_DIR)
    .filter(isValidContainerId)
    .sort()
    .flatMap((id) => recordsOf(id, true));
}

/** Writes (or replaces) the record of an attachment, atomically. */
export function writeAttachment(r: AttachmentRecord): void {
  if (!isRecord(r)) throw new NetplumbError(`writeAttachment: malformed record ${JSON.stringify(r)}`, { code: ERR.MALFORMED_STATE, op: 'writeAttachment' });
  const body = `${JSON.stringify(r, null, 1)}\n`;
  // A DEL of the container's last other record may remove the directory between mkdir and rename: retry.
  for (let attempt = 0; ; attempt++) {
    ensureDir(STATE_ROOT, 0o700);
    ensureDir(ATTACHMENTS_DIR, 0o700);
    const dir = containerDir(r.containerId);
    ensureDir(dir, 0o700);
    const tmp = `${dir}/${TEMP_PREFIX}${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
    try {
      const fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
      try {
        writeSync(fd, body);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, `${dir}/${recordName(r)}`);
      return;
    } catch (e) {
      try {
        unlinkSync(tmp);
      } catch {
        /* not created, or already renamed */
      }
      if (errCode(e) !== 'ENOENT' || attempt >= 5) throw e;
    }
  }
}

/** Removes the record of an attachment (nothing if there is none) and the container's directory once empty. */
export function removeAttachment(k: AttachmentKey): void {
  const dir = containerDir(k.containerId);
  if (!safeDir(ATTACHMENTS_DIR) || !safeDir(dir)) return;
  try {
    unlinkSync(`${dir}/${recordName(k)}`);
  } catch (e) {
    if (errCode(e) !== 'ENOENT') throw e;
  }
  try {
    rmdirSync(dir);
  } catch {
    /* other records (or a concurrent writer's temporary file) remain */
  }
}

/**
 * The records of `network` and `mode` whose attachment the runtime no longer lists (CNI GC), in one walk of
 * the record directories that also removes stale temporary files. Unsafe entries are skipped (not ours to
 * clean). The caller undoes what each record stands for, then removes it.
 */
export function staleAttachments(network: string, mode: AttachmentMode, valid: readonly GcAttachment[]): AttachmentRecord[] {
  if (!safeDir(ATTACHMENTS_DIR)) return [];
  const keep = new Set(valid.map((a) => `${a.containerId}\0${a.ifname}`));
  const now = Date.now();
  const stale: AttachmentRecord[] = [];
  for (const id of readdirSync(ATTACHMENTS_DIR).filter(isValidContainerId).sort()) {
    const dir = `${ATTACHMENTS_DIR}/${id}`;
    let names: string[];
    try {
      if (!safeDir(dir)) continue;
      names = readdirSync(dir).sort();
    } catch {
      continue;
    }
    for (const n of names) {
      if (!n.startsWith(TEMP_PREFIX)) continue;
      try {
        if (now - lstatSync(`${dir}/${n}`).mtimeMs > TEMP_MAX_AGE_MS) unlinkSync(`${dir}/${n}`);
      } catch {
        /* gone already */
      }
    }
    for (const r of recordsIn(id, dir, names, true)) {
      if (r.network === network && r.mode === mode && !keep.has(`${r.containerId}\0${r.ifname}`)) stale.push(r);
    }
  }
  return stale;
}

/**
 * Whether the namespace an attachment was made in is gone: its recorded file no longer exists, or names
 * another namespace now (a reused /proc/PID, a runtime's file made anew). Such an attachment is dead whatever
 * a runtime still lists (`ctr run --cni -d` never sends DEL): GC reclaims it.
 */
export function namespaceGone(r: Pick<AttachmentRecord, 'netns' | 'netnsId'>): boolean {
  try {
    return netnsIdOf(r.netns) !== r.netnsId;
  } catch {
    return true;
  }
}

/**
 * STATUS: error 50 when records could not be written (the state directory is unsafe, or /run is not
 * writable); fine when nothing exists yet.
 */
export function checkStateUsable(): void {
  try {
    for (const d of [STATE_ROOT, ATTACHMENTS_DIR]) safeDir(d);
  } catch (e) {
    throw new CniError(CNI_ERR.NOT_AVAILABLE, `cannot record attachments: ${(e as Error).message}`, { object: STATE_ROOT });
  }
}

/**
 * The three ways netplumb-container's target can be named (`container` in the configuration, or
 * NETPLUMB_CONTAINER in CNI_ARGS), as Docker's `--net=container:ID` and podman's `--net=ns:PATH` users expect:
 *
 *   "web", "id:web"                     a container netplumb attached (found through the attachment records)
 *   "1234", "pid:1234"                  the network namespace of a live process (as the plugin's /proc numbers it)
 *   "/run/netns/web", "ns:/run/netns/web"   a network namespace file: an absolute, normalised path
 *
 * The ambiguity rule: a value of digits only is always a PID, whatever records exist (so the meaning of a
 * configuration never depends on state someone else wrote); a container whose ID is all digits is named
 * `id:1234`. A value starting with `/` is always a path. A container ID never contains `:` or `/`, so the
 * prefixed forms and paths cannot be read as IDs.
 *
 * Parsing loads no native code; opening a process's or a path's namespace (openProcessNetns, openPathNetns)
 * loads lib/net/ns.js on first use. Both open the namespace once and return it open: everything after that
 * uses the descriptor, so no path is looked up twice between the checks and the mount.
 * See docs/MODES.md for the rest.
 */
import { closeSync, fstatSync, openSync, readFileSync, realpathSync, constants as fsc } from 'node:fs';
import { basename, dirname } from 'node:path';
import { CNI_ERR, CniError, invalidConfig } from '../cni/errors.js';
import { ERR } from '../errors.js';
import { isValidContainerId } from '../names.js';
import type { Netns } from '../net/ns.js';
import { netnsIdOf, nsLabel } from './common.js';

export type TargetSpec = { kind: 'container'; id: string } | { kind: 'pid'; pid: number } | { kind: 'path'; path: string };

/** The kernel's PID_MAX_LIMIT (4 × 1024 × 1024): no PID is larger. */
export const PID_MAX = 4_194_304;
/** PATH_MAX − 1 */
const PATH_MAX = 4095;
export const O_PATH = 0o10000000;
export const O_CLOEXEC = 0o2000000;

const errCode = (e: unknown) => (e as { code?: string } | null)?.code;

/** Why `p` is not an acceptable namespace path (absolute, normalised, no `.`/`..`), or undefined. */
export function nsPathProblem(p: string): string | undefined {
  if (p === '') return 'is empty';
  if (p.includes('\0')) return 'contains NUL';
  if (p.length > PATH_MAX) return `is longer than ${PATH_MAX} characters`;
  if (!p.startsWith('/')) return 'is not absolute';
  const segments = p.slice(1).split('/');
  if (segments.some((s) => s === '..')) return 'has a ".." segment';
  if (segments.some((s) => s === '.')) return 'has a "." segment';
  if (segments.some((s) => s === '')) return 'is not normalised (empty segment: "//" or a trailing "/")';
  return undefined;
}

/** The canonical text of a target, as records store it: the bare ID, `pid:N` or `ns:PATH`. */
export function formatTarget(t: TargetSpec): string {
  return t.kind === 'container' ? t.id : t.kind === 'pid' ? `pid:${t.pid}` : `ns:${t.path}`;
}

/** How a target reads in messages. */
export function describeTarget(t: TargetSpec): string {
  return t.kind === 'container' ? `container ${t.id}` : t.kind === 'pid' ? `process ${t.pid}` : `namespace file ${t.path}`;
}

/** The forms, for messages. */
const FORMS =
  'a container ID netplumb attached ("web", or "id:1234" for an all-digit ID), a PID ("1234" or "pid:1234") or an absolute namespace path ("/run/netns/web" or "ns:/run/netns/web")';

function parsePid(v: string, bad: (why: string) => CniError): TargetSpec {
  if (!/^[1-9][0-9]*$/.test(v) || Number(v) > PID_MAX)
    throw bad(`${JSON.stringify(v)} is not a PID (an integer from 1 to ${PID_MAX}, no sign, no leading zero)`);
  return { kind: 'pid', pid: Number(v) };
}

function parsePath(p: string, bad: (why: string) => CniError): TargetSpec {
  const why = nsPathProblem(p);
  if (why !== undefined) throw bad(`the namespace path ${JSON.stringify(p)} ${why}`);
  return { kind: 'path', path: p };
}

/**
 * Reads a target as the configuration (or CNI_ARGS) writes it. `where` names the key for messages. Error 7
 * for anything that is not exactly one of the forms.
 */
export function parseTarget(raw: unknown, where: string): TargetSpec {
  const bad = (why: string) => invalidConfig(`${where} must be ${FORMS}; ${why}`, where);
  if (typeof raw !== 'string') throw bad(`${JSON.stringify(raw)} is not a string`);
  const v = raw;
  if (v.startsWith('pid:')) return parsePid(v.slice(4), bad);
  if (v.startsWith('ns:')) return parsePath(v.slice(3), bad);
  if (v.startsWith('/')) return parsePath(v, bad);
  if (v.startsWith('id:')) {
    const id = v.slice(3);
    if (!isValidContainerId(id)) throw bad(`${JSON.stringify(id)} is not a container ID ([a-zA-Z0-9][a-zA-Z0-9_.-]*)`);
    return { kind: 'container', id };
  }
  // the ambiguity rule (above): digits only are a PID
  if (/^[0-9]+$/.test(v)) return parsePid(v, bad);
  if (v.includes(':')) throw bad(`${JSON.stringify(v)} has an unknown prefix "${v.slice(0, v.indexOf(':') + 1)}"`);
  if (v.includes('/')) throw bad(`${JSON.stringify(v)} is not a container ID, and as a path it is not absolute`);
  if (!isValidContainerId(v)) throw bad(`${JSON.stringify(v)} is not a container ID ([a-zA-Z0-9][a-zA-Z0-9_.-]*: no path, no traversal)`);
  return { kind: 'container', id: v };
}

/**
 * Reads a target as a record stores it (formatTarget's output), or undefined when it is not one. Unlike the
 * configuration, a bare all-digit ID is a container ID here: records never wrote a PID without `pid:`.
 */
export function parseRecordedTarget(s: unknown): TargetSpec | undefined {
  if (typeof s !== 'string') return undefined;
  if (s.startsWith('pid:') || s.startsWith('ns:')) {
    try {
      const t = parseTarget(s, 'record');
      return formatTarget(t) === s ? t : undefined;
    } catch {
      return undefined;
    }
  }
  return isValidContainerId(s) ? { kind: 'container', id: s } : undefined;
}

/** A target's namespace, open; for a process, the process's start time (to tell a reused PID later). */
export interface OpenedNetns {
  ns: Netns;
  /** the PID whose namespace this is (pid:N, or ns:/proc/N/ns/net) */
  pid?: number;
  /** field 22 of /proc/PID/stat (start time in clock ticks since boot) */
  pidStart?: string;
}

const gone = (msg: string, object: string) => new CniError(CNI_ERR.UNKNOWN_CONTAINER, msg, { object });
const notNetns = (msg: string, object: string) => new CniError(CNI_ERR.INVALID_NETNS, msg, { object });

/**
 * The network namespace of process `pid`, opened once. /proc/PID is opened first and the namespace and the
 * start time are read through that descriptor: if the process exits meanwhile (and its number is reused),
 * the lookups through the old directory fail instead of reaching the new process. Error 3 when there is no
 * such process, or it has exited (a zombie has no namespace).
 */
export async function openProcessNetns(pid: number, label = `container: process ${pid}`): Promise<OpenedNetns> {
  if (!Number.isInteger(pid) || pid <= 0 || pid > PID_MAX) throw invalidConfig(`invalid PID ${pid}`, 'container');
  const { openNetnsSync } = await import('../net/ns.js');
  let dir: number;
  try {
    dir = openSync(`/proc/${pid}`, fsc.O_RDONLY | fsc.O_DIRECTORY | O_CLOEXEC);
  } catch (e) {
    if (errCode(e) === 'ENOENT' || errCode(e) === 'ESRCH') throw gone(`${label}: there is no process ${pid}`, String(pid));
    throw e;
  }
  try {
    const exited = () => gone(`${label}: process ${pid} has exited`, String(pid));
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/fd/${dir}/stat`, 'latin1');
    } catch (e) {
      if (errCode(e) === 'ENOENT' || errCode(e) === 'ESRCH') throw exited();
      throw e;
    }
    // comm (field 2) may hold spaces and parentheses: the fields after it follow the last ')'
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = rest[0];
    const pidStart = rest[19];
    if (state === 'Z' || state === 'X' || pidStart === undefined || !/^\d+$/.test(pidStart)) throw exited();
    let ns: Netns;
    try {
      ns = openNetnsSync({ path: `/proc/self/fd/${dir}/ns/net` }, { allowCurrent: true });
    } catch (e) {
      if (errCode(e) === 'ENOENT' || errCode(e) === 'ESRCH') throw exited();
      throw e;
    }
    return { ns, pid, pidStart };
  } finally {
    closeSync(dir);
  }
}

/**
 * The network namespace at `path` (already checked by nsPathProblem), opened once:
 *   - the directories are resolved (so /var/run → /run is fine); `/proc/<pid>/ns/net` (also through
 *     /proc/self) is the process's namespace, opened as openProcessNetns does;
 *   - anything else is opened without following a final symbolic link (O_PATH|O_NOFOLLOW), must be a
 *     regular file (what a namespace file is: nsfs, bind-mounted or not), and is then reopened through that
 *     descriptor and asked its namespace type (NS_GET_NSTYPE): the file checked is the file used.
 * Error 3 when nothing is there; 8 for a symbolic link, a directory, a special file, or a file that is not a
 * network namespace.
 */
export async function openPathNetns(path: string): Promise<OpenedNetns> {
  const label = `container: namespace file ${path}`;
  let dir: string;
  try {
    dir = realpathSync(dirname(path));
  } catch (e) {
    if (errCode(e) === 'ENOENT' || errCode(e) === 'ENOTDIR') throw gone(`${label} does not exist`, path);
    throw e;
  }
  const base = basename(path);
  const proc = /^\/proc\/([1-9][0-9]*)\/ns$/.exec(dir);
  if (proc && base === 'net' && Number(proc[1]) <= PID_MAX) return openProcessNetns(Number(proc[1]), label);
  const full = dir === '/' ? `/${base}` : `${dir}/${base}`;
  let fd: number;
  try {
    fd = openSync(full, O_PATH | fsc.O_NOFOLLOW | O_CLOEXEC);
  } catch (e) {
    if (errCode(e) === 'ENOENT' || errCode(e) === 'ENOTDIR') throw gone(`${label} does not exist`, path);
    throw e;
  }
  try {
    const st = fstatSync(fd);
    if (st.isSymbolicLink()) throw notNetns(`${label} is a symbolic link; links are not followed (name the namespace file itself)`, path);
    if (st.isDirectory()) throw notNetns(`${label} is a directory, not a network namespace file`, path);
    if (!st.isFile()) throw notNetns(`${label} is a special file, not a network namespace file`, path);
    const { openNetnsSync } = await import('../net/ns.js');
    let ns: Netns;
    try {
      ns = openNetnsSync({ fd }, { allowCurrent: true });
    } catch (e) {
      if (errCode(e) === ERR.NOT_A_NETNS) throw notNetns(`${label} is not a network namespace (no network namespace is mounted on it)`, path);
      throw e;
    }
    if (ns.id !== `${st.dev}:${st.ino}`) {
      ns.close();
      throw notNetns(`${label} changed while it was opened`, path);
    }
    return { ns };
  } finally {
    closeSync(fd);
  }
}

/**
 * Error 8 when namespace `id` is the host's: the plugin's own (the runtime's) or PID 1's. Joining it would give
 * a container the host's network, which is netplumb-host's job (on purpose, with its own checks).
 */
export function refuseHostNetns(id: string, own: string, what: string, object: string): void {
  // PID 1's namespace is the machine's on a host; unreadable (another PID namespace's view), it is not compared.
  let init: string | undefined;
  try {
    init = netnsIdOf('/proc/1/ns/net');
  } catch {
    /* not readable */
  }
  if (id !== own && id !== init) return;
  const whose = id === own ? `the plugin's own, ${nsLabel(own)}` : `PID 1's, ${nsLabel(id)}`;
  throw new CniError(
    CNI_ERR.INVALID_NETNS,
    `${what} is the host's (${whose}); refusing to give a container the host's network through container mode (use netplumb-host for that)`,
    {
      object,
    },
  );
}

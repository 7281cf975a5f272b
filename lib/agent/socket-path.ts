/**
 * Claiming the agent's socket path safely. Whoever can talk to the agent can make it act as root, so the path
 * must be exactly what it claims to be:
 *
 * - its directory a real directory (not a symlink) owned by the agent's user, mode 0750, group `--group`;
 * - the socket itself no symlink, no other kind of file, not owned by another user;
 * - not answered by a live agent (a connect that succeeds); a socket nobody listens on (left by a killed agent)
 *   is stale and replaced;
 * - held for the agent's life by an exclusive lock on `PATH.lock`, so two agents starting at once cannot both
 *   decide the socket is stale.
 *
 * Every refusal is an AgentStartError with a message that names the path and what is wrong with it.
 */
import { connect } from 'node:net';
import { chmodSync, chownSync, closeSync, constants as fsc, lstatSync, mkdirSync, openSync, unlinkSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { ERR, NetplumbError } from '../errors.js';
import { flockSync, LOCK_EX, LOCK_NB } from '../sys/libc.js';

/** A refusal to start: `object` is the path, the code ERR_UNSAFE_PATH (what it is is wrong) or ERR_IN_USE (another agent has it). */
export class AgentStartError extends NetplumbError {
  constructor(message: string, object: string, code: string = ERR.UNSAFE_PATH) {
    super(message, { code, op: 'netplumbd start', object });
  }
}

function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Resolves true when something accepts a connection on the Unix socket `path` (bounded by `timeoutMs`). */
export function answers(path: string, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (v: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve(v);
    };
    // A listener whose backlog is full does not answer in time: count it as alive (never steal its path).
    const t = setTimeout(() => done(true), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code === 'EAGAIN'));
  });
}

function ensureDirectory(dir: string, gid: number): void {
  const euid = process.geteuid!();
  let st = lstatOrUndefined(dir);
  if (st === undefined) {
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    st = lstatSync(dir);
  }
  if (st.isSymbolicLink()) throw new AgentStartError(`socket directory ${dir} is a symbolic link; refusing to start`, dir);
  if (!st.isDirectory()) throw new AgentStartError(`socket directory ${dir} is not a directory; refusing to start`, dir);
  if (st.uid !== euid) throw new AgentStartError(`socket directory ${dir} is owned by uid ${st.uid}, not ${euid}; refusing to start`, dir);
  chownSync(dir, euid, gid);
  chmodSync(dir, 0o750);
}

/** A claimed socket path: the lock is held until release(). */
export interface ClaimedPath {
  path: string;
  /** after listen(): the socket file's owner and mode (0660 root:group) */
  protect(): void;
  /** removes the socket (if it is still ours) and drops the lock */
  release(): void;
}

/** Checks and claims `path` for an agent serving group `gid` (undefined: root only). */
export async function claimSocketPath(path: string, gid: number | undefined): Promise<ClaimedPath> {
  const euid = process.geteuid!();
  const group = gid ?? process.getegid!();
  ensureDirectory(dirname(path), group);
  const lockPath = `${path}.lock`;
  const lockStat = lstatOrUndefined(lockPath);
  if (lockStat !== undefined && (!lockStat.isFile() || lockStat.uid !== euid)) {
    throw new AgentStartError(`${lockPath} is not a regular file owned by uid ${euid}; refusing to start`, lockPath);
  }
  const lockFd = openSync(lockPath, fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600);
  try {
    flockSync(lockFd, LOCK_EX | LOCK_NB, lockPath);
  } catch {
    closeSync(lockFd);
    throw new AgentStartError(`another agent holds ${lockPath}: ${path} is in use; refusing to start`, path, ERR.IN_USE);
  }
  try {
    const st = lstatOrUndefined(path);
    if (st !== undefined) {
      if (st.isSymbolicLink()) throw new AgentStartError(`socket path ${path} is a symbolic link; refusing to start`, path);
      if (!st.isSocket()) throw new AgentStartError(`socket path ${path} exists and is not a socket; refusing to start`, path);
      if (st.uid !== euid) throw new AgentStartError(`socket ${path} is owned by uid ${st.uid}, not ${euid}; refusing to start`, path);
      if (await answers(path)) throw new AgentStartError(`an agent already answers on ${path}; refusing to start`, path, ERR.IN_USE);
      unlinkSync(path); // stale: left by an agent that was killed
    }
  } catch (e) {
    closeSync(lockFd);
    throw e;
  }
  let ino: number | undefined;
  return {
    path,
    protect() {
      chownSync(path, euid, group);
      chmodSync(path, 0o660);
      ino = lstatSync(path).ino;
    },
    release() {
      try {
        if (lstatOrUndefined(path)?.ino === ino) unlinkSync(path);
      } finally {
        closeSync(lockFd);
      }
    },
  };
}

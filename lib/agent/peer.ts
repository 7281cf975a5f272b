/**
 * Who is on the other end of a connection, and whether the agent serves them. The kernel records a Unix
 * socket peer's pid, uid and gid at connect(2) (SO_PEERCRED); nothing the peer sends can change them.
 *
 * - Allowed: uid 0, or a process whose primary or supplementary groups include the agent's group (`--group`).
 *   The socket's mode (0660 root:group) already keeps everyone else from connecting; this check is the second
 *   wall, for a socket whose mode someone loosened or a descriptor passed to someone else.
 * - Served here: a peer in the agent's own network and user namespaces, whose paths (CNI_NETNS, the IPAM store)
 *   mean what they mean for the agent: the same mount namespace, or one with the same view of those paths
 *   (sameView). The host side of an attachment must be built where the runtime expects it; a caller elsewhere is
 *   answered "misdirected" and its forwarder runs the plugin in process.
 */
import { lstatSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { ERR, NetplumbError } from '../errors.js';
import { peerCredentials, type PeerCredentials } from '../sys/libc.js';

export interface Peer extends PeerCredentials {
  /** supplementary groups of the peer process (from /proc/PID/status), empty if it is gone */
  groups: number[];
  /** the peer's effective capabilities (CapEff from /proc/PID/status), 0 if it is gone */
  capEff: bigint;
  /** the peer shares the agent's network and user namespaces */
  sameNamespaces: boolean;
  /** the peer shares the agent's mount namespace (else paths are compared one by one: sameView) */
  sameMountNamespace: boolean;
}

/** Resolves a group name (or a decimal gid) through /etc/group; throws for an unknown name. */
export function groupId(name: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [n, , gid] = line.split(':');
    if (n === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new NetplumbError(`no group named ${JSON.stringify(name)} in /etc/group`, { code: ERR.NOT_FOUND, op: 'group', object: name });
}

function statusOf(pid: number): { groups: number[]; capEff: bigint } {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const g = /^Groups:\s*([\d ]*)$/m.exec(text);
    const c = /^CapEff:\s*([0-9a-f]+)$/m.exec(text);
    return { groups: g ? g[1]!.trim().split(/\s+/).filter(Boolean).map(Number) : [], capEff: c ? BigInt(`0x${c[1]}`) : 0n };
  } catch {
    return { groups: [], capEff: 0n };
  }
}

function nsId(path: string): string | undefined {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

const NAMESPACES = ['net', 'user'] as const;
const own = new Map(NAMESPACES.map((n) => [n, nsId(`/proc/self/ns/${n}`)]));
const ownMnt = nsId('/proc/self/ns/mnt');

/**
 * The peer of the connected Unix socket `fd`. A pid of 0 (a peer in a PID namespace the agent cannot see)
 * or a process already gone counts as "not in our namespaces".
 */
export function peerOf(fd: number): Peer {
  const c = peerCredentials(fd);
  const same = c.pid > 0 && NAMESPACES.every((n) => own.get(n) !== undefined && nsId(`/proc/${c.pid}/ns/${n}`) === own.get(n));
  const sameMnt = c.pid > 0 && ownMnt !== undefined && nsId(`/proc/${c.pid}/ns/mnt`) === ownMnt;
  return { ...c, ...(c.pid > 0 ? statusOf(c.pid) : { groups: [], capEff: 0n }), sameNamespaces: same, sameMountNamespace: sameMnt };
}

/**
 * Whether every path in `paths` names the same file for the peer as for the agent: when their mount namespaces
 * differ (systemd's ProtectSystem= gives the agent a private one with the same view), a request is served only
 * if what it names — CNI_NETNS, the IPAM store — is the same object in both views (through /proc/PID/root,
 * which resolves in the peer's mount namespace). A path that exists in neither view is the same (nothing).
 */
export function sameView(peer: Peer, paths: readonly string[]): boolean {
  if (peer.sameMountNamespace) return true;
  if (peer.pid <= 0) return false;
  const root = `/proc/${peer.pid}/root`;
  return paths.every((p) => p.startsWith('/') && nsId(`${root}${resolveUnder(root, p)}`) === nsId(p));
}

/**
 * `path` with its symlinks resolved inside `root` (an absolute link restarts at `root`, not at the agent's own
 * root, which is where the kernel would take it). Under /proc the rest is left to the kernel: its links to
 * namespaces are no paths, and /proc/PID/root/proc is the peer's own proc.
 */
function resolveUnder(root: string, path: string): string {
  let rest = path.split('/').filter(Boolean);
  let done: string[] = [];
  for (let links = 0; rest.length > 0;) {
    const part = rest.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const next = [...done, part];
    if (next[0] === 'proc') return `/${[...next, ...rest].join('/')}`;
    let target: string | undefined;
    try {
      target = lstatSync(`${root}/${next.join('/')}`).isSymbolicLink() ? readlinkSync(`${root}/${next.join('/')}`) : undefined;
    } catch {
      return `/${[...next, ...rest].join('/')}`; // absent: compared as absent
    }
    if (target === undefined) {
      done = next;
      continue;
    }
    if (++links > 40) return `/${[...next, ...rest].join('/')}`; // ELOOP for both
    if (target.startsWith('/')) done = [];
    rest = [...target.split('/').filter(Boolean), ...rest];
  }
  return `/${done.join('/')}`;
}

const ownCapEff = statusOf(process.pid).capEff;

/**
 * A uid-0 peer holding fewer capabilities than the agent (a root whose capabilities were dropped): the agent
 * must not lend it its own — it could then open namespaces or change things the caller cannot — so such a
 * caller runs the plugin in process, with what it has.
 */
export function isDiminishedRoot(peer: Peer): boolean {
  return peer.uid === 0 && (peer.capEff & ownCapEff) !== ownCapEff;
}

/** Whether `peer` may use the agent: root, or a member of group `gid` (undefined: root only). */
export function isAllowed(peer: Peer, gid: number | undefined): boolean {
  if (peer.uid === 0) return true;
  if (gid === undefined) return false;
  return peer.gid === gid || peer.groups.includes(gid);
}

/**
 * Who is on the other end of a connection, and whether the agent serves them. The kernel records a Unix
 * socket peer's pid, uid and gid at connect(2) (SO_PEERCRED); nothing the peer sends can change them.
 *
 * - Allowed: uid 0, or a process whose primary or supplementary groups include the agent's group (`--group`).
 *   The socket's mode (0660 root:group) already keeps everyone else from connecting; this check is the second
 *   wall, for a socket whose mode someone loosened or a descriptor passed to someone else.
 * - Served here: a peer in the agent's own network, mount and user namespaces. The host side of an attachment must be
 *   built where the runtime expects it, and paths (CNI_NETNS, the IPAM store) mean what they mean in the
 *   caller's mount namespace; a caller elsewhere is answered "misdirected" and its forwarder runs the plugin in
 *   process.
 */
import { readFileSync, statSync } from 'node:fs';
import { peerCredentials, type PeerCredentials } from '../sys/libc.js';

export interface Peer extends PeerCredentials {
  /** supplementary groups of the peer process (from /proc/PID/status), empty if it is gone */
  groups: number[];
  /** the peer's effective capabilities (CapEff from /proc/PID/status), 0 if it is gone */
  capEff: bigint;
  /** the peer shares the agent's network and mount namespaces */
  sameNamespaces: boolean;
}

/** Resolves a group name (or a decimal gid) through /etc/group; throws for an unknown name. */
export function groupId(name: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [n, , gid] = line.split(':');
    if (n === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new Error(`no group named ${JSON.stringify(name)} in /etc/group`);
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

const NAMESPACES = ['net', 'mnt', 'user'] as const;
const own = new Map(NAMESPACES.map((n) => [n, nsId(`/proc/self/ns/${n}`)]));

/**
 * The peer of the connected Unix socket `fd`. A pid of 0 (a peer in a PID namespace the agent cannot see)
 * or a process already gone counts as "not in our namespaces".
 */
export function peerOf(fd: number): Peer {
  const c = peerCredentials(fd);
  const same = c.pid > 0 && NAMESPACES.every((n) => own.get(n) !== undefined && nsId(`/proc/${c.pid}/ns/${n}`) === own.get(n));
  return { ...c, ...(c.pid > 0 ? statusOf(c.pid) : { groups: [], capEff: 0n }), sameNamespaces: same };
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

/**
 * Who is on the other end of a connection, and whether the agent serves them. The kernel records a Unix
 * socket peer's pid, uid and gid at connect(2) (SO_PEERCRED); nothing the peer sends can change them.
 *
 * - Allowed: uid 0, or a process whose primary or supplementary groups include the agent's group (`--group`).
 *   The socket's mode (0660 root:group) already keeps everyone else from connecting; this check is the second
 *   wall, for a socket whose mode someone loosened or a descriptor passed to someone else.
 * - Served here: a peer in the agent's own network and mount namespaces. The host side of an attachment must be
 *   built where the runtime expects it, and paths (CNI_NETNS, the IPAM store) mean what they mean in the
 *   caller's mount namespace; a caller elsewhere is answered "misdirected" and its forwarder runs the plugin in
 *   process.
 */
import { readFileSync, statSync } from 'node:fs';
import { peerCredentials, type PeerCredentials } from '../sys/libc.js';

export interface Peer extends PeerCredentials {
  /** supplementary groups of the peer process (from /proc/PID/status), empty if it is gone */
  groups: number[];
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

function supplementaryGroups(pid: number): number[] {
  try {
    const m = /^Groups:\s*([\d ]*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? m[1]!.trim().split(/\s+/).filter(Boolean).map(Number) : [];
  } catch {
    return [];
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

const own = { net: nsId('/proc/self/ns/net'), mnt: nsId('/proc/self/ns/mnt') };

/**
 * The peer of the connected Unix socket `fd`. A pid of 0 (a peer in a PID namespace the agent cannot see)
 * or a process already gone counts as "not in our namespaces".
 */
export function peerOf(fd: number): Peer {
  const c = peerCredentials(fd);
  const same =
    c.pid > 0 && own.net !== undefined && own.mnt !== undefined && nsId(`/proc/${c.pid}/ns/net`) === own.net && nsId(`/proc/${c.pid}/ns/mnt`) === own.mnt;
  return { ...c, groups: c.pid > 0 ? supplementaryGroups(c.pid) : [], sameNamespaces: same };
}

/** Whether `peer` may use the agent: root, or a member of group `gid` (undefined: root only). */
export function isAllowed(peer: Peer, gid: number | undefined): boolean {
  if (peer.uid === 0) return true;
  if (gid === undefined) return false;
  return peer.gid === gid || peer.groups.includes(gid);
}

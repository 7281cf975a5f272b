/**
 * netplumb-container: Docker's `--net=container:<id>`. The container joins the network stack of a container
 * that netplumb attached: same interfaces, same addresses, same 127.0.0.1. The target is named by `container` in
 * the configuration, or per invocation by `NETPLUMB_CONTAINER=<id>` in CNI_ARGS (which wins), and found through
 * netplumb's attachment records (lib/modes/state.ts): the recorded namespace path must still open to the
 * recorded namespace (same inode), and that namespace must not be the host's.
 *
 * A runtime creates a namespace for every container before it calls CNI and starts the container in whatever
 * CNI_NETNS names afterwards. So ADD makes CNI_NETNS name the target's namespace:
 *   - CNI_NETNS already is the target's namespace (the runtime passed the target's path): nothing to do;
 *   - CNI_NETNS is a bind-mounted namespace file in /run/netns (what `ip netns add`, podman and containerd
 *     create), whose namespace has no interface but lo: the target's namespace is bind-mounted on top of it.
 *     The runtime's own namespace stays underneath, unchanged, and comes back when DEL unmounts ours;
 *   - anything else (a /proc/PID/ns/net of a running process, a symlink, a namespace that already has
 *     interfaces of another network) is refused (8): it cannot be made to join, or joining would hide a network.
 *
 *   ADD    as above (7 with a prevResult; 121 if this attachment already joined another container); records the
 *          attachment before mounting, so that DEL and GC can undo a half-done ADD; Result: the target's
 *          interfaces (all but loopback) and addresses, and its default routes, each interface's sandbox being
 *          CNI_NETNS. It creates no interface and changes nothing in the shared namespace.
 *   CHECK  the attachment is recorded, joined the configured target, CNI_NETNS is the namespace it joined, and
 *          the target's namespace is still that one (120 otherwise).
 *   DEL    unmounts the bind mount ADD made — only if it is still the topmost mount on the recorded path and it
 *          is the target's namespace — and forgets the attachment. Never touches the shared interfaces.
 *          Idempotent; works with CNI_NETNS empty or vanished (the record names the path).
 *   GC     does what DEL does for every attachment of this network the runtime no longer lists.
 *   STATUS ready unless attachments cannot be recorded (50).
 */
import { closeSync, fstatSync, lstatSync, openSync, readFileSync, realpathSync, constants as fsc } from 'node:fs';
import { basename, dirname } from 'node:path';
import { cniArgsValues } from '../cni/env.js';
import { CNI_ERR, CniError, invalidConfig } from '../cni/errors.js';
import { withRollback } from '../cni/ipam.js';
import type { CniRequest } from '../cni/request.js';
import type { CniPlugin } from '../cni/skeleton.js';
import { isValidContainerId } from '../ipam/names.js';
import type { Netns } from '../net/ns.js';
import { MODES_ERR, netnsIdOf, nsLabel, refusePrevResult } from './common.js';
import {
  ATTACHMENTS_DIR, checkStateUsable, containerAttachments, readAttachment, removeAttachment, staleAttachments, writeAttachment,
  type AttachmentKey, type AttachmentRecord,
} from './state.js';

type Sys = typeof import('../net/ns.js') & typeof import('../sys/libc.js');
let loading: Promise<Sys> | undefined;
/** koffi (mount, namespaces), loaded by the verbs that need it: VERSION and STATUS start without it */
function sys(): Promise<Sys> {
  loading ??= Promise.all([import('../net/ns.js'), import('../sys/libc.js')]).then(([ns, libc]) => ({ ...ns, ...libc }));
  return loading;
}

/** Where runtimes keep bind-mounted namespace files (`/var/run` is normally a link to `/run`). */
const NETNS_DIRS = ['/run/netns', '/var/run/netns'];
const O_PATH = 0o10000000;
const O_CLOEXEC = 0o2000000;
/** the CNI_ARGS key that names the target per invocation */
export const TARGET_ARG = 'NETPLUMB_CONTAINER';

const key = (req: Pick<CniRequest, 'containerId' | 'name' | 'ifname'>): AttachmentKey => ({
  containerId: req.containerId,
  network: req.name,
  ifname: req.ifname,
  mode: 'container',
});
const errCode = (e: unknown) => (e as { code?: string } | null)?.code;

/** The target's container ID: CNI_ARGS NETPLUMB_CONTAINER, else the configuration's `container`. */
export function targetOf(req: CniRequest): string {
  const fromArgs = cniArgsValues(req.args, [TARGET_ARG]).get(TARGET_ARG);
  const raw: unknown = fromArgs ?? req.config.container;
  const where = fromArgs !== undefined ? `CNI_ARGS ${TARGET_ARG}` : '"container"';
  if (raw === undefined || raw === null || raw === '') {
    throw invalidConfig(`netplumb-container needs the container to join: "container" in the configuration or ${TARGET_ARG}=<id> in CNI_ARGS`, 'container');
  }
  if (typeof raw !== 'string' || !isValidContainerId(raw)) {
    throw invalidConfig(`${where} must be the ID of a container netplumb attached ([a-zA-Z0-9][a-zA-Z0-9_.-]*), not ${JSON.stringify(raw)}`, 'container');
  }
  if (raw === req.containerId) throw invalidConfig(`container ${raw} cannot join its own network`, 'container');
  return raw;
}

/**
 * Opens the network namespace of container `id` through netplumb's records: a recorded path that still
 * opens to the recorded namespace. Error 3 when there is none; 8 when it is the host's namespace.
 */
export async function openTarget(id: string): Promise<{ ns: Netns; record: AttachmentRecord }> {
  const { openNetns, currentNetnsId } = await sys();
  const records = containerAttachments(id);
  if (records.length === 0) {
    throw new CniError(CNI_ERR.UNKNOWN_CONTAINER, `container ${id} has no network attached by netplumb (nothing recorded in ${ATTACHMENTS_DIR}/${id}); netplumb-container joins only containers a netplumb plugin attached`, {
      object: id,
    });
  }
  const seen: string[] = [];
  for (const record of records) {
    let ns: Netns;
    try {
      ns = openNetns({ path: record.netns }, { allowCurrent: true });
    } catch (e) {
      seen.push(`${record.netns}: ${errCode(e) ?? (e as Error).message}`);
      continue;
    }
    if (ns.id !== record.netnsId) {
      seen.push(`${record.netns} is now ${nsLabel(ns.id)}, not ${nsLabel(record.netnsId)}`);
      ns.close();
      continue;
    }
    if (ns.id === currentNetnsId()) {
      ns.close();
      throw new CniError(CNI_ERR.INVALID_NETNS, `container ${id}'s network namespace (${record.netns}) is the host's; refusing to give a container the host's network through container mode (use netplumb-host for that)`, {
        object: id,
      });
    }
    return { ns, record };
  }
  throw new CniError(CNI_ERR.UNKNOWN_CONTAINER, `container ${id}'s network namespace is gone (${seen.join('; ')})`, { object: id });
}

interface MountEntry {
  id: number;
  parent: number;
  /** for a namespace file: `net:[inode]` */
  root: string;
}

const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The mounts stacked on `path` (a canonical path), bottom first. */
function mountsAt(path: string): MountEntry[] {
  const all: MountEntry[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f.length < 5 || unescape(f[4]!) !== path) continue;
    all.push({ id: Number(f[0]), parent: Number(f[1]), root: unescape(f[3]!) });
  }
  // each mount on the same point sits on the one below it: order by following the parents
  const ordered: MountEntry[] = [];
  let below = all.find((m) => !all.some((x) => x.id === m.parent));
  while (below && ordered.length < all.length) {
    ordered.push(below);
    const cur: MountEntry = below;
    below = all.find((m) => m.parent === cur.id);
  }
  return ordered;
}

const inodeOf = (id: string) => id.split(':')[1];

/** `path` with its directory resolved: what mountinfo lists. Undefined if the directory is gone. */
function canonical(path: string): string | undefined {
  try {
    return `${realpathSync(dirname(path))}/${basename(path)}`;
  } catch {
    return undefined;
  }
}

/**
 * Why CNI_NETNS cannot get the target's namespace mounted on it, or undefined when it can: it must be a file
 * (not a link) directly in a netns directory with a namespace bind-mounted on it.
 */
function notJoinable(path: string): string | undefined {
  const c = canonical(path);
  if (c === undefined || !NETNS_DIRS.includes(dirname(c))) return `it is not a namespace file in ${NETNS_DIRS.join(' or ')}`;
  const st = lstatSync(path);
  if (st.isSymbolicLink()) return 'it is a symbolic link, not a bind-mounted namespace file';
  if (!st.isFile()) return 'it is not a bind-mounted namespace file';
  if (mountsAt(c).length === 0) return 'nothing is mounted on it';
  return undefined;
}

/** Bind-mounts the namespace open at `ns` on the file at `path`, which must still be namespace `expectId`. */
function mountOver({ mount, MS_BIND }: Sys, ns: Netns, path: string, expectId: string): void {
  const fd = openSync(path, O_PATH | fsc.O_NOFOLLOW | O_CLOEXEC);
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || `${st.dev}:${st.ino}` !== expectId) {
      throw new CniError(CNI_ERR.INVALID_NETNS, `CNI_NETNS ${path} changed while joining (now ${st.isFile() ? nsLabel(`${st.dev}:${st.ino}`) : 'not a file'})`, { object: path });
    }
    // through the descriptors: exactly the namespace and the file that were checked, whatever the paths do meanwhile
    mount(`/proc/self/fd/${ns.fd}`, `/proc/self/fd/${fd}`, null, MS_BIND);
  } finally {
    closeSync(fd);
  }
}

/**
 * Unmounts the top mount on `path` when it is the namespace `targetId` stacked on another mount (what ADD
 * made). Returns what it did, for logs.
 */
function unmountJoin({ umount2, MNT_DETACH, UMOUNT_NOFOLLOW }: Sys, path: string, targetId: string): 'unmounted' | 'not mounted' {
  const c = canonical(path);
  if (c === undefined) return 'not mounted';
  try {
    if (lstatSync(path).isSymbolicLink()) return 'not mounted';
  } catch {
    return 'not mounted';
  }
  const stack = mountsAt(c);
  const top = stack[stack.length - 1];
  if (stack.length < 2 || top?.root !== `net:[${inodeOf(targetId)}]`) return 'not mounted';
  try {
    umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW);
  } catch (e) {
    if (errCode(e) === 'EINVAL' || errCode(e) === 'ENOENT') return 'not mounted';
    throw e;
  }
  return 'unmounted';
}

/** Undoes what ADD did for one record (DEL, GC, rollback). */
async function undoJoin(r: AttachmentRecord): Promise<void> {
  if (r.joined?.mounted) unmountJoin(await sys(), r.netns, r.joined.netnsId);
}

export const containerPlugin: CniPlugin = {
  name: 'netplumb-container',
  about: 'netplumb-container: join another container\'s network stack (Docker\'s --net=container:<id>)',
  netns: 'foreign',
  capabilities: ['CAP_SYS_ADMIN'],

  async add(req) {
    const target = targetOf(req);
    refusePrevResult(req, 'netplumb-container');
    const prior = readAttachment(key(req));
    if (prior?.joined && prior.joined.container !== target) {
      throw new CniError(MODES_ERR.ALREADY_JOINED, `${req.containerId}/${req.ifname} on network "${req.name}" already joined container ${prior.joined.container}; DEL it before joining ${target}`, {
        object: req.containerId,
      });
    }
    const s = await sys();
    const { ns } = await openTarget(target);
    try {
      const currentId = netnsIdOf(req.netns);
      await withRollback(async (undo) => {
        if (currentId === ns.id) {
          // already the target's namespace: by the runtime, or by an earlier ADD of this attachment
          writeAttachment({ ...key(req), netns: req.netns, netnsId: ns.id, joined: { container: target, netnsId: ns.id, mounted: prior?.joined?.mounted ?? false, ...(prior?.joined?.originalNetnsId ? { originalNetnsId: prior.joined.originalNetnsId } : {}) } });
          return;
        }
        const why = notJoinable(req.netns);
        if (why !== undefined) {
          throw new CniError(CNI_ERR.INVALID_NETNS, `CNI_NETNS ${req.netns} cannot be made to join container ${target}: ${why}; give the runtime's namespace file in /run/netns, or the target's namespace itself`, {
            object: req.netns,
          });
        }
        const [{ openHandle }, { listLinks }] = await Promise.all([import('../net/handle.js'), import('../net/link.js')]);
        const own = openHandle({ path: req.netns });
        try {
          const others = (await listLinks(own)).filter((l) => l.kind !== 'loopback').map((l) => l.name);
          if (others.length > 0) {
            throw new CniError(CNI_ERR.INVALID_NETNS, `CNI_NETNS ${req.netns} already has interfaces (${others.join(', ')}) of another network; joining container ${target} would hide them`, {
              object: req.netns,
            });
          }
        } finally {
          own.close();
        }
        const rec: AttachmentRecord = { ...key(req), netns: req.netns, netnsId: ns.id, joined: { container: target, netnsId: ns.id, mounted: true, originalNetnsId: currentId } };
        // recorded before mounting, so that DEL or GC finds a mount left by a plugin killed halfway
        writeAttachment(rec);
        undo.push('forget the attachment', () => removeAttachment(key(req)));
        mountOver(s, ns, req.netns, currentId);
        undo.push(`unmount container ${target}'s namespace from ${req.netns}`, () => undoJoin(rec));
        const now = netnsIdOf(req.netns);
        if (now !== ns.id) {
          throw new CniError(999, `CNI_NETNS ${req.netns} is ${nsLabel(now)} after mounting ${nsLabel(ns.id)} on it`, { object: req.netns });
        }
      });
      const [{ openHandle }, { describeNamespace }] = await Promise.all([import('../net/handle.js'), import('./describe.js')]);
      const h = openHandle(ns);
      try {
        return { cniVersion: req.cniVersion, ...(await describeNamespace(h, req.netns)) };
      } finally {
        h.close();
      }
    } finally {
      ns.close();
    }
  },

  async check(req) {
    const target = targetOf(req);
    const rec = readAttachment(key(req));
    const fail = (msg: string) => new CniError(MODES_ERR.CHECK_FAILED, `CHECK of ${req.containerId}/${req.ifname} on network "${req.name}": ${msg}`, { object: req.netns });
    if (!rec?.joined) throw fail('no attachment is recorded (was ADD run?)');
    if (rec.joined.container !== target) throw fail(`it joined container ${rec.joined.container}, not ${target}`);
    const now = netnsIdOf(req.netns);
    if (now !== rec.joined.netnsId) throw fail(`CNI_NETNS ${req.netns} is ${nsLabel(now)}, not container ${target}'s ${nsLabel(rec.joined.netnsId)}`);
    let targetNow: string;
    try {
      const t = await openTarget(target);
      targetNow = t.ns.id;
      t.ns.close();
    } catch (e) {
      throw fail(`container ${target}: ${(e as Error).message}`);
    }
    if (targetNow !== rec.joined.netnsId) throw fail(`container ${target} now has namespace ${nsLabel(targetNow)}; this container still has its old one ${nsLabel(rec.joined.netnsId)}`);
  },

  async del(req) {
    const rec = readAttachment(key(req));
    if (!rec) return;
    await undoJoin(rec);
    removeAttachment(key(req));
  },

  async gc(req) {
    for (const r of staleAttachments(req.name, 'container', req.validAttachments ?? [])) {
      await undoJoin(r);
      removeAttachment(r);
    }
  },

  async status() {
    checkStateUsable();
  },
};

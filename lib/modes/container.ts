/**
 * netplumb-container: Docker's `--net=container:<id>` and podman's `--net=ns:PATH`. The container joins the
 * network stack of another: same interfaces, same addresses, same 127.0.0.1. The target is named by
 * `container` in the configuration, or per invocation by `NETPLUMB_CONTAINER` in CNI_ARGS (which wins), in one
 * of three forms (lib/modes/target.ts): a container netplumb attached (`web`, `id:web`), found through the
 * attachment records (lib/modes/state.ts) — the recorded namespace path must still open to the recorded
 * namespace (same inode); a live process (`1234`, `pid:1234`); or a network namespace file (`/run/netns/web`,
 * `ns:/run/netns/web`). Whatever the form, the target's namespace is opened once and used through that
 * descriptor; it must not be the host's (the plugin's own, or PID 1's: 8) nor be named by CNI_NETNS itself (7).
 *
 * A runtime creates a namespace for every container before it calls CNI and starts the container in whatever
 * CNI_NETNS names afterwards. So ADD makes CNI_NETNS name the target's namespace:
 *   - CNI_NETNS already is the target's namespace (the runtime passed the target's path, and the target is
 *     named otherwise): nothing to do;
 *   - CNI_NETNS is a bind-mounted namespace file in /run/netns (what `ip netns add`, podman and containerd
 *     create), whose namespace has no interface but lo: the target's namespace is bind-mounted on top of it.
 *     The runtime's own namespace stays underneath, unchanged, and comes back when DEL unmounts ours;
 *   - anything else (a /proc/PID/ns/net of a running process, a symlink, a namespace that already has
 *     interfaces of another network) is refused (8): it cannot be made to join, or joining would hide a network.
 *
 *   ADD    as above (7 with a prevResult; 121 if this attachment already joined another target, or the same one
 *          when it had another namespace); records the
 *          attachment before mounting, so that DEL and GC can undo a half-done ADD; Result: the target's
 *          interfaces (all but loopback) and addresses, and its default routes, each interface's sandbox being
 *          CNI_NETNS. It creates no interface and changes nothing in the shared namespace.
 *   CHECK  the attachment is recorded, joined the configured target, CNI_NETNS is the namespace it joined, and
 *          the target's namespace is still that one, by inode — for a process, the same process, still alive
 *          (120 otherwise).
 *   DEL    unmounts the bind mount ADD made — only if it is still the topmost mount on the recorded path and it
 *          is the target's namespace — and forgets the attachment. Never touches the shared interfaces.
 *          Idempotent; works with CNI_NETNS empty or vanished (the record names the path).
 *   GC     does what DEL does for every attachment of this network the runtime no longer lists.
 *   STATUS ready unless attachments cannot be recorded (50).
 * See docs/MODES.md for the rest.
 */
import { closeSync, fstatSync, lstatSync, openSync, readFileSync, realpathSync, constants as fsc } from 'node:fs';
import { basename, dirname } from 'node:path';
import { cniArgsValues } from '../cni/env.js';
import { CNI_ERR, CniError, invalidConfig } from '../cni/errors.js';
import type { CniRequest } from '../cni/request.js';
import type { CniPlugin } from '../cni/skeleton.js';
import type { CniResult } from '../cni/types.js';
import type { Netns } from '../net/ns.js';
import { netnsIdOf, nsLabel, refusePrevResult } from './common.js';
import { runSteps, type UndoStack } from './steps.js';
import {
  describeTarget,
  formatTarget,
  O_CLOEXEC,
  O_PATH,
  openPathNetns,
  openProcessNetns,
  parseRecordedTarget,
  parseTarget,
  refuseHostNetns,
  type OpenedNetns,
  type TargetSpec,
} from './target.js';
import {
  ATTACHMENTS_DIR,
  attachmentKey,
  checkStateUsable,
  containerAttachments,
  readAttachment,
  removeAttachment,
  staleAttachments,
  writeAttachment,
  type AttachmentKey,
  type AttachmentRecord,
  type JoinState,
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
/** the CNI_ARGS key that names the target per invocation */
export const TARGET_ARG = 'NETPLUMB_CONTAINER';

const key = (req: Pick<CniRequest, 'containerId' | 'name' | 'ifname'>): AttachmentKey => attachmentKey(req, 'container');
const errCode = (e: unknown) => (e as { code?: string } | null)?.code;
/** How a recorded target reads in messages. */
const recordedLabel = (s: string) => {
  const t = parseRecordedTarget(s);
  return t ? describeTarget(t) : s;
};

/** The target: CNI_ARGS NETPLUMB_CONTAINER, else the configuration's `container` (error 7 naming the key). */
export function targetOf(req: CniRequest): TargetSpec {
  const fromArgs = cniArgsValues(req.args, [TARGET_ARG]).get(TARGET_ARG);
  const raw: unknown = fromArgs ?? req.config.container;
  const where = fromArgs !== undefined ? `CNI_ARGS ${TARGET_ARG}` : '"container"';
  if (raw === undefined || raw === null || raw === '') {
    throw invalidConfig(
      `netplumb-container needs the container to join: "container" in the configuration or ${TARGET_ARG}=<ID|PID|path> in CNI_ARGS`,
      'container',
    );
  }
  const t = parseTarget(raw, where);
  if (t.kind === 'container' && t.id === req.containerId) throw invalidConfig(`container ${t.id} cannot join its own network`, where);
  return t;
}

/**
 * Error 7 when the target is named by CNI_NETNS itself (the same file, or the same process's /proc entry):
 * the container would "join" its own fresh namespace and get nothing. A target named otherwise whose
 * namespace is CNI_NETNS's is the runtime having passed the target's namespace: accepted (verified).
 */
function refuseSelfTarget(t: TargetSpec, netns: string, where: string): void {
  const own = canonical(netns);
  if (own === undefined) return;
  const self = (t.kind === 'path' && canonical(t.path) === own) || (t.kind === 'pid' && own === `/proc/${t.pid}/ns/net`);
  if (self) {
    throw invalidConfig(`${where} ${describeTarget(t)} is CNI_NETNS (${netns}) itself: a container cannot join its own network namespace`, where);
  }
}

/**
 * Opens the network namespace of container `id` through netplumb's records: a recorded path that still
 * opens to the recorded namespace. Error 3 when there is none.
 */
async function openRecorded(id: string): Promise<Netns> {
  const { openNetnsSync } = await sys();
  const records = containerAttachments(id);
  if (records.length === 0) {
    throw new CniError(
      CNI_ERR.UNKNOWN_CONTAINER,
      `container ${id} has no network attached by netplumb (nothing recorded in ${ATTACHMENTS_DIR}/${id}); netplumb-container joins only containers a netplumb plugin attached (or name a process by its PID, a namespace by its path)`,
      {
        object: id,
      },
    );
  }
  const seen: string[] = [];
  for (const record of records) {
    let ns: Netns;
    try {
      ns = openNetnsSync({ path: record.netns }, { allowCurrent: true });
    } catch (e) {
      seen.push(`${record.netns}: ${errCode(e) ?? (e as Error).message}`);
      continue;
    }
    if (ns.id !== record.netnsId) {
      seen.push(`${record.netns} is now ${nsLabel(ns.id)}, not ${nsLabel(record.netnsId)}`);
      ns.close();
      continue;
    }
    return ns;
  }
  throw new CniError(CNI_ERR.UNKNOWN_CONTAINER, `container ${id}'s network namespace is gone (${seen.join('; ')})`, { object: id });
}

/**
 * Opens the target's network namespace, once: through the records (a container), /proc/PID (a process) or
 * the path (a namespace file). Error 3 when it is gone; 8 when it is not a network namespace, or is the
 * host's.
 */
export async function openTarget(t: TargetSpec): Promise<OpenedNetns> {
  const opened = t.kind === 'container' ? { ns: await openRecorded(t.id) } : t.kind === 'pid' ? await openProcessNetns(t.pid) : await openPathNetns(t.path);
  try {
    const where = t.kind === 'container' ? `container ${t.id}'s network namespace` : `the network namespace of ${describeTarget(t)}`;
    refuseHostNetns(opened.ns.id, (await sys()).currentNetnsIdSync(), `${where} (${nsLabel(opened.ns.id)})`, formatTarget(t));
  } catch (e) {
    opened.ns.close();
    throw e;
  }
  return opened;
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
      throw new CniError(
        CNI_ERR.INVALID_NETNS,
        `CNI_NETNS ${path} changed while joining (now ${st.isFile() ? nsLabel(`${st.dev}:${st.ino}`) : 'not a file'})`,
        { object: path },
      );
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

/**
 * Refusals before the target is opened: a target that is CNI_NETNS itself, a prevResult, an attachment that
 * already joined another target. Returns the attachment's record, if any (a repeated ADD).
 */
function preflight(req: CniRequest, spec: TargetSpec): AttachmentRecord | undefined {
  refuseSelfTarget(spec, req.netns, 'the target');
  refusePrevResult(req, 'netplumb-container');
  const prior = readAttachment(key(req));
  if (prior?.joined && prior.joined.container !== formatTarget(spec)) {
    throw new CniError(
      CNI_ERR.ALREADY_JOINED,
      `${req.containerId}/${req.ifname} on network "${req.name}" already joined ${recordedLabel(prior.joined.container)}; DEL it before joining ${describeTarget(spec)}`,
      {
        object: req.containerId,
      },
    );
  }
  return prior;
}

/** Error 121 when this attachment joined the same target before, but in another namespace of it. */
function refuseRejoin(req: CniRequest, prior: AttachmentRecord | undefined, target: OpenedNetns, label: string): void {
  if (!prior?.joined || prior.joined.netnsId === target.ns.id) return;
  const why = prior.joined.pidStart !== undefined && prior.joined.pidStart !== target.pidStart ? 'another process' : 'replaced';
  throw new CniError(
    CNI_ERR.ALREADY_JOINED,
    `${req.containerId}/${req.ifname} on network "${req.name}" already joined ${label} when its namespace was ${nsLabel(prior.joined.netnsId)}; it is ${nsLabel(target.ns.id)} now (${why}); DEL it before joining again`,
    {
      object: req.containerId,
    },
  );
}

/** Error 8 unless CNI_NETNS is a namespace file the target can be mounted on, holding no interface but lo. */
async function refuseUnjoinable(netns: string, label: string): Promise<void> {
  const why = notJoinable(netns);
  if (why !== undefined) {
    throw new CniError(
      CNI_ERR.INVALID_NETNS,
      `CNI_NETNS ${netns} cannot be made to join ${label}: ${why}; give the runtime's namespace file in /run/netns, or the target's namespace itself`,
      {
        object: netns,
      },
    );
  }
  const [{ openHandleSync }, { listLinks }] = await Promise.all([import('../net/handle.js'), import('../net/link.js')]);
  const own = openHandleSync({ path: netns });
  try {
    const others = (await listLinks(own)).filter((l) => l.kind !== 'loopback').map((l) => l.name);
    if (others.length > 0) {
      throw new CniError(
        CNI_ERR.INVALID_NETNS,
        `CNI_NETNS ${netns} already has interfaces (${others.join(', ')}) of another network; joining ${label} would hide them`,
        {
          object: netns,
        },
      );
    }
  } finally {
    own.close();
  }
}

/**
 * Makes CNI_NETNS the target's namespace: recorded first (so that DEL or GC finds a mount left by a plugin
 * killed halfway), then the target's namespace bind-mounted on it; each with its undo.
 */
async function join(
  req: CniRequest,
  target: OpenedNetns,
  joinedBy: Pick<JoinState, 'container' | 'pidStart'>,
  currentId: string,
  label: string,
  undo: UndoStack,
): Promise<void> {
  const { ns } = target;
  const rec: AttachmentRecord = {
    ...key(req),
    netns: req.netns,
    netnsId: ns.id,
    joined: { ...joinedBy, netnsId: ns.id, mounted: true, originalNetnsId: currentId },
  };
  writeAttachment(rec);
  undo.push('forget the attachment', () => removeAttachment(key(req)));
  mountOver(await sys(), ns, req.netns, currentId);
  undo.push(`unmount the namespace of ${label} from ${req.netns}`, () => undoJoin(rec));
  const now = netnsIdOf(req.netns);
  if (now !== ns.id) {
    throw new CniError(CNI_ERR.INVALID_NETNS, `CNI_NETNS ${req.netns} is ${nsLabel(now)} after mounting ${nsLabel(ns.id)} on it`, { object: req.netns });
  }
}

/** The Result: the interfaces, addresses and default routes of the joined namespace, as seen from CNI_NETNS. */
async function describeJoined(req: CniRequest, target: OpenedNetns): Promise<CniResult> {
  const [{ openHandleSync }, { describeNamespace }] = await Promise.all([import('../net/handle.js'), import('./describe.js')]);
  const h = openHandleSync(target.ns);
  try {
    return { cniVersion: req.cniVersion, ...(await describeNamespace(h, req.netns)) };
  } finally {
    h.close();
  }
}

/** Undoes what ADD did for one record (DEL, GC, rollback). */
async function undoJoin(r: AttachmentRecord): Promise<void> {
  if (r.joined?.mounted) unmountJoin(await sys(), r.netns, r.joined.netnsId);
}

export const containerPlugin: CniPlugin = {
  name: 'netplumb-container',
  about: "netplumb-container: join another container's network stack (Docker's --net=container:<id>)",
  netns: 'foreign',
  capabilities: ['CAP_SYS_ADMIN'],
  fields: { container: 'any' }, // matched as the reference would; parseTarget checks the value with its own message

  async add(req) {
    const spec = targetOf(req);
    const label = describeTarget(spec);
    const prior = preflight(req, spec);
    const target = await openTarget(spec);
    try {
      return await runSteps(req, async (step, undo) => {
        refuseRejoin(req, prior, target, label);
        const joinedBy = { container: formatTarget(spec), ...(target.pidStart !== undefined ? { pidStart: target.pidStart } : {}) };
        const currentId = netnsIdOf(req.netns);
        if (currentId === target.ns.id) {
          // already the target's namespace: by the runtime, or by an earlier ADD of this attachment
          const earlier = prior?.joined;
          const joined = {
            ...joinedBy,
            netnsId: currentId,
            mounted: earlier?.mounted ?? false,
            ...(earlier?.originalNetnsId ? { originalNetnsId: earlier.originalNetnsId } : {}),
          };
          await step('record', () => writeAttachment({ ...key(req), netns: req.netns, netnsId: currentId, joined }));
        } else {
          await step('joinable', () => refuseUnjoinable(req.netns, label));
          await step('join', () => join(req, target, joinedBy, currentId, label, undo));
        }
        return step('result', () => describeJoined(req, target));
      });
    } finally {
      target.ns.close();
    }
  },

  async check(req) {
    const spec = targetOf(req);
    const target = formatTarget(spec);
    const label = describeTarget(spec);
    const rec = readAttachment(key(req));
    const fail = (msg: string) =>
      new CniError(CNI_ERR.CHECK_FAILED, `CHECK of ${req.containerId}/${req.ifname} on network "${req.name}": ${msg}`, { object: req.netns });
    if (!rec?.joined) throw fail('no attachment is recorded (was ADD run?)');
    const j = rec.joined;
    if (j.container !== target) throw fail(`it joined ${recordedLabel(j.container)}, not ${label}`);
    const now = netnsIdOf(req.netns);
    if (now !== j.netnsId) throw fail(`CNI_NETNS ${req.netns} is ${nsLabel(now)}, not ${label}'s ${nsLabel(j.netnsId)}`);
    let t: OpenedNetns;
    try {
      t = await openTarget(spec);
    } catch (e) {
      throw fail(`${(e as Error).message}; this container still has ${label}'s old namespace ${nsLabel(j.netnsId)}`);
    }
    t.ns.close();
    if (j.pidStart !== undefined && t.pidStart !== j.pidStart) {
      throw fail(
        `${label} is another process now (started at ${t.pidStart ?? '?'}, not ${j.pidStart}): the process joined has exited; this container still has its namespace ${nsLabel(j.netnsId)}`,
      );
    }
    if (t.ns.id !== j.netnsId) throw fail(`${label} now has namespace ${nsLabel(t.ns.id)}; this container still has its old one ${nsLabel(j.netnsId)}`);
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

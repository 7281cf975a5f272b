/**
 * netplumb-none: Docker's `--net=none`. The container's namespace gets loopback only: `lo` up with 127.0.0.1/8
 * and ::1/128 (::1 only where IPv6 is enabled on lo). A drop-in for the reference `loopback` plugin, which
 * runtimes commonly run as a network of its own for every container (a `99-loopback.conf` next to the pod
 * network).
 *
 *   ADD    lo up; 127.0.0.1/8 (and ::1/128) put back if someone removed them; records the attachment (so that
 *          netplumb-container can join this container); Result: lo and its addresses (with a prevResult:
 *          that Result with lo appended). All or nothing: a failure leaves lo as it was.
 *   CHECK  lo exists and is up, 127.0.0.1/8 and ::1/128 (if IPv6 is on) are there, and so is every lo address
 *          of prevResult; else error 120 listing what drifted.
 *   DEL    lo down again, as the reference does — but only in the namespace ADD configured (same inode) and only
 *          when no other container is recorded in that namespace (a joined or joining one); then forgets
 *          the attachment. Succeeds when CNI_NETNS is empty, vanished or reused.
 *   GC     forgets the records of attachments of this network the runtime no longer lists.
 *   STATUS ready unless attachments cannot be recorded (50).
 *
 * CNI_IFNAME only names the attachment (the reference ignores it as well): the interface is always `lo`.
 * See docs/MODES.md for the rest.
 */
import { chainResult } from '../cni/chain.js';
import { CNI_ERR, CniError } from '../cni/errors.js';
import type { CniRequest } from '../cni/request.js';
import type { CniPlugin } from '../cni/skeleton.js';
import type { CniIpConfig } from '../cni/types.js';
import { CURRENT_VERSION } from '../cni/version.js';
import type { Address } from '../net/addr.js';
import type { Handle } from '../net/handle.js';
import type { Link } from '../net/link.js';
import { netnsIdOf } from './common.js';
import { runSteps, type UndoStack } from './steps.js';
import {
  allAttachments,
  attachmentKey,
  checkStateUsable,
  readAttachment,
  removeAttachment,
  staleAttachments,
  writeAttachment,
  type AttachmentKey,
} from './state.js';

const LO4 = '127.0.0.1/8';
const LO6 = '::1/128';
const ZERO_MAC = '00:00:00:00:00:00';

type Net = typeof import('../net/addr.js') & typeof import('../net/handle.js') & typeof import('../net/link.js') & typeof import('../net/sysctl.js');
let loading: Promise<Net> | undefined;
/** netlink and koffi, loaded by the verbs that touch a namespace (GC, STATUS and VERSION start without them) */
function net(): Promise<Net> {
  loading ??= Promise.all([import('../net/addr.js'), import('../net/handle.js'), import('../net/link.js'), import('../net/sysctl.js')]).then(
    ([addr, handle, link, sysctl]) => ({ ...addr, ...handle, ...link, ...sysctl }),
  );
  return loading;
}

const key = (req: CniRequest): AttachmentKey => attachmentKey(req, 'none');

async function loopback(n: Net, h: Handle): Promise<Link> {
  const lo = (await n.listLinks(h)).find((l) => l.kind === 'loopback');
  if (!lo) throw new CniError(CNI_ERR.INTERNAL, `no loopback interface in ${h.label}`);
  return lo;
}

/** IPv6 on lo: false when disabled by sysctl or when the kernel has no IPv6 at all. */
function ipv6Enabled(n: Net, h: Handle): boolean {
  try {
    return n.readSysctlSync(h, 'net/ipv6/conf/lo/disable_ipv6').trim() === '0';
  } catch {
    return false;
  }
}

const usable = (a: Address) => !a.tentative && !a.dadfailed;

/** The Result's view of lo's addresses: IPv4 first, then IPv6, each in the kernel's order. */
function loIps(addrs: Address[], iface: number): CniIpConfig[] {
  return [...addrs.filter((a) => a.family === 4), ...addrs.filter((a) => a.family === 6)].filter(usable).map((a) => ({ interface: iface, address: a.cidr }));
}

/** What is wrong with lo in the namespace of `h` (empty when nothing). */
async function loDrift(n: Net, h: Handle, expect: string[]): Promise<string[]> {
  const lo = await loopback(n, h);
  const drift: string[] = [];
  if (!lo.up) drift.push('lo is down');
  const have = new Set((await n.listAddresses(h, { link: lo.index })).filter(usable).map((a) => a.cidr));
  const want = [LO4, ...(ipv6Enabled(n, h) ? [LO6] : []), ...expect];
  for (const cidr of new Set(want)) if (!have.has(cidr)) drift.push(`lo lacks ${cidr}`);
  return drift;
}

/** lo up if it is down (the kernel then adds 127.0.0.1/8 and ::1); the undo takes down and away what was not there. Returns lo's addresses. */
async function bringUp(n: Net, h: Handle, lo: Link, undo: UndoStack): Promise<Address[]> {
  const addrs = await n.listAddresses(h, { link: lo.index });
  if (lo.up) return addrs;
  const before = new Set(addrs.map((a) => a.cidr));
  await n.setLinkUp(h, lo.index);
  undo.push('bring lo down again', async () => {
    await n.setLinkDown(h, lo.index);
    for (const a of await n.listAddresses(h, { link: lo.index })) if (!before.has(a.cidr)) await n.deleteAddress(h, { link: lo.index, cidr: a.cidr });
  });
  return n.listAddresses(h, { link: lo.index });
}

/** 127.0.0.1/8 and (with IPv6) ::1/128 put back on lo if someone removed them. Returns lo's addresses. */
async function restoreAddresses(n: Net, h: Handle, lo: Link, addrs: Address[], undo: UndoStack): Promise<Address[]> {
  let added = false;
  for (const cidr of [LO4, ...(ipv6Enabled(n, h) ? [LO6] : [])]) {
    if (addrs.some((a) => a.cidr === cidr)) continue;
    await n.addAddress(h, { link: lo.index, cidr, scope: 'host', ...(cidr === LO6 ? { nodad: true } : {}) });
    undo.push(`remove ${cidr} from lo`, () => n.deleteAddress(h, { link: lo.index, cidr }));
    added = true;
  }
  // The Result reports lo's addresses as the kernel has them: read again only if this ADD changed them.
  return added ? n.listAddresses(h, { link: lo.index }) : addrs;
}

export const nonePlugin: CniPlugin = {
  name: 'netplumb-none',
  about: "netplumb-none: loopback only (Docker's --net=none)",
  netns: 'foreign',
  // CHECK only reads the namespace (setns, then a dump): no CAP_NET_ADMIN.
  capabilities: {
    ADD: ['CAP_NET_ADMIN', 'CAP_SYS_ADMIN'],
    DEL: ['CAP_NET_ADMIN', 'CAP_SYS_ADMIN'],
    CHECK: ['CAP_SYS_ADMIN'],
    GC: ['CAP_NET_ADMIN', 'CAP_SYS_ADMIN'],
  },

  async add(req) {
    const n = await net();
    const h = n.openHandleSync({ path: req.netns });
    try {
      // the undos use the handle: it stays open until the rollback is over
      return await runSteps(req, async (step, undo) => {
        const lo = await loopback(n, h);
        const up = await step('up', () => bringUp(n, h, lo, undo));
        const addrs = await step('addresses', () => restoreAddresses(n, h, lo, up, undo));
        await step('record', () => writeAttachment({ ...key(req), netns: req.netns, netnsId: h.netnsId }));
        return step('result', () =>
          chainResult(req.prevResult, {
            cniVersion: CURRENT_VERSION,
            interfaces: [{ name: lo.name, mac: lo.mac ?? ZERO_MAC, sandbox: req.netns }],
            ips: loIps(addrs, 0),
          }),
        );
      });
    } finally {
      h.close();
    }
  },

  async check(req) {
    const n = await net();
    const h = n.openHandleSync({ path: req.netns });
    try {
      // lo addresses a prevResult reports for this sandbox must still be there
      const prev = req.prevResult;
      const loIndexes = new Set((prev?.interfaces ?? []).flatMap((i, n) => (i.name === 'lo' && (i.sandbox ?? req.netns) === req.netns ? [n] : [])));
      const expect = (prev?.ips ?? []).filter((ip) => ip.interface !== undefined && loIndexes.has(ip.interface)).map((ip) => ip.address);
      const drift = await loDrift(n, h, expect);
      if (drift.length > 0) {
        throw new CniError(CNI_ERR.CHECK_FAILED, `CHECK of ${req.containerId} on network "${req.name}": ${drift.join('; ')}`, { object: req.netns });
      }
    } finally {
      h.close();
    }
  },

  async del(req) {
    const rec = readAttachment(key(req));
    if (!rec) return;
    const path = req.netns || rec.netns;
    let same = false;
    try {
      same = netnsIdOf(path) === rec.netnsId;
    } catch {
      /* the namespace is gone: nothing to bring down */
    }
    const shared = same && allAttachments().some((r) => r.netnsId === rec.netnsId && r.containerId !== rec.containerId);
    if (same && !shared) {
      let h: Handle | undefined;
      try {
        const n = await net();
        h = n.openHandleSync({ path });
        await n.setLinkDown(h, (await loopback(n, h)).index);
      } catch (e) {
        // vanished between the check and the open: nothing left to bring down
        if ((e as { code?: string }).code !== 'ENOENT') throw e;
      } finally {
        h?.close();
      }
    }
    removeAttachment(key(req));
  },

  async gc(req) {
    for (const r of staleAttachments(req.name, 'none', req.validAttachments ?? [])) removeAttachment(r);
  },

  async status() {
    checkStateUsable();
  },
};

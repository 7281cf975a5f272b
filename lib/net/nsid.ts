/**
 * Namespace ids: the number by which one namespace refers to another (a veth's `linkNetnsId` is one). The
 * kernel assigns one when a link pairs across namespaces; `setNetnsId` assigns one explicitly (`ip netns set`).
 * See docs/NET.md for the rest.
 */
import { AF_UNSPEC, NETNSA_FD, NETNSA_NSID, NLM_F_CREATE, NLM_F_EXCL, RTM_GETNSID, RTM_NEWNSID } from '../netlink/constants.js';
import { getS32, MessageWriter, parseAttrs } from '../netlink/encoding.js';
import { ERR, NetplumbError } from '../errors.js';
import { borrowNetnsFdSync, Handle } from './handle.js';
import type { NetnsRef } from './ns.js';

function withFd<T>(target: NetnsRef | Handle, fn: (fd: number) => Promise<T>): Promise<T> {
  const t = borrowNetnsFdSync(target, { allowCurrent: true });
  return fn(t.fd).finally(t.release);
}

function nsidMessage(type: number, flags: number, fd: number, nsid?: number): Buffer {
  const w = new MessageWriter(type, flags);
  w.struct(4).writeUInt8(AF_UNSPEC, 0); // rtgenmsg, padded
  if (nsid !== undefined) w.s32(NETNSA_NSID, nsid);
  w.u32(NETNSA_FD, fd);
  return w.finish();
}

async function idOf(h: Handle, fd: number): Promise<number | undefined> {
  const replies = await h.request(nsidMessage(RTM_GETNSID, 0, fd), { op: 'RTM_GETNSID', what: `get namespace id in ${h.label}` });
  const m = replies.find((r) => r.type === RTM_NEWNSID);
  const id = m ? getS32(parseAttrs(m.data, 4)[NETNSA_NSID]) : undefined;
  return id === undefined || id < 0 ? undefined : id;
}

/** The id the handle's namespace gives `target`, or undefined when it has none yet. Equivalent to: `ip netns list-id` (one entry). */
export function getNetnsId(h: Handle, target: NetnsRef | Handle): Promise<number | undefined> {
  return withFd(target, (fd) => idOf(h, fd));
}

/**
 * Gives `target` an id in the handle's namespace (`nsid`, or the next free one); returns the id. EEXIST if it
 * has one. Equivalent to: `ip netns set NAME NSID|auto`.
 */
export function setNetnsId(h: Handle, target: NetnsRef | Handle, nsid = -1): Promise<number> {
  return withFd(target, async (fd) => {
    await h.request(nsidMessage(RTM_NEWNSID, NLM_F_CREATE | NLM_F_EXCL, fd, nsid), {
      op: 'RTM_NEWNSID',
      what: `set namespace id ${nsid < 0 ? 'auto' : nsid} in ${h.label}`,
    });
    const id = await idOf(h, fd);
    if (id === undefined)
      throw new NetplumbError(`set namespace id in ${h.label}: the kernel assigned none`, { code: ERR.NO_REPLY, op: 'RTM_NEWNSID', object: h.label });
    return id;
  });
}

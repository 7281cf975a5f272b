/**
 * Undoing attachments nobody will DEL. When a container's network namespace goes away without a DEL (the runtime
 * crashed, the container's last process died and nothing held the namespace), the agent hears it — an event,
 * not a poll — waits a grace period (a DEL may still be on its way), and then runs the DEL itself, with the
 * environment and configuration of the ADD it kept (attachments.ts) and an empty CNI_NETNS: exactly what a
 * runtime's late DEL does, so a late DEL that comes after it still succeeds (DEL is idempotent). At start, kept
 * attachments whose namespace is already gone (the agent was down when it went) are released the same way.
 *
 * The events: every namespace the agent attached something in gets an id in the agent's own namespace
 * (`track`, as `ip netns set … auto`; a veth across namespaces already has one), and the kernel tells the
 * namespaces holding an id for a namespace when it is destroyed (RTM_DELNSID): that covers every mode that
 * records something — none, container, bridge and the overlay's bridge. The id holds no reference: the
 * namespace still dies with its last process or mount. The host end of a bridge-mode veth vanishing (RTM_DELLINK)
 * is heard too.
 */
import { openHandleSync } from '../net/handle.js';
import { watch } from '../net/events.js';
import { getNetnsId, setNetnsId } from '../net/nsid.js';
import { isOrphan, keptHere, keptRequests, orphanedRequests, type KeptRequest } from './attachments.js';
import type { AgentLog } from './log.js';

export interface CleanupOptions {
  /** how long after the event the agent waits for a DEL of its own (default 10 s) */
  graceMs: number;
  log: AgentLog;
  /** runs the DEL of a kept request; resolves true when it succeeded */
  release(k: KeptRequest): Promise<boolean>;
}

export interface Cleanup {
  /** releases every orphan now (what the start and each event's timer run) */
  sweep(): Promise<number>;
  /** makes the end of the namespace a kept request attached an event the agent hears */
  track(k: KeptRequest): Promise<void>;
  stop(): void;
}

/** Starts watching the agent's namespace for vanished namespaces and veths, and sweeps once right away. */
export function startCleanup(o: CleanupOptions): Cleanup {
  let sweeping: Promise<number> | undefined;
  let again = false;
  const sweep = async (): Promise<number> => {
    if (sweeping) {
      again = true;
      return sweeping;
    }
    sweeping = (async () => {
      let n = 0;
      do {
        again = false;
        for (const k of orphanedRequests()) {
          const ok = await o.release(k);
          o.log('cleanup', { plugin: k.plugin, container: k.env.CNI_CONTAINERID, ifname: k.env.CNI_IFNAME, outcome: ok ? 'released' : 'failed' });
          if (ok) n++;
        }
      } while (again);
      return n;
    })().finally(() => (sweeping = undefined));
    return sweeping;
  };

  const timers = new Set<NodeJS.Timeout>();
  const sweepAfterGrace = () => {
    const t = setTimeout(() => {
      timers.delete(t);
      void sweep();
    }, o.graceMs);
    timers.add(t);
  };
  const h = openHandleSync();
  const events = watch(h, { link: true, nsid: true });
  let stopped = false;
  void (async () => {
    try {
      for await (const ev of events) {
        const gone = (ev.type === 'nsid' && ev.action === 'del') || (ev.type === 'link' && ev.action === 'del' && ev.link.kind === 'veth');
        if (gone) sweepAfterGrace();
      }
    } catch (e) {
      if (!stopped) o.log('cleanup-watch-failed', { message: (e as Error).message });
    }
  })();

  const track = async (k: KeptRequest): Promise<void> => {
    const path = k.env.CNI_NETNS ?? '';
    if (k.netnsId === k.hostNetnsId) return; // the agent's own namespace (an IPAM call for the host): it does not vanish
    try {
      if ((await getNetnsId(h, { path })) === undefined) await setNetnsId(h, { path });
    } catch {
      // Gone already (then it is an orphan: below), or given an id meanwhile by a veth or a concurrent track.
    }
    // It may have died before it had an id: then no event will come for it.
    if (!stopped && isOrphan(k)) sweepAfterGrace();
  };

  void (async () => {
    await sweep();
    // Namespaces attached before this start (by an agent since killed) may have no id yet.
    for (const k of keptRequests()) if (!stopped && keptHere(k) && !isOrphan(k)) await track(k);
  })();
  return {
    sweep,
    track,
    stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      void events.return?.();
      h.close();
    },
  };
}

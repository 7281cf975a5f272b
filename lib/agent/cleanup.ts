/**
 * Undoing attachments nobody will DEL. When a container's network namespace goes away without a DEL (the runtime
 * crashed, the container's last process died and nothing held the namespace), the kernel destroys the veth's
 * container end and with it the host end: the agent hears that RTM_DELLINK (an event, not a poll), waits a grace
 * period (a DEL may still be on its way), and then runs the DEL itself, with the environment and configuration of
 * the ADD it kept (attachments.ts) and an empty CNI_NETNS — exactly what a runtime's late DEL does, so a late DEL
 * that comes after it still succeeds (DEL is idempotent). At start, kept attachments whose namespace is already
 * gone (the agent was down when it went) are released the same way.
 *
 * Only attachments with a host-side veth (bridge mode) produce the event; the others are released at the next
 * start or sweep.
 */
import { openHandleSync } from '../net/handle.js';
import { watch } from '../net/events.js';
import { isOrphan, keptRequests, type KeptRequest } from './attachments.js';
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
  stop(): void;
}

/** Starts watching the agent's namespace for vanished veths and sweeps once right away. */
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
        for (const k of keptRequests().filter(isOrphan)) {
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
  const h = openHandleSync();
  const events = watch(h, { link: true });
  let stopped = false;
  void (async () => {
    try {
      for await (const ev of events) {
        if (ev.type !== 'link' || ev.action !== 'del' || ev.link.kind !== 'veth') continue;
        const t = setTimeout(() => {
          timers.delete(t);
          void sweep();
        }, o.graceMs);
        timers.add(t);
      }
    } catch (e) {
      if (!stopped) o.log('cleanup-watch-failed', { message: (e as Error).message });
    }
  })();
  void sweep();
  return {
    sweep,
    stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      void events.return?.();
      h.close();
    },
  };
}

/**
 * Waiting for a condition instead of for a time: the kernel settles some things by itself (a namespace
 * torn down in a work queue, a bridge port reaching `forwarding`, an ARP entry from a packet in flight),
 * and how long that takes depends on the machine. Every wait is bounded.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions {
  /** give up after this long (default 20 s: far beyond a loaded 2-core machine, still a bound) */
  timeoutMs?: number;
  /** pause between probes (default 20 ms) */
  intervalMs?: number;
}

/**
 * Calls `probe` until it returns something truthy, and returns that; after the bound, returns the last
 * (falsy) answer, so the caller's own assertion reports what it saw.
 */
export async function waitFor<T>(probe: () => T | Promise<T>, opts: WaitOptions = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  for (;;) {
    const v = await probe();
    if (v || Date.now() >= deadline) return v;
    await sleep(opts.intervalMs ?? 20);
  }
}

/**
 * The setns window: run a few synchronous lines with the calling thread inside another network namespace,
 * then return. Sockets and /proc/sys files opened inside keep the namespace they were opened in for their
 * whole life, so this is how netplumb works in any namespace without moving the process.
 *
 * Rules the callers keep: the function is synchronous (never an `await` inside: the event loop would run other
 * code in the wrong namespace), and it starts no thread (threads inherit the creating thread's namespace).
 * If returning fails, the process is in the wrong namespace with no way back, so it aborts rather than go on.
 * See docs/NET.md for the rest.
 */
import { closeSync, openSync } from 'node:fs';
import { ERR, NetplumbError } from '../errors.js';
import { CLONE_NEWNET, preloadLibc, setns, unshare } from './libc.js';

function restore(back: number): void {
  try {
    setns(back, CLONE_NEWNET, 'the original network namespace');
  } catch (e) {
    process.stderr.write(`netplumb: FATAL: cannot return to the original network namespace: ${(e as Error).message}\n`);
    process.abort();
  }
}

function syncOnly<T>(r: T): T {
  if (r !== null && typeof r === 'object' && typeof (r as { then?: unknown }).then === 'function') {
    // Too late to undo what ran, but never let an async function believe it ran in the namespace.
    throw new NetplumbError('netns window: the function must be synchronous', { code: ERR.NOT_SYNCHRONOUS, op: 'netns window' });
  }
  return r;
}

/** Enters a namespace with `enter`, runs `fn`, and returns the thread to the namespace it was in. */
function window<T>(enter: () => void, fn: () => T): T {
  preloadLibc();
  // The thread's own namespace, opened now rather than cached: the caller may have moved on purpose.
  const back = openSync('/proc/thread-self/ns/net', 'r');
  try {
    enter();
    try {
      return syncOnly(fn());
    } finally {
      restore(back);
    }
  } finally {
    closeSync(back);
  }
}

/** Runs `fn` with the calling thread in the namespace open at `targetFd`, then returns to the original one. */
export function inNetnsSync<T>(targetFd: number, what: string, fn: () => T): T {
  return window(() => setns(targetFd, CLONE_NEWNET, what), fn);
}

/** Runs `fn` with the calling thread in a brand-new network namespace (unshare), then returns. */
export function inNewNetnsSync<T>(fn: () => T): T {
  return window(() => unshare(CLONE_NEWNET), fn);
}

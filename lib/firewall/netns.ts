/**
 * Doing a little synchronous work in another network namespace without moving the process: enter it on the
 * calling thread, run `fn`, return — all without yielding to the event loop, so nothing else runs in the
 * foreign namespace and no thread is started inside the window (FIELD-NOTES: new threads inherit it).
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { SyscallError } from '../errors.js';
import { CLONE_NEWNET, setns } from '../sys/libc.js';

export function inNetnsSync<T>(netns: string | undefined, fn: () => T): T {
  if (netns === undefined) return fn();
  const target = openSync(netns, 'r');
  let home: number;
  try {
    home = openSync('/proc/thread-self/ns/net', 'r');
  } catch (e) {
    closeSync(target);
    throw e;
  }
  try {
    setns(target, CLONE_NEWNET, netns);
    try {
      return fn();
    } finally {
      try {
        setns(home, CLONE_NEWNET, 'the original namespace');
      } catch (e) {
        // Continuing would run everything else in the wrong namespace.
        process.stderr.write(`netplumb: cannot return from ${netns}: ${(e as Error).message}; aborting\n`);
        process.abort();
      }
    }
  } finally {
    closeSync(home);
    closeSync(target);
  }
}

/** Writes a sysctl (`net.ipv4.conf.br0.route_localnet`) in `netns` (default: the caller's namespace). */
export function writeSysctl(key: string, value: string, netns?: string): void {
  // Interface names may contain dots; callers pass them with '/' already (net/ipv4/conf/br.0/…) when so.
  const path = `/proc/sys/${key.includes('/') ? key : key.replaceAll('.', '/')}`;
  inNetnsSync(netns, () => {
    let fd: number;
    try {
      fd = openSync(path, 'w');
    } catch (e) {
      throw new SyscallError('open', errnoOf(e), path);
    }
    try {
      writeSync(fd, value);
    } catch (e) {
      throw new SyscallError('write', errnoOf(e), path);
    } finally {
      closeSync(fd);
    }
  });
}

function errnoOf(e: unknown): number {
  const n = (e as NodeJS.ErrnoException).errno;
  return typeof n === 'number' ? Math.abs(n) : 5;
}

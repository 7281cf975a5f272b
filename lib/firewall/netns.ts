/**
 * Doing a little synchronous work in another network namespace without moving the process: enter it on the
 * calling thread, run `fn`, return — all without yielding to the event loop, so nothing else runs in the
 * foreign namespace and no thread is started inside the window (FIELD-NOTES: new threads inherit it).
 * See docs/FIREWALL.md for the rest.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { ERRNO, SyscallError } from '../errors.js';
import { sysctlPath } from '../net/sysctl.js';
import { inNetnsSync as inNetnsWindow } from '../sys/netns-window.js';

export function inNetnsSync<T>(netns: string | undefined, fn: () => T): T {
  if (netns === undefined) return fn();
  const target = openSync(netns, 'r');
  try {
    // the window itself (enter, run, return or abort) is lib/sys/netns-window's, shared with lib/net
    return inNetnsWindow(target, netns, fn);
  } finally {
    closeSync(target);
  }
}

/** Writes a sysctl (`net.ipv4.conf.br0.route_localnet`) in `netns` (default: the caller's namespace). */
export function writeSysctl(key: string, value: string, netns?: string): void {
  // Interface names may contain dots; callers pass them with '/' already (net/ipv4/conf/br.0/…) when so.
  const path = sysctlPath(key);
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
  return typeof n === 'number' ? Math.abs(n) : ERRNO.EIO;
}

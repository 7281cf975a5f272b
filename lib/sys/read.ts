/**
 * Reading a small file through a descriptor the caller opened (and checked: O_NOFOLLOW, fstat), in one bounded
 * loop: a file that is bigger than expected, or grows while it is read, never makes the reader allocate or wait
 * for more than its limit.
 */
import { readSync } from 'node:fs';

/**
 * Reads from `fd` until end of file or `limit` bytes, whichever comes first (from the descriptor's current
 * position). A caller that must tell "exactly `limit` bytes" from "more" asks for `limit + 1`.
 */
export function readUpTo(fd: number, limit: number): Buffer {
  const buf = Buffer.allocUnsafe(limit);
  let n = 0;
  while (n < limit) {
    const r = readSync(fd, buf, n, limit - n, null);
    if (r === 0) break;
    n += r;
  }
  return buf.subarray(0, n);
}

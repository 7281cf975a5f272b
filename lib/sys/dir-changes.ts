/**
 * Which entries of one directory changed since the last look, from inotify, read synchronously: for a cache
 * of a directory that other processes change under a lock (the IPAM store). The kernel queues an event
 * before the changing system call returns, so a reader holding the lock who finds the queue empty knows
 * that nothing changed since its previous look — on every kernel and file system, unlike a comparison of
 * the directory's mtime (one clock tick of granularity before Linux 6.13's multigrain timestamps).
 *
 *   const w = DirChanges.open('/var/lib/cni/networks/net1');   // inotify_init1 + inotify_add_watch
 *   w.take();   // Set of changed names, or 'all' (overflow, the directory itself moved or went)
 *   w.close();
 */
import { closeSync, readSync } from 'node:fs';
import { closeFd, inotifyAddWatch, inotifyInit } from './libc.js';

const IN_MODIFY = 0x2;
const IN_ATTRIB = 0x4;
const IN_CLOSE_WRITE = 0x8;
const IN_MOVED_FROM = 0x40;
const IN_MOVED_TO = 0x80;
const IN_CREATE = 0x100;
const IN_DELETE = 0x200;
const IN_DELETE_SELF = 0x400;
const IN_MOVE_SELF = 0x800;
const IN_Q_OVERFLOW = 0x4000;
const IN_IGNORED = 0x8000;
const IN_ONLYDIR = 0x1000000;
const IN_DONT_FOLLOW = 0x2000000;
const IN_EXCL_UNLINK = 0x4000000;

/** Every way an entry's existence or content can change, and the directory itself going away. */
const MASK = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF;
/** After one of these the watch no longer describes the path's directory: everything is unknown. */
const LOST = IN_Q_OVERFLOW | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF;
/** struct inotify_event: int wd; uint32 mask, cookie, len; char name[len] */
const HEADER_BYTES = 16;

export class DirChanges {
  #fd: number;
  #lost = false;
  readonly #buf = Buffer.alloc(64 * 1024);

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** Watches the directory `dir` (not followed if a symlink). Throws a SyscallError when inotify is unavailable. */
  static open(dir: string): DirChanges {
    const fd = inotifyInit(dir);
    try {
      inotifyAddWatch(fd, dir, MASK | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK);
    } catch (e) {
      closeFd(fd);
      throw e;
    }
    return new DirChanges(fd);
  }

  /**
   * The names of entries created, deleted, moved, written or changed since the last call, or 'all' when the
   * queue overflowed or the directory itself was moved or deleted (then the watch stays 'all' until closed).
   */
  take(): Set<string> | 'all' {
    const names = new Set<string>();
    for (let reads = 0; !this.#lost; reads++) {
      let n: number;
      try {
        n = readSync(this.#fd, this.#buf, 0, this.#buf.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') break;
        throw e;
      }
      for (let off = 0; off + HEADER_BYTES <= n;) {
        const mask = this.#buf.readUInt32LE(off + 4);
        const len = this.#buf.readUInt32LE(off + 12);
        if (mask & LOST) this.#lost = true;
        const raw = this.#buf.subarray(off + HEADER_BYTES, off + HEADER_BYTES + len);
        const end = raw.indexOf(0);
        if (len > 0) names.add(raw.subarray(0, end === -1 ? raw.length : end).toString('utf8'));
        off += HEADER_BYTES + len;
      }
      // A directory changed by a runaway writer faster than it can be read: give up on details.
      if (reads > 64) this.#lost = true;
    }
    return this.#lost ? 'all' : names;
  }

  /** Stops watching. */
  close(): void {
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
  }
}

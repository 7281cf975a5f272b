/**
 * The few libc calls Node does not expose (setns, unshare, mount, flock), bound with koffi.
 * Each wrapper throws SyscallError with the errno name, so callers never look at raw return values.
 * See docs/NET.md for the rest.
 */
import koffi, { type KoffiFunc } from 'koffi';
import { ERRNO, SyscallError } from '../errors.js';
import { offerQuickExit } from './exit.js';

export const CLONE_NEWNS = 0x00020000;
export const CLONE_NEWUSER = 0x10000000;
export const CLONE_NEWNET = 0x40000000;

export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_BIND = 0x1000;
export const MS_REC = 0x4000;
export const MS_PRIVATE = 0x40000;
export const MS_SLAVE = 0x80000;
export const MS_SHARED = 0x100000;

export const MNT_DETACH = 0x2;
export const UMOUNT_NOFOLLOW = 0x8;

export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

interface Libc {
  setns: (fd: number, nstype: number) => number;
  unshare: (flags: number) => number;
  mount: (source: string | null, target: string, fstype: string | null, flags: number, data: string | null) => number;
  umount2: (target: string, flags: number) => number;
  flock: KoffiFunc<(fd: number, op: number) => number>;
  gettid: () => number;
  socket: (domain: number, type: number, protocol: number) => number;
  close: (fd: number) => number;
  getsockname: (fd: number, addr: Buffer, len: Buffer) => number;
  setsockopt: (fd: number, level: number, name: number, value: Buffer, len: number) => number;
  getsockopt: (fd: number, level: number, name: number, value: Buffer, len: Buffer) => number;
  sendto: (fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrlen: number) => number;
  bind: (fd: number, addr: Buffer, addrlen: number) => number;
  recv: (fd: number, buf: Buffer, len: number, flags: number) => number;
  strerror: (errno: number) => string;
  ioctl: (fd: number, request: number, arg: number) => number;
  inotify_init1: (flags: number) => number;
  inotify_add_watch: (fd: number, path: string, mask: number) => number;
  getrusage: (who: number, usage: Buffer) => number;
}

let libc: Libc | undefined;

// Loaded on first use: plugins that never touch a namespace should not pay for koffi.
function load(): Libc {
  if (libc === undefined) {
    const lib = koffi.load('libc.so.6');
    libc = {
      setns: lib.func('int setns(int fd, int nstype)'),
      unshare: lib.func('int unshare(int flags)'),
      mount: lib.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)'),
      umount2: lib.func('int umount2(const char *target, int flags)'),
      flock: lib.func('int flock(int fd, int op)') as Libc['flock'],
      gettid: lib.func('int gettid(void)'),
      socket: lib.func('int socket(int domain, int type, int protocol)'),
      close: lib.func('int close(int fd)'),
      getsockname: lib.func('int getsockname(int fd, void *addr, void *len)'),
      setsockopt: lib.func('int setsockopt(int fd, int level, int name, void *value, uint32_t len)'),
      getsockopt: lib.func('int getsockopt(int fd, int level, int name, void *value, void *len)'),
      sendto: lib.func('long sendto(int fd, void *buf, size_t len, int flags, void *addr, uint32_t addrlen)'),
      bind: lib.func('int bind(int fd, void *addr, uint32_t addrlen)'),
      recv: lib.func('long recv(int fd, void *buf, size_t len, int flags)'),
      strerror: lib.func('const char *strerror(int errnum)'),
      ioctl: lib.func('int ioctl(int fd, unsigned long request, long arg)'),
      inotify_init1: lib.func('int inotify_init1(int flags)'),
      inotify_add_watch: lib.func('int inotify_add_watch(int fd, const char *path, uint32_t mask)'),
      getrusage: lib.func('int getrusage(int who, void *usage)'),
    };
    offerQuickExit(lib.func('void _exit(int status)'));
  }
  return libc;
}

function check(ret: number, op: string, object?: string): void {
  if (ret === -1) throw new SyscallError(op, koffi.errno(), object);
}

/** setns(2) on the calling thread. */
export function setns(fd: number, nstype: number, what?: string): void {
  check(load().setns(fd, nstype), 'setns', what);
}

/** unshare(2) on the calling thread. */
export function unshare(flags: number): void {
  check(load().unshare(flags), 'unshare');
}

export function mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null = null): void {
  check(load().mount(source, target, fstype, flags, data), 'mount', target);
}

export function umount2(target: string, flags: number): void {
  check(load().umount2(target, flags), 'umount', target);
}

export function gettid(): number {
  return load().gettid();
}

/** flock(2) that never blocks the event loop: LOCK_NB is tried first, a blocking wait runs on the thread pool. */
export async function flock(fd: number, op: number, what?: string): Promise<void> {
  const f = load().flock;
  const ret = f(fd, op | LOCK_NB);
  if (ret === 0) return;
  const errno = koffi.errno();
  if (errno !== ERRNO.EWOULDBLOCK || (op & LOCK_NB) !== 0) throw new SyscallError('flock', errno, what);
  await new Promise<void>((resolve, reject) => {
    f.async(fd, op, (err: unknown, r: number) => {
      if (err) reject(err);
      else if (r === -1) reject(new SyscallError('flock', koffi.errno(), what));
      else resolve();
    });
  });
}

/** flock(2) that may block the calling thread; for short critical sections in synchronous code. */
export function flockSync(fd: number, op: number, what?: string): void {
  check(load().flock(fd, op), 'flock', what);
}

/** Loads libc now, so that a later setns window does not pay for (or run) the loader inside it. */
export function preloadLibc(): void {
  load();
}

export const SOCK_CLOEXEC = 0o2000000;

/** socket(2); the caller owns the returned fd and must close it. */
export function socket(domain: number, type: number, protocol: number, what?: string): number {
  const fd = load().socket(domain, type | SOCK_CLOEXEC, protocol);
  check(fd, 'socket', what);
  return fd;
}

export function closeFd(fd: number): void {
  load().close(fd);
}

/** getsockname(2) into a buffer of `size` bytes; returns the bytes the kernel filled. */
export function getsockname(fd: number, size: number): Buffer {
  const addr = Buffer.alloc(size);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(size);
  check(load().getsockname(fd, addr, len), 'getsockname');
  return addr.subarray(0, Math.min(size, len.readUInt32LE()));
}

/** setsockopt(2) with an int value. */
export function setsockoptInt(fd: number, level: number, name: number, value: number, what?: string): void {
  const v = Buffer.alloc(4);
  v.writeInt32LE(value);
  check(load().setsockopt(fd, level, name, v, 4), 'setsockopt', what);
}

/** getsockopt(2) of an int value. */
export function getsockoptInt(fd: number, level: number, name: number, what?: string): number {
  const v = Buffer.alloc(4);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(4);
  check(load().getsockopt(fd, level, name, v, len), 'getsockopt', what);
  return v.readInt32LE(0);
}

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

/** A Unix socket peer's credentials as the kernel recorded them at connect(2) (SO_PEERCRED): not forgeable. */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** getsockopt(SO_PEERCRED) on a connected Unix socket. */
export function peerCredentials(fd: number): PeerCredentials {
  const v = Buffer.alloc(12); // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
  const len = Buffer.alloc(4);
  len.writeUInt32LE(12);
  check(load().getsockopt(fd, SOL_SOCKET, SO_PEERCRED, v, len), 'getsockopt', 'SO_PEERCRED');
  return { pid: v.readInt32LE(0), uid: v.readUInt32LE(4), gid: v.readUInt32LE(8) };
}

/** sendto(2); returns the bytes sent. */
export function sendto(fd: number, data: Buffer, addr: Buffer, what?: string): number {
  const n = Number(load().sendto(fd, data, data.length, 0, addr, addr.length));
  check(n, 'sendto', what);
  return n;
}

/** bind(2) to a socket address the caller encoded. */
export function bind(fd: number, addr: Buffer, what?: string): void {
  check(load().bind(fd, addr, addr.length), 'bind', what);
}

const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;

/** recv(2) without blocking: the bytes of one datagram (at most `size`), or undefined when none is queued. */
export function recvNow(fd: number, size: number, what?: string): Buffer | undefined {
  const buf = Buffer.alloc(size);
  const n = Number(load().recv(fd, buf, size, MSG_DONTWAIT));
  if (n === -1 && koffi.errno() === EAGAIN) return undefined;
  check(n, 'recv', what);
  return buf.subarray(0, n);
}

/** strerror(3): the C library's text for an errno (`File exists`). */
export function strerror(errno: number): string {
  return load().strerror(errno);
}

const NS_GET_NSTYPE = 0xb703;

/** The CLONE_NEW* type of a namespace fd (ioctl NS_GET_NSTYPE), or undefined if `fd` is no namespace. */
export function namespaceType(fd: number): number | undefined {
  const r = load().ioctl(fd, NS_GET_NSTYPE, 0);
  return r === -1 ? undefined : r;
}

const IN_NONBLOCK = 0o4000;
const IN_CLOEXEC = 0o2000000;

/** inotify_init1(IN_NONBLOCK | IN_CLOEXEC); the caller owns the returned fd (read with fs.readSync, close with closeFd). */
export function inotifyInit(what?: string): number {
  const fd = load().inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  check(fd, 'inotify_init1', what);
  return fd;
}

/** inotify_add_watch(2): watches `path` for the events in `mask`; returns the watch descriptor. */
export function inotifyAddWatch(fd: number, path: string, mask: number): number {
  const wd = load().inotify_add_watch(fd, path, mask);
  check(wd, 'inotify_add_watch', path);
  return wd;
}

const RUSAGE_CHILDREN = -1;

/**
 * CPU time of the children this process has waited for, in microseconds, as process.cpuUsage() gives its own
 * (getrusage(RUSAGE_CHILDREN)): the difference around one child's run is that child's user and kernel time.
 */
export function childrenCpuUsage(): { user: number; system: number } {
  const u = Buffer.alloc(144); // struct rusage: ru_utime, ru_stime (struct timeval each), then 14 longs
  check(load().getrusage(RUSAGE_CHILDREN, u), 'getrusage');
  const us = (at: number) => Number(u.readBigInt64LE(at)) * 1e6 + Number(u.readBigInt64LE(at + 8));
  return { user: us(0), system: us(16) };
}

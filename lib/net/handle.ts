/**
 * A Handle is netplumb's way into one network namespace: a netlink socket that lives there and the open namespace
 * for the few things that must be done from inside (sysctl files, packet sockets). Opening never moves the process.
 * Each handle is its caller's own: its own socket and its own fd on the namespace, released by its own `close()`.
 * See docs/NET.md for the whole API.
 */
import { ERR, NetplumbError } from '../errors.js';
import { NetlinkSocket } from '../netlink/socket.js';
import type { RequestInfo } from '../netlink/errors.js';
import type { NlMessage } from '../netlink/encoding.js';
import { inNetnsSync } from '../sys/netns-window.js';
import { currentNetnsSync, Netns, openNetnsSync, waitForOwnNetns, type NetnsRef, type OpenNetnsOptions } from './ns.js';

/**
 * A netlink socket in one network namespace, owned by whoever opened it (`openHandle`, `openHandleSync`).
 * `close()` (or leaving a `using` block: the handle is Disposable) releases the socket and the namespace fd and
 * ends every `watch()` on the handle; closing twice does nothing.
 */
export class Handle {
  /** The namespace, open for as long as the handle is. */
  readonly netns: Netns;
  readonly #sock: NetlinkSocket;
  readonly #foreign: boolean;
  readonly #onClose = new Set<() => void>();
  #closed = false;

  private constructor(netns: Netns, sock: NetlinkSocket, foreign: boolean) {
    this.netns = netns;
    this.#sock = sock;
    this.#foreign = foreign;
  }

  /** @internal use openHandleSync or openHandle */
  static _adopt(netns: Netns, sock: NetlinkSocket, foreign: boolean): Handle {
    return new Handle(netns, sock, foreign);
  }

  /** The namespace's name or path, for messages. */
  get label(): string {
    return this.#foreign ? this.netns.label : 'the current namespace';
  }

  /** `dev:ino` of the namespace. */
  get netnsId(): string {
    return this.netns.id;
  }

  /** True once `close()` has run. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Runs a synchronous function inside the handle's namespace (a setns window when it is not the caller's). */
  inNetnsSync<T>(what: string, fn: () => T): T {
    if (this.#closed) throw closedError(this, what);
    return this.#foreign ? inNetnsSync(this.netns.fd, `${this.netns.label} (${what})`, fn) : fn();
  }

  /** @internal for lib/net's modules: one encoded request, answered by its replies. */
  request(msg: Buffer, info: RequestInfo): Promise<NlMessage[]> {
    return this.#sock.request(msg, info);
  }

  /** @internal for lib/net's modules: one encoded dump request, serialized with the socket's other dumps. */
  dump(msg: Buffer, info: RequestInfo): Promise<NlMessage[]> {
    return this.#sock.dump(msg, info);
  }

  /** @internal runs `fn` when the handle closes (watches end then); returns a function that cancels it. */
  onClose(fn: () => void): () => void {
    this.#onClose.add(fn);
    return () => this.#onClose.delete(fn);
  }

  /**
   * Releases the handle's socket and namespace fd, and ends its watches. Requests still in flight reject.
   * Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const fn of [...this.#onClose]) fn();
    this.#onClose.clear();
    this.#sock.close();
    this.netns.close();
  }

  /** `using h = openHandleSync(…)`: closes the handle at the end of the block. */
  [Symbol.dispose](): void {
    this.close();
  }
}

function closedError(h: Handle, what: string): NetplumbError {
  return new NetplumbError(`${what} in ${h.label}: the handle is closed`, { code: ERR.SOCKET_CLOSED, op: what, object: h.label });
}

/** Options of openHandle: those of openNetnsSync, and how to wait for a new process's namespace. */
export interface OpenHandleOptions extends OpenNetnsOptions {
  /**
   * With a `{ pid }` target: wait (bounded) until that process has a network namespace of its own, as a process
   * just spawned to `unshare -n` has only after a moment. See waitForOwnNetns.
   */
  waitForOwnNetns?: { timeoutMs?: number; signal?: AbortSignal };
}

/**
 * Opens a handle on a namespace: the caller's own when `target` is omitted, otherwise the namespace named by
 * `target` (name, path, PID, fd or an open Netns). Every call opens a socket of its own, which the caller closes.
 * Asking for another namespace that turns out to be the caller's own is refused (ERR_NETNS_SELF) unless
 * `allowCurrent`. Synchronous: the socket is made in a setns window on the calling thread.
 * Equivalent to: iproute2's `ip -n NAME …`, which also opens its socket inside the namespace.
 */
export function openHandleSync(target?: NetnsRef, opts: OpenNetnsOptions = {}): Handle {
  const ns = target === undefined ? currentNetnsSync() : openNetnsSync(target, opts);
  const foreign = target !== undefined;
  let sock: NetlinkSocket;
  try {
    sock = NetlinkSocket.open(foreign ? { netnsFd: ns.fd, netnsName: ns.label } : {});
  } catch (e) {
    ns.close();
    throw e;
  }
  return Handle._adopt(ns, sock, foreign);
}

/**
 * Like openHandleSync, and with `{ waitForOwnNetns }` and a `{ pid }` target, first waits until that process has
 * left the caller's namespace (a freshly spawned `unshare -n` child), instead of refusing with ERR_NETNS_SELF.
 */
export async function openHandle(target?: NetnsRef, opts: OpenHandleOptions = {}): Promise<Handle> {
  const { waitForOwnNetns: wait, ...rest } = opts;
  if (wait !== undefined && target !== undefined && !(target instanceof Netns) && 'pid' in target) {
    await waitForOwnNetns(target.pid, wait);
  }
  return openHandleSync(target, rest);
}

/** @internal A namespace's file descriptor for one request, and what to do with it after. */
export interface BorrowedNetnsFd {
  fd: number;
  release(): void;
}

/** @internal The fd of a handle's or an open namespace (kept open), or of a reference opened for the occasion. */
export function borrowNetnsFdSync(target: NetnsRef | Netns | Handle, opts?: OpenNetnsOptions): BorrowedNetnsFd {
  if (target instanceof Handle) return { fd: target.netns.fd, release() {} };
  if (target instanceof Netns) return { fd: target.fd, release() {} };
  const ns = openNetnsSync(target, opts);
  return { fd: ns.fd, release: () => ns.close() };
}

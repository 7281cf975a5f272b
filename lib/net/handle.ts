/**
 * A Handle is netplumb's way into one network namespace: a netlink socket that lives there (one per namespace,
 * shared by everyone who opens a handle on it) and the open namespace for the few things that must be done
 * from inside (sysctl files, packet sockets). Opening never moves the process.
 */
import { NetlinkSocket } from '../netlink/socket.js';
import type { RequestInfo } from '../netlink/errors.js';
import type { NlMessage } from '../netlink/encoding.js';
import { inNetnsSync } from '../sys/netns-window.js';
import { currentNetnsSync, Netns, openNetnsSync, type NetnsRef, type OpenNetnsOptions } from './ns.js';

const open = new Map<string, Handle>();

export class Handle {
  #refs = 1;
  readonly #foreign: boolean;

  /** @internal use openHandleSync */
  constructor(
    readonly netns: Netns,
    readonly sock: NetlinkSocket,
    foreign: boolean,
  ) {
    this.#foreign = foreign;
  }

  /** The namespace's name or path, for messages. */
  get label(): string {
    return this.#foreign ? this.netns.label : 'the current namespace';
  }

  /** `dev:ino` of the namespace. */
  get netnsId(): string {
    return this.netns.id;
  }

  /** Runs a synchronous function inside the handle's namespace (a setns window when it is not the caller's). */
  inNetnsSync<T>(what: string, fn: () => T): T {
    return this.#foreign ? inNetnsSync(this.netns.fd, `${this.netns.label} (${what})`, fn) : fn();
  }

  /** Low level (for lib/net's modules): one encoded request, answered by its replies. */
  request(msg: Buffer, info: RequestInfo): Promise<NlMessage[]> {
    return this.sock.request(msg, info);
  }

  /** Low level (for lib/net's modules): one encoded dump request, serialized with the socket's other dumps. */
  dump(msg: Buffer, info: RequestInfo): Promise<NlMessage[]> {
    return this.sock.dump(msg, info);
  }

  /** @internal */
  retain(): this {
    this.#refs++;
    return this;
  }

  /** Releases this handle; the socket closes when the last handle on the namespace is closed. */
  close(): void {
    if (this.#refs === 0) return;
    if (--this.#refs > 0) return;
    if (open.get(this.netns.id) === this) open.delete(this.netns.id);
    this.sock.close();
    this.netns.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * A handle on a namespace: the caller's own when `target` is omitted, otherwise the namespace named by
 * `target` (name, path, PID, fd or an open Netns). Handles on the same namespace share one socket.
 * Asking for another namespace that turns out to be the caller's own is refused unless `allowCurrent`.
 */
export function openHandleSync(target?: NetnsRef, opts: OpenNetnsOptions = {}): Handle {
  const ns = target === undefined ? currentNetnsSync() : openNetnsSync(target, opts);
  const existing = open.get(ns.id);
  if (existing) {
    ns.close();
    return existing.retain();
  }
  const foreign = target !== undefined;
  let sock: NetlinkSocket;
  try {
    sock = NetlinkSocket.open(foreign ? { netnsFd: ns.fd, netnsName: ns.label } : {});
  } catch (e) {
    ns.close();
    throw e;
  }
  const h = new Handle(ns, sock, foreign);
  open.set(ns.id, h);
  return h;
}

/** A namespace's file descriptor for one request, and what to do with it after (close it if it was opened here). */
export interface BorrowedNetnsFd {
  fd: number;
  release(): void;
}

/** The fd of a handle's or an open namespace (kept open), or of a reference opened for the occasion. */
export function borrowNetnsFdSync(target: NetnsRef | Netns | Handle, opts?: OpenNetnsOptions): BorrowedNetnsFd {
  if (target instanceof Handle) return { fd: target.netns.fd, release() {} };
  if (target instanceof Netns) return { fd: target.fd, release() {} };
  const ns = openNetnsSync(target, opts);
  return { fd: ns.fd, release: () => ns.close() };
}

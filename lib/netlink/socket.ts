/**
 * A netlink socket bound for life to one network namespace, with requests pipelined by sequence number.
 *
 * - Opening: the socket is created synchronously (node-netlink's native constructor calls socket(2)), so
 *   entering the target namespace on the calling thread just around the constructor gives a socket that lives
 *   there (see lib/sys/netns-window.ts).
 * - Pipelining: every request gets its own sequence number and is answered by its own ACK or error; requests
 *   made in the same turn of the event loop leave in one sendmsg, so a batch of hundreds costs a few syscalls,
 *   not a round trip each. At most `window` requests are in flight, so the kernel's replies never overflow the
 *   receive buffer (an overflow would lose ACKs).
 * - Dumps run one at a time per socket: the kernel keeps one dump state per socket, and concurrent dumps fail
 *   with EBUSY or interleave. A dump the kernel marks NLM_F_DUMP_INTR (the table changed under it) is retried.
 * - Errors become NetlinkError with the errno name, the message type and the object, plus the kernel's extended
 *   ACK text when it gave one.
 * See docs/NET.md for the rest.
 */
import { closeSync, openSync, readdirSync, readlinkSync } from 'node:fs';
import { RawNetlinkSocket } from 'netlink/dist/raw.js';
import { getsockname, getsockoptInt, setsockoptInt } from '../sys/libc.js';
import { inNetnsSync } from '../sys/netns-window.js';
import {
  AF_NETLINK,
  NETLINK_CAP_ACK,
  NETLINK_EXT_ACK,
  NETLINK_GET_STRICT_CHK,
  NETLINK_ROUTE,
  NLM_F_ACK,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  NLMSG_NOOP,
  NLMSG_OVERRUN,
  NLMSGERR_ATTR_MSG,
  SO_PROTOCOL,
  SO_RCVBUFFORCE,
  SOL_NETLINK,
  SOL_SOCKET,
} from './constants.js';
import { eachAttr, getStr, parseMessages, type NlMessage } from './encoding.js';
import { ERR, ERRNO, NetplumbError } from '../errors.js';
import { NetlinkError, type RequestInfo } from './errors.js';

/** @internal How NetlinkSocket.open makes its socket. */
export interface OpenOptions {
  /** fd of a network namespace to open the socket in (default: the caller's) */
  netnsFd?: number | undefined;
  /** describes the namespace in errors */
  netnsName?: string | undefined;
  /** multicast groups (RTNLGRP_*) to join, for event sockets */
  groups?: readonly number[] | undefined;
  /** requests in flight at most (default 128) */
  window?: number | undefined;
}

interface Pending {
  seq: number;
  msg: Buffer;
  dump: boolean;
  /** for a barrier: the requests whose success its ACK stands for */
  covers?: Pending[];
  info: RequestInfo;
  replies: NlMessage[];
  interrupted: boolean;
  resolve: (r: { replies: NlMessage[]; interrupted: boolean }) => void;
  reject: (e: unknown) => void;
}

const DUMP_RETRIES = 10;
const MAX_DATAGRAM = 64 * 1024;
const RCVBUF = 4 * 1024 * 1024;

/**
 * Whether `fd` is a NETLINK_ROUTE socket bound to `port` (ports are unique per protocol only: libnftables'
 * NETLINK_NETFILTER sockets may hold the same number).
 */
function isNetlinkPort(fd: number, port: number): boolean {
  try {
    const addr = getsockname(fd, 12);
    if (addr.length < 8 || addr.readUInt16LE(0) !== AF_NETLINK || addr.readUInt32LE(4) !== port) return false;
    return getsockoptInt(fd, SOL_SOCKET, SO_PROTOCOL) === NETLINK_ROUTE;
  } catch {
    return false; // not a socket, or gone
  }
}

/**
 * The lowest fd free now: the one the calling thread's next socket(2) gets (POSIX gives the lowest free
 * number), unless another thread (libuv's pool) takes it first — findFd checks.
 */
function lowestFreeFd(): number | undefined {
  try {
    const fd = openSync('/dev/null', 'r');
    closeSync(fd);
    return fd;
  } catch {
    return undefined;
  }
}

/**
 * Finds the fd of our netlink socket by its port: node-netlink does not expose it. First the fd it most likely
 * got (`likely`, see lowestFreeFd), then every socket in /proc/self/fd — whose walk costs a readlink per open fd
 * (≈ 0.2 ms in the agent, for every handle opened).
 */
function findFd(port: number, likely: number | undefined): number | undefined {
  if (likely !== undefined && isNetlinkPort(likely, port)) return likely;
  for (const name of readdirSync('/proc/self/fd')) {
    const fd = Number(name);
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${name}`);
    } catch {
      continue;
    }
    if (target.startsWith('socket:') && isNetlinkPort(fd, port)) return fd;
  }
  return undefined;
}

/** @internal A NETLINK_ROUTE socket with pipelined requests (see the file's header); lib/net's Handle owns one. */
export class NetlinkSocket {
  readonly #raw: RawNetlinkSocket;
  readonly port: number;
  readonly fd: number | undefined;
  readonly extAck: boolean;
  #seq = Math.floor(Math.random() * 0x7fffffff) + 1;
  readonly #pending = new Map<number, Pending>();
  #outbox: Pending[] = [];
  #waiting: Pending[] = [];
  #inFlight = 0;
  readonly #window: number;
  #flushScheduled = false;
  #dumpChain: Promise<unknown> = Promise.resolve();
  #closed = false;
  #keepRef = false;
  #listeners = new Set<(m: NlMessage) => void>();
  #errorListeners = new Set<(e: Error) => void>();

  private constructor(raw: RawNetlinkSocket, opts: OpenOptions, likelyFd?: number) {
    this.#raw = raw;
    this.#window = opts.window ?? 128;
    this.port = raw.address().port;
    raw.on('message', (buf: Buffer) => this.#receive(buf));
    raw.on('error', (e: Error) => this.#fail(e));
    this.fd = findFd(this.port, likelyFd);
    let extAck = false;
    if (this.fd !== undefined) {
      // Small ACKs (no copy of the request), the kernel's error text, strict dump filtering, and room for
      // the replies to a full window. Each is best effort: an old kernel simply gives less.
      const tryOpt = (level: number, name: number, v: number) => {
        try {
          setsockoptInt(this.fd!, level, name, v);
          return true;
        } catch {
          return false;
        }
      };
      tryOpt(SOL_NETLINK, NETLINK_CAP_ACK, 1);
      extAck = tryOpt(SOL_NETLINK, NETLINK_EXT_ACK, 1);
      tryOpt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1);
      if (!tryOpt(SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)) raw.setRecvBufferSize(RCVBUF);
    }
    this.extAck = extAck;
    raw.unref();
  }

  /** Opens a NETLINK_ROUTE socket, in the namespace at `opts.netnsFd` if given. */
  static open(opts: OpenOptions = {}): NetlinkSocket {
    let likelyFd: number | undefined;
    const create = () => {
      likelyFd = lowestFreeFd();
      return new RawNetlinkSocket(NETLINK_ROUTE, { recvBufferSize: 0, sendBufferSize: 0 } as never);
    };
    const raw = opts.netnsFd === undefined ? create() : inNetnsSync(opts.netnsFd, opts.netnsName ?? `fd ${opts.netnsFd}`, create);
    try {
      for (const g of opts.groups ?? []) raw.addMembership(g);
    } catch (e) {
      raw.close();
      throw e;
    }
    return new NetlinkSocket(raw, opts, likelyFd);
  }

  /** @internal for tests: a socket over a stand-in for node-netlink's raw socket (a fake kernel). */
  static _overRaw(raw: unknown, opts: OpenOptions = {}): NetlinkSocket {
    return new NetlinkSocket(raw as RawNetlinkSocket, opts);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends one request (`msg` from MessageWriter) and resolves with the replies when the kernel ACKs it,
   * or rejects with NetlinkError. NLM_F_REQUEST and NLM_F_ACK are added.
   */
  async request(msg: Buffer, info: RequestInfo): Promise<NlMessage[]> {
    return (await this.#send(msg, info, NLM_F_REQUEST | NLM_F_ACK)).replies;
  }

  /** A dump request: serialized with the socket's other dumps and retried when interrupted. */
  dump(msg: Buffer, info: RequestInfo): Promise<NlMessage[]> {
    const run = async () => {
      for (let attempt = 0; ; attempt++) {
        const r = await this.#send(msg, info, NLM_F_REQUEST | NLM_F_DUMP);
        if (!r.interrupted) return r.replies;
        if (attempt >= DUMP_RETRIES) throw new NetlinkError(ERRNO.EINTR, info, `dump interrupted ${DUMP_RETRIES + 1} times`);
      }
    };
    const p = this.#dumpChain.then(run, run);
    this.#dumpChain = p.catch(() => undefined);
    return p;
  }

  /** Receives messages that answer no request: multicast notifications. */
  onMessage(fn: (m: NlMessage) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Receives errors of the socket itself (ENOBUFS when the kernel dropped notifications, a closed socket). */
  onError(fn: (e: Error) => void): () => void {
    this.#errorListeners.add(fn);
    return () => this.#errorListeners.delete(fn);
  }

  /** Keeps the event loop alive while set (event sockets); request sockets hold it only while waiting. */
  keepAlive(on: boolean): void {
    this.#keepRef = on;
    this.#updateRef();
  }

  /** Closes the socket; requests still pending reject. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#fail(new NetplumbError('netlink socket closed', { code: ERR.SOCKET_CLOSED, op: 'close' }));
    this.#raw.close();
  }

  #updateRef(): void {
    if (this.#closed) return;
    if (this.#keepRef || this.#pending.size > 0) this.#raw.ref();
    else this.#raw.unref();
  }

  #send(msg: Buffer, info: RequestInfo, flags: number): Promise<{ replies: NlMessage[]; interrupted: boolean }> {
    if (this.#closed)
      return Promise.reject(new NetplumbError(`${info.what}: netlink socket closed`, { code: ERR.SOCKET_CLOSED, op: info.op, object: info.object }));
    return new Promise((resolve, reject) => {
      const seq = this.#nextSeq();
      const dump = (flags & NLM_F_DUMP) === NLM_F_DUMP;
      // A dump may be sent again (retry), so it works on its own copy of the header; other requests are sent once.
      const m = dump ? Buffer.from(msg) : msg;
      m.writeUInt16LE(m.readUInt16LE(6) | flags, 6);
      m.writeUInt32LE(seq, 8);
      m.writeUInt32LE(this.port, 12);
      const p: Pending = { seq, msg: m, dump, info, replies: [], interrupted: false, resolve, reject };
      this.#pending.set(seq, p);
      if (this.#pending.size === 1) this.#updateRef();
      if (this.#inFlight < this.#window) {
        this.#inFlight++;
        this.#outbox.push(p);
        this.#scheduleFlush();
      } else {
        this.#waiting.push(p);
      }
    });
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    // setImmediate, not a microtask: every request made in this turn of the loop (Promise.all over hundreds
    // of calls, each awaiting something small first) joins the same sendmsg.
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#closed) return;
    const out = this.#outbox;
    this.#outbox = [];
    let chunk: Pending[] = [];
    let size = 0;
    const sendChunk = () => {
      if (chunk.length === 0) return;
      const acked = chunk.filter((p) => !p.dump);
      const bufs = chunk.map((p) => p.msg);
      if (acked.length > 1) {
        // Requests that travel together are answered together: they go without NLM_F_ACK, followed by a NOOP
        // that asks for one. The kernel handles a datagram's messages in order and always reports errors, so
        // when the NOOP's ACK arrives, every request before it without an error of its own has succeeded.
        // One reply instead of one per request: less work for the kernel and for us.
        for (const p of acked) p.msg.writeUInt16LE(p.msg.readUInt16LE(6) & ~NLM_F_ACK, 6);
        bufs.push(this.#barrier(acked));
        size += NLMSG_HDRLEN;
      }
      const sent = bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs, size);
      const seqs = bufs.map((c) => c.readUInt32LE(8));
      chunk = [];
      size = 0;
      this.#raw.send(sent, {}, (err) => {
        if (!err) return;
        for (const seq of seqs) {
          const p = this.#pending.get(seq);
          if (p) this.#complete(p, new NetlinkError(err.errno ?? ERRNO.EIO, p.info, `sendmsg: ${err.message}`));
        }
      });
    };
    for (const p of out) {
      if (size + p.msg.length + NLMSG_HDRLEN > MAX_DATAGRAM) sendChunk();
      chunk.push(p);
      size += p.msg.length;
    }
    sendChunk();
  }

  /** The next sequence number; wraps before the top of the range, never to 0 (the kernel's own messages). */
  #nextSeq(): number {
    const seq = this.#seq;
    this.#seq = seq >= 0xfffffff0 ? 1 : seq + 1;
    return seq;
  }

  /** A NOOP request with NLM_F_ACK whose ACK completes `covers`. */
  #barrier(covers: Pending[]): Buffer {
    const seq = this.#nextSeq();
    const m = Buffer.alloc(NLMSG_HDRLEN);
    m.writeUInt32LE(NLMSG_HDRLEN, 0);
    m.writeUInt16LE(NLMSG_NOOP, 4);
    m.writeUInt16LE(NLM_F_REQUEST | NLM_F_ACK, 6);
    m.writeUInt32LE(seq, 8);
    m.writeUInt32LE(this.port, 12);
    const info = { op: 'NLMSG_NOOP', what: `${covers.length} requests` };
    this.#pending.set(seq, {
      seq,
      msg: m,
      dump: false,
      covers,
      info,
      replies: [],
      interrupted: false,
      resolve: () => {
        for (const p of covers) this.#complete(p);
      },
      reject: (e) => {
        for (const p of covers) this.#complete(p, e);
      },
    });
    this.#inFlight++; // #complete counts it down like any request
    return m;
  }

  #complete(p: Pending, err?: unknown): void {
    if (!this.#pending.delete(p.seq)) return;
    if (err === undefined) p.resolve({ replies: p.replies, interrupted: p.interrupted });
    else p.reject(err);
    this.#inFlight--;
    while (this.#inFlight < this.#window && this.#waiting.length > 0) {
      this.#inFlight++;
      this.#outbox.push(this.#waiting.shift()!);
      this.#scheduleFlush();
    }
    if (this.#pending.size === 0) this.#updateRef();
  }

  #fail(e: Error): void {
    for (const fn of this.#errorListeners) fn(e);
    for (const p of [...this.#pending.values()]) {
      const errno = (e as { errno?: number }).errno;
      const own = e instanceof NetplumbError && errno === undefined ? e.code : undefined;
      this.#complete(
        p,
        own !== undefined
          ? new NetplumbError(`${p.info.what}: ${e.message}`, { code: own, op: p.info.op, object: p.info.object, cause: e })
          : new NetlinkError(Math.abs(errno ?? ERRNO.EIO), p.info, e.message),
      );
    }
    this.#waiting = [];
  }

  #receive(buf: Buffer): void {
    for (const m of parseMessages(buf)) {
      const p = m.port === this.port ? this.#pending.get(m.seq) : undefined;
      if (p === undefined) {
        if (m.type !== NLMSG_NOOP && m.type !== NLMSG_OVERRUN) for (const fn of this.#listeners) fn(m);
        continue;
      }
      if (m.flags & NLM_F_DUMP_INTR) p.interrupted = true;
      if (m.type === NLMSG_ERROR || m.type === NLMSG_DONE) {
        const errno = m.data.length >= 4 ? -m.data.readInt32LE(0) : 0;
        if (errno === 0) this.#complete(p);
        else this.#complete(p, new NetlinkError(errno, p.info, extAckMessage(m)));
      } else if (m.type !== NLMSG_NOOP && m.type !== NLMSG_OVERRUN) {
        p.replies.push(m);
      }
    }
  }
}

/** The kernel's text from an extended ACK (NLMSGERR_ATTR_MSG), if the reply carries one. */
export function extAckMessage(m: NlMessage): string | undefined {
  if (!(m.flags & NLM_F_ACK_TLVS)) return undefined;
  let off = 4;
  if (m.type === NLMSG_ERROR) {
    // nlmsgerr: errno, then the request's header, and its payload unless the reply was capped
    const reqLen = m.data.length >= 8 ? m.data.readUInt32LE(4) : NLMSG_HDRLEN;
    off += m.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : (reqLen + 3) & ~3;
  }
  let text: string | undefined;
  if (off <= m.data.length) {
    eachAttr(m.data.subarray(off), (type, data) => {
      if (type === NLMSGERR_ATTR_MSG) text = getStr(data);
    });
  }
  return text;
}

/**
 * Netlink message encoding and decoding, written for rtnetlink's needs: nested attributes (linkinfo, a veth
 * peer's ifinfomsg inside INFO_DATA, bridge port data), multipath next hops, and little allocation, since a
 * batch of hundreds of requests is encoded in one go. Host byte order (the kernel's) except where the
 * protocol says network order (ports, VLAN protocol). Addresses and MACs as bytes: lib/addr.
 * See docs/NET.md for the rest.
 */
import { NLMSG_HDRLEN } from './constants.js';

const align4 = (n: number) => (n + 3) & ~3;

/** Builds one netlink message: header, fixed struct, attributes (nested as needed). */
export class MessageWriter {
  buf: Buffer;
  off = 0;

  constructor(type: number, flags: number, size = 256) {
    this.buf = Buffer.alloc(size);
    this.buf.writeUInt16LE(type, 4);
    this.buf.writeUInt16LE(flags, 6);
    this.off = NLMSG_HDRLEN;
  }

  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.off + n + 64));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }

  /** Raw bytes (a fixed struct), padded to 4. */
  bytes(b: Uint8Array): this {
    this.ensure(align4(b.length));
    this.buf.set(b, this.off);
    this.off += align4(b.length);
    return this;
  }

  /** Zeroed space for a fixed struct, returned for the caller to fill. */
  struct(size: number): Buffer {
    this.ensure(align4(size));
    const s = this.buf.subarray(this.off, this.off + size);
    this.off += align4(size);
    return s;
  }

  private header(type: number, len: number): void {
    this.buf.writeUInt16LE(len, this.off);
    this.buf.writeUInt16LE(type, this.off + 2);
  }

  /** An attribute holding `data` as it is (addresses, MACs, nested bytes built elsewhere). */
  attr(type: number, data: Uint8Array): this {
    this.ensure(4 + align4(data.length));
    this.header(type, 4 + data.length);
    this.buf.set(data, this.off + 4);
    this.off += 4 + align4(data.length);
    return this;
  }
  /**
   * Reserves an attribute of `size` (≤ 4) bytes, padded to 8, and returns where its value goes. The caller
   * writes through `this.buf` only after this returns: `ensure` may have replaced the buffer.
   */
  private fixed(type: number, size: number): number {
    this.ensure(8);
    this.header(type, 4 + size);
    const at = this.off + 4;
    this.off += 8;
    return at;
  }
  /** A one-byte attribute. */
  u8(type: number, v: number): this {
    const at = this.fixed(type, 1);
    this.buf.writeUInt8(v, at);
    return this;
  }
  /** A 16-bit attribute in host (little-endian) order. */
  u16(type: number, v: number): this {
    const at = this.fixed(type, 2);
    this.buf.writeUInt16LE(v, at);
    return this;
  }
  /** A 16-bit attribute in network order (ports, VLAN protocol). */
  be16(type: number, v: number): this {
    const at = this.fixed(type, 2);
    this.buf.writeUInt16BE(v, at);
    return this;
  }
  /** An unsigned 32-bit attribute in host order. */
  u32(type: number, v: number): this {
    const at = this.fixed(type, 4);
    this.buf.writeUInt32LE(v >>> 0, at);
    return this;
  }
  /** A signed 32-bit attribute in host order (namespace ids, where -1 means "none"). */
  s32(type: number, v: number): this {
    const at = this.fixed(type, 4);
    this.buf.writeInt32LE(v, at);
    return this;
  }
  /** A NUL-terminated string attribute (names, kinds, labels). */
  str(type: number, s: string): this {
    const n = Buffer.byteLength(s);
    this.ensure(4 + align4(n + 1));
    this.header(type, 4 + n + 1);
    this.buf.write(s, this.off + 4);
    this.buf[this.off + 4 + n] = 0;
    this.off += 4 + align4(n + 1);
    return this;
  }
  /** An attribute with no payload: its presence is the value. */
  flag(type: number): this {
    this.ensure(4);
    this.header(type, 4);
    this.off += 4;
    return this;
  }
  /** Opens a nested attribute; close it with `end(start)`. */
  nest(type: number): number {
    this.ensure(4);
    const start = this.off;
    this.header(type, 4);
    this.off += 4;
    return start;
  }
  /** Closes the nested attribute opened at `start` (patches its length). */
  end(start: number): this {
    this.buf.writeUInt16LE(this.off - start, start);
    return this;
  }

  /** The finished message (length patched; the socket fills seq and port). */
  finish(): Buffer {
    this.buf.writeUInt32LE(this.off, 0);
    return this.buf.subarray(0, this.off);
  }
}

/** One received netlink message: header fields and the payload after the header. */
export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  port: number;
  data: Buffer;
}

/** Splits a datagram into its netlink messages. */
export function parseMessages(buf: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) break;
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      port: buf.readUInt32LE(off + 12),
      data: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** Attributes by type (the last one wins when repeated; use `eachAttr` for lists). */
export type Attrs = (Buffer | undefined)[];

/** Which attribute types a reader wants (see attrFilter); the others are skipped without a Buffer made for them. */
export type AttrFilter = Uint8Array;

/** An AttrFilter of `types`. */
export function attrFilter(...types: number[]): AttrFilter {
  const f = new Uint8Array(Math.max(0, ...types) + 1);
  for (const t of types) f[t] = 1;
  return f;
}

/**
 * The attributes of `buf[start, end)` by type; with `only`, just those types (a link carries some forty
 * attributes, a reader wants a dozen, and each one kept costs a Buffer).
 */
export function parseAttrs(buf: Buffer, start = 0, end = buf.length, only?: AttrFilter): Attrs {
  // eachAttr's loop without its callback: every link, address and route read goes through here.
  const out: Attrs = [];
  let off = start;
  while (off + 4 <= end) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > end) break;
    const type = buf.readUInt16LE(off + 2) & 0x3fff;
    if (only === undefined || only[type] === 1) out[type] = buf.subarray(off + 4, off + len);
    off += align4(len);
  }
  return out;
}

/** Calls `fn(type, payload)` for each attribute; the nested/byte-order flag bits are masked off. */
export function eachAttr(buf: Buffer, fn: (type: number, data: Buffer) => void): void {
  let off = 0;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > buf.length) break;
    fn(buf.readUInt16LE(off + 2) & 0x3fff, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
}

/** Attribute readers: the value, or undefined when the attribute is absent or too short. */
export const getU8 = (b: Buffer | undefined) => (b && b.length >= 1 ? b.readUInt8(0) : undefined);
/** See getU8. */
export const getU16 = (b: Buffer | undefined) => (b && b.length >= 2 ? b.readUInt16LE(0) : undefined);
/** See getU8 (network order). */
export const getBe16 = (b: Buffer | undefined) => (b && b.length >= 2 ? b.readUInt16BE(0) : undefined);
/** See getU8. */
export const getU32 = (b: Buffer | undefined) => (b && b.length >= 4 ? b.readUInt32LE(0) : undefined);
/** See getU8. */
export const getS32 = (b: Buffer | undefined) => (b && b.length >= 4 ? b.readInt32LE(0) : undefined);
/** A string attribute up to its NUL, or undefined when absent. */
export function getStr(b: Buffer | undefined): string | undefined {
  if (!b) return undefined;
  const nul = b.indexOf(0);
  return b.toString('utf8', 0, nul === -1 ? b.length : nul);
}

import { NLA_F_NESTED, NLA_TYPE_MASK, NLM_F_REQUEST } from './constants.js';

// Netlink is in host byte order; every platform tether targets (x86-64, arm64) is little endian.
const LE = true;
const NLMSG_HDRLEN = 16;
const NLA_HDRLEN = 4;
export const align4 = (n: number) => (n + 3) & ~3;

/**
 * Builds one netlink message: header, family struct, then attributes. Lengths of nested attributes
 * are patched when the nest closes, so callers write in one pass with no intermediate buffers.
 */
export class MessageWriter {
  private buf: Buffer;
  private view: DataView;
  private len = NLMSG_HDRLEN;
  readonly type: number;
  readonly flags: number;

  constructor(type: number, flags: number, capacity = 256) {
    this.type = type;
    this.flags = flags | NLM_F_REQUEST;
    this.buf = Buffer.alloc(capacity);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  private reserve(n: number): number {
    const at = this.len;
    const need = align4(at + n);
    if (need > this.buf.length) {
      const next = Buffer.alloc(Math.max(need, this.buf.length * 2));
      this.buf.copy(next, 0, 0, this.len);
      this.buf = next;
      this.view = new DataView(next.buffer, next.byteOffset, next.byteLength);
    }
    this.len = need;
    return at;
  }

  /** The fixed family header (ifinfomsg, ifaddrmsg, rtmsg, ndmsg) or any raw aligned bytes. */
  struct(bytes: Uint8Array): this {
    const at = this.reserve(bytes.length);
    this.buf.set(bytes, at);
    return this;
  }

  private attr(type: number, payload: number): number {
    const at = this.reserve(NLA_HDRLEN + payload);
    this.view.setUint16(at, NLA_HDRLEN + payload, LE);
    this.view.setUint16(at + 2, type, LE);
    return at + NLA_HDRLEN;
  }

  // Each reserves its attribute before touching buf or view: reserving may grow (replace) them, and
  // `this.view.setUint8(this.attr(...))` would write into the old, outgrown one.
  u8(type: number, v: number): this { const at = this.attr(type, 1); this.view.setUint8(at, v); return this; }
  u16(type: number, v: number): this { const at = this.attr(type, 2); this.view.setUint16(at, v, LE); return this; }
  u16be(type: number, v: number): this { const at = this.attr(type, 2); this.view.setUint16(at, v, false); return this; }
  u32(type: number, v: number): this { const at = this.attr(type, 4); this.view.setUint32(at, v >>> 0, LE); return this; }
  i32(type: number, v: number): this { const at = this.attr(type, 4); this.view.setInt32(at, v, LE); return this; }
  flag(type: number): this { this.attr(type, 0); return this; }
  bytes(type: number, b: Uint8Array): this { const at = this.attr(type, b.length); this.buf.set(b, at); return this; }
  /** NUL-terminated, as the kernel's NLA_NUL_STRING / NLA_STRING policies accept. */
  str(type: number, s: string): this {
    const n = Buffer.byteLength(s);
    const at = this.attr(type, n + 1);
    this.buf.write(s, at);
    this.buf[at + n] = 0;
    return this;
  }

  /** A nested attribute, flagged NLA_F_NESTED as modern kernels expect (IFLA_PROTINFO needs it). */
  nest(type: number, fill: () => void): this {
    const at = this.reserve(NLA_HDRLEN);
    fill();
    this.view.setUint16(at, this.len - at, LE);
    this.view.setUint16(at + 2, type | NLA_F_NESTED, LE);
    return this;
  }

  /** The finished message with its sequence number; the port id stays 0 (the kernel fills it in). */
  finish(seq: number): Buffer {
    this.view.setUint32(0, this.len, LE);
    this.view.setUint16(4, this.type, LE);
    this.view.setUint16(6, this.flags, LE);
    this.view.setUint32(8, seq >>> 0, LE);
    this.view.setUint32(12, 0, LE);
    return this.buf.subarray(0, this.len);
  }
}

export interface NetlinkMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** Everything after the 16-byte header (a view into the receive buffer: copy to keep). */
  payload: Buffer;
}

/** Splits a datagram into messages; a truncated trailing message is a protocol error, not skipped. */
export function parseMessages(buf: Buffer): NetlinkMessage[] {
  const out: NetlinkMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) {
      throw new RangeError(`netlink: malformed message length ${len} at offset ${off} of ${buf.length}`);
    }
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** Read-only view over a run of attributes. Repeated types keep every value (FDB flood lists, multipath). */
export class Attrs {
  private readonly map = new Map<number, Buffer[]>();

  constructor(buf: Buffer, start = 0, end = buf.length) {
    let off = start;
    while (off + NLA_HDRLEN <= end) {
      const len = buf.readUInt16LE(off);
      if (len < NLA_HDRLEN || off + len > end) break; // the kernel never sends this; stop rather than misread
      const type = buf.readUInt16LE(off + 2) & NLA_TYPE_MASK;
      const value = buf.subarray(off + NLA_HDRLEN, off + len);
      const list = this.map.get(type);
      if (list) list.push(value); else this.map.set(type, [value]);
      off += align4(len);
    }
  }

  has(type: number): boolean { return this.map.has(type); }
  get(type: number): Buffer | undefined { return this.map.get(type)?.[0]; }
  all(type: number): Buffer[] { return this.map.get(type) ?? []; }
  types(): number[] { return [...this.map.keys()]; }
  u8(type: number): number | undefined { const b = this.get(type); return b && b.length >= 1 ? b[0] : undefined; }
  u16(type: number): number | undefined { const b = this.get(type); return b && b.length >= 2 ? b.readUInt16LE(0) : undefined; }
  u16be(type: number): number | undefined { const b = this.get(type); return b && b.length >= 2 ? b.readUInt16BE(0) : undefined; }
  u32(type: number): number | undefined { const b = this.get(type); return b && b.length >= 4 ? b.readUInt32LE(0) : undefined; }
  i32(type: number): number | undefined { const b = this.get(type); return b && b.length >= 4 ? b.readInt32LE(0) : undefined; }
  str(type: number): string | undefined {
    const b = this.get(type);
    if (!b) return undefined;
    const nul = b.indexOf(0);
    return b.toString('utf8', 0, nul < 0 ? b.length : nul);
  }
  nested(type: number): Attrs | undefined { const b = this.get(type); return b ? new Attrs(b) : undefined; }
}

// Netlink messages as bytes: a writer that appends messages to a list of large chunks (a
// batch is sent with writev, so it is never copied into one buffer), and a reader of the
// kernel's answers. Layout (linux/netlink.h): nlmsghdr {u32 len, u16 type, u16 flags,
// u32 seq, u32 pid} in host order, then nfgenmsg {u8 family, u8 version, be16 res_id}, then
// attributes {u16 len, u16 type, payload padded to 4}. nf_tables numbers are big-endian.
import { NFGENMSG_LEN, NLA_F_NESTED, NLA_HDRLEN, NLMSG_HDRLEN } from './abi.js';

// Chunks start small and double up to CHUNK: a partial sync's batch is a few hundred bytes,
// and a 1 MiB buffer per transaction is external memory that V8 counts toward its next full
// collection (at 10k services, a full mark-compact of the daemon's heap every few dozen syncs).
const FIRST_CHUNK = 16 << 10;
const CHUNK = 1 << 20;
const align4 = (n: number): number => (n + 3) & ~3;
const EMPTY = Buffer.alloc(0);

export class MessageWriter {
  private readonly done: Buffer[] = [];
  private buf = Buffer.allocUnsafe(FIRST_CHUNK);
  private off = 0;
  /** where the message being written starts in `buf` */
  private msgStart = -1;
  private lastStart = -1;
  private bytesDone = 0;
  messages = 0;

  /** Starts a message; `resId` is nfgenmsg's res_id (the subsystem, for batch markers). */
  begin(type: number, flags: number, seq: number, family: number, resId = 0): void {
    this.ensure(NLMSG_HDRLEN + NFGENMSG_LEN);
    this.lastStart = -1;
    this.msgStart = this.off;
    const b = this.buf, o = this.off;
    b.writeUInt32LE(0, o);
    b.writeUInt16LE(type, o + 4);
    b.writeUInt16LE(flags, o + 6);
    b.writeUInt32LE(seq >>> 0, o + 8);
    b.writeUInt32LE(0, o + 12);
    b.writeUInt8(family, o + 16);
    b.writeUInt8(0, o + 17);
    b.writeUInt16BE(resId, o + 18);
    this.off += NLMSG_HDRLEN + NFGENMSG_LEN;
  }

  /** Ends the message: its length is written, it is part of the batch. */
  end(): void {
    this.buf.writeUInt32LE(this.off - this.msgStart, this.msgStart);
    this.lastStart = this.msgStart;
    this.msgStart = -1;
    this.messages++;
  }

  /** Adds flags to the message ended last (before another begins). */
  flagLast(flags: number): void {
    if (this.lastStart < 0 || this.msgStart >= 0) throw new Error('no finished message to flag');
    this.buf.writeUInt16LE(this.buf.readUInt16LE(this.lastStart + 6) | flags, this.lastStart + 6);
  }

  /** bytes of the message being written so far */
  get messageLength(): number {
    return this.off - this.msgStart;
  }

  /** offset in the message being written (what the kernel reports for a bad attribute) */
  get messageOffset(): number {
    return this.off - this.msgStart;
  }

  // The writers below set bytes one by one: for the short values netlink carries (names of
  // a few dozen bytes, keys of 4-40), that is several times faster than Buffer's own
  // write/fill calls, and a full sync at 10k services writes about a million of them.

  /** an attribute's header: length (host order) and type */
  private head(len: number, type: number): void {
    const b = this.buf, o = this.off;
    b[o] = len & 0xff; b[o + 1] = len >>> 8;
    b[o + 2] = type & 0xff; b[o + 3] = (type >>> 8) & 0xff;
  }

  bytes(type: number, payload: Buffer | Uint8Array): void {
    const len = NLA_HDRLEN + payload.length;
    this.ensure(align4(len));
    this.head(len, type);
    this.buf.set(payload, this.off + NLA_HDRLEN);
    this.pad(this.off + len, align4(len) - len);
    this.off += align4(len);
  }

  /** bytes given as a latin1 string (one char per byte), as kernel objects keep keys */
  latin1(type: number, s: string): void {
    const len = NLA_HDRLEN + s.length;
    this.ensure(align4(len));
    this.head(len, type);
    const b = this.buf, o = this.off + NLA_HDRLEN;
    for (let i = 0; i < s.length; i++) b[o + i] = s.charCodeAt(i);
    this.pad(this.off + len, align4(len) - len);
    this.off += align4(len);
  }

  /** a NUL-terminated string */
  str(type: number, s: string): void {
    // room for the worst case (3 bytes a UTF-16 unit), then one pass that writes ASCII as it goes
    this.ensure(align4(NLA_HDRLEN + 3 * s.length + 1));
    const b = this.buf, at = this.off + NLA_HDRLEN;
    let n = 0;
    for (; n < s.length; n++) {
      const c = s.charCodeAt(n);
      if (c > 0x7f) break;
      b[at + n] = c;
    }
    if (n < s.length) n = b.write(s, at, 'utf8');
    const len = NLA_HDRLEN + n + 1;
    this.head(len, type);
    this.pad(at + n, align4(len) - len + 1);
    this.off += align4(len);
  }

  /**
   * A user-data attribute holding one item, a NUL-terminated string (what nft stores a
   * comment as: libnftnl's TLV, u8 tag, u8 length, value).
   */
  udataString(type: number, tag: number, s: string): void {
    const n = asciiLength(s) ?? Buffer.byteLength(s);
    if (n + 1 > 255) throw new Error('user data item over 255 bytes');
    const len = NLA_HDRLEN + 2 + n + 1;
    this.ensure(align4(len));
    this.head(len, type);
    const o = this.off + NLA_HDRLEN;
    this.buf[o] = tag;
    this.buf[o + 1] = n + 1;
    this.text(s, n, o + 2);
    this.pad(o + 2 + n, align4(len) - len + 1);
    this.off += align4(len);
  }

  /** writes `s` (`n` bytes as UTF-8) at `at` */
  private text(s: string, n: number, at: number): void {
    if (n !== s.length) { this.buf.write(s, at, n, 'utf8'); return; }
    const b = this.buf;
    for (let i = 0; i < n; i++) b[at + i] = s.charCodeAt(i);
  }

  u8(type: number, v: number): void {
    this.ensure(8);
    this.head(5, type);
    const b = this.buf, o = this.off + 4;
    b[o] = v & 0xff; b[o + 1] = 0; b[o + 2] = 0; b[o + 3] = 0;
    this.off += 8;
  }

  /** 16 bits, network order (ports, conntrack zones) */
  u16(type: number, v: number): void {
    this.ensure(8);
    this.buf.writeUInt16LE(6, this.off);
    this.buf.writeUInt16LE(type, this.off + 2);
    this.buf.writeUInt32LE(0, this.off + 4);
    this.buf.writeUInt16BE(v, this.off + 4);
    this.off += 8;
  }

  /** 32 bits in host order, which this module writes little-endian as it does nlmsghdr: the
   *  few attributes the kernel reads as plain NLA_U32 (ctnetlink's filter flags) */
  u32host(type: number, v: number): void {
    this.ensure(8);
    this.buf.writeUInt16LE(8, this.off);
    this.buf.writeUInt16LE(type, this.off + 2);
    this.buf.writeUInt32LE(v >>> 0, this.off + 4);
    this.off += 8;
  }

  u32(type: number, v: number): void {
    this.ensure(8);
    this.head(8, type);
    const b = this.buf, o = this.off + 4;
    b[o] = (v >>> 24) & 0xff; b[o + 1] = (v >>> 16) & 0xff; b[o + 2] = (v >>> 8) & 0xff; b[o + 3] = v & 0xff;
    this.off += 8;
  }

  u64(type: number, v: bigint): void {
    this.ensure(12);
    this.buf.writeUInt16LE(12, this.off);
    this.buf.writeUInt16LE(type, this.off + 2);
    this.buf.writeBigUInt64BE(v, this.off + 4);
    this.off += 12;
  }

  /** Opens a nested attribute; pass the result to close(). */
  open(type: number): number {
    this.ensure(NLA_HDRLEN);
    const at = this.off - this.msgStart;
    const t = type | NLA_F_NESTED;
    this.buf[this.off + 2] = t & 0xff; this.buf[this.off + 3] = (t >>> 8) & 0xff;
    this.off += NLA_HDRLEN;
    return at;
  }

  close(at: number): void {
    const len = this.off - this.msgStart - at;
    if (len > 0xffff) throw new Error(`netlink attribute of ${len} bytes: the most one can hold is 65,535`);
    const o = this.msgStart + at;
    this.buf[o] = len & 0xff; this.buf[o + 1] = len >>> 8;
  }

  /** The finished messages, as the chunks to send. */
  finish(): Buffer[] {
    if (this.msgStart >= 0) throw new Error('a netlink message was left unfinished');
    const out = this.off > 0 ? [...this.done, this.buf.subarray(0, this.off)] : [...this.done];
    this.done.length = 0;
    this.bytesDone = 0;
    // usually thrown away after this: a reused writer allocates again on its first write
    this.buf = EMPTY;
    this.off = 0;
    this.messages = 0;
    return out;
  }

  get length(): number {
    return this.bytesDone + this.off;
  }

  private pad(at: number, n: number): void {
    for (let i = 0; i < n; i++) this.buf[at + i] = 0;
  }

  // A message never spans two chunks: when it outgrows this one, what was written of it
  // moves to the next (nested-attribute offsets are relative to the message, so they hold).
  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const start = this.msgStart >= 0 ? this.msgStart : this.off;
    const partial = this.off - start;
    const next = Buffer.allocUnsafe(Math.max(FIRST_CHUNK, Math.min(CHUNK, 2 * this.buf.length), 2 * (partial + n)));
    this.buf.copy(next, 0, start, this.off);
    if (start > 0) {
      this.done.push(this.buf.subarray(0, start));
      this.bytesDone += start;
    }
    this.buf = next;
    this.off = partial;
    if (this.msgStart >= 0) this.msgStart = 0;
  }
}

/** The length of `s` when every character is ASCII (so one byte each in UTF-8), else undefined. */
function asciiLength(s: string): number | undefined {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return undefined;
  return s.length;
}

/** One netlink message of a received datagram. */
export interface Message {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly pid: number;
  /** the whole message (header included) */
  readonly data: Buffer;
}

export function* messages(buf: Buffer): Generator<Message> {
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) return;
    yield { type: buf.readUInt16LE(off + 4), flags: buf.readUInt16LE(off + 6), seq: buf.readUInt32LE(off + 8), pid: buf.readUInt32LE(off + 12), data: buf.subarray(off, off + len) };
    off += align4(len);
  }
}

/** Attributes of a range, by type (the last one wins; nf_tables never repeats a type except in lists). */
export type Attrs = Map<number, Buffer>;

export function attrs(buf: Buffer, from = 0, to = buf.length): Attrs {
  const out: Attrs = new Map();
  for (const [type, value] of attrList(buf, from, to)) out.set(type, value);
  return out;
}

/** Attributes in order, e.g. the elements of a list. */
export function attrList(buf: Buffer, from = 0, to = buf.length): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  let off = from;
  while (off + NLA_HDRLEN <= to) {
    const len = buf.readUInt16LE(off);
    if (len < NLA_HDRLEN || off + len > to) break;
    out.push([buf.readUInt16LE(off + 2) & ~NLA_F_NESTED & 0xffff, buf.subarray(off + NLA_HDRLEN, off + len)]);
    off += align4(len);
  }
  return out;
}

/** The attributes of an nf_tables message (after nlmsghdr and nfgenmsg). */
export const bodyAttrs = (m: Message): Attrs => attrs(m.data, NLMSG_HDRLEN + NFGENMSG_LEN);
export const familyOf = (m: Message): number => m.data.readUInt8(NLMSG_HDRLEN);

export const str = (b: Buffer | undefined): string | undefined => {
  if (!b) return undefined;
  const nul = b.indexOf(0);
  return b.toString('utf8', 0, nul < 0 ? b.length : nul);
};
export const u32 = (b: Buffer | undefined): number | undefined => (b && b.length >= 4 ? b.readUInt32BE(0) : undefined);
export const u64 = (b: Buffer | undefined): bigint | undefined => (b && b.length >= 8 ? b.readBigUInt64BE(0) : undefined);

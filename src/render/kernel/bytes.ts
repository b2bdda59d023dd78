// Values as nf_tables holds them. Addresses and ports in network byte order; a concatenation
// is its fields one after the other, each padded to 4 bytes (a register); numgen values and
// marks are host-order 32-bit words. And back to text, for the text writer and dumps.
import os from 'node:os';
import type { Family } from '../../ir/types.js';
import type { Protocol } from '../../model/types.js';
import { compressIPv6 } from '../../model/ip.js';

const LE = os.endianness() === 'LE';

export const PROTO_NUMBER: Readonly<Record<Protocol, number>> = { tcp: 6, udp: 17, sctp: 132 };
const PROTO_NAME = new Map<number, string>([[6, 'tcp'], [17, 'udp'], [132, 'sctp']]);

export function addrBytes(ip: string): Buffer {
  if (!ip.includes(':')) return Buffer.from(ip.split('.').map(Number));
  const out = Buffer.alloc(16);
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = [...h, ...Array<string>(tail !== undefined ? 8 - h.length - t.length : 0).fill('0'), ...t];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

export const addrLen = (f: Family): number => (f === 'ip' ? 4 : 16);

/** a 4-byte register holding a host-order word */
export function word(n: number): Buffer {
  const b = Buffer.alloc(4);
  if (LE) b.writeUInt32LE(n >>> 0);
  else b.writeUInt32BE(n >>> 0);
  return b;
}
export const readWord = (b: Buffer, at = 0): number => (LE ? b.readUInt32LE(at) : b.readUInt32BE(at));

// Keys and values are kept as latin1 strings, one char per byte, and built as strings: a
// 10k-service table has hundreds of thousands of them, and a Buffer each would cost more
// than the bytes.
const chr = String.fromCharCode;

/** inet_proto in a concatenation: one byte, padded */
export const protoField = (p: Protocol): string => chr(PROTO_NUMBER[p], 0, 0, 0);
/** inet_service in a concatenation: two bytes big-endian, padded */
export const portField = (port: number): string => chr((port >> 8) & 0xff, port & 0xff, 0, 0);
/** a host-order word (numgen values) */
export const wordField = (n: number): string => (LE ? chr(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24) : chr(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff));
/** an address field: a v4 address is its own register, a v6 one four */
export function addrField(ip: string): string {
  if (!ip.includes(':')) {
    const d1 = ip.indexOf('.'), d2 = ip.indexOf('.', d1 + 1), d3 = ip.indexOf('.', d2 + 1);
    return chr(+ip.slice(0, d1), +ip.slice(d1 + 1, d2), +ip.slice(d2 + 1, d3), +ip.slice(d3 + 1));
  }
  return addrBytes(ip).toString('latin1');
}

export const fromLatin1 = (s: string): Buffer => Buffer.from(s, 'latin1');

/**
 * A key or value built field by field into one flat string, without the pieces: each push
 * appends the field's bytes, `take` returns them as one string and starts over. What the
 * daemon builds for every dnat-map element (hundreds of thousands at 10k services); the same
 * bytes as the field functions above, concatenated.
 */
export class KeyBuilder {
  private readonly codes: number[] = [];
  addr(ip: string): this {
    const c = this.codes;
    if (ip.includes(':')) {
      for (const b of addrBytes(ip)) c.push(b);
      return this;
    }
    let v = 0;
    for (let i = 0; i < ip.length; i++) {
      const ch = ip.charCodeAt(i);
      if (ch === 0x2e) { c.push(v); v = 0; } else v = v * 10 + (ch - 0x30);
    }
    c.push(v);
    return this;
  }
  proto(p: Protocol): this {
    this.codes.push(PROTO_NUMBER[p], 0, 0, 0);
    return this;
  }
  port(port: number): this {
    this.codes.push((port >> 8) & 0xff, port & 0xff, 0, 0);
    return this;
  }
  word(n: number): this {
    if (LE) this.codes.push(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
    else this.codes.push(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
    return this;
  }
  take(): string {
    const s = String.fromCharCode.apply(null, this.codes);
    this.codes.length = 0;
    return s;
  }
}

/**
 * The same string, in one piece: a key built by `+` is a tree of pieces (a cons string) that
 * costs several times its bytes for as long as it is kept. Hundreds of thousands are kept.
 */
export function flat(s: string): string {
  const codes = new Array<number>(s.length);
  for (let i = 0; i < s.length; i++) codes[i] = s.charCodeAt(i);
  return String.fromCharCode.apply(null, codes);
}

export function addrText(b: Buffer): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(b.readUInt16BE(i));
  return compressIPv6(g); // as model/ip.ts writes every IPv6 address
}

export const protoText = (s: string, at: number): string => PROTO_NAME.get(s.charCodeAt(at)) ?? String(s.charCodeAt(at));
export const portText = (s: string, at: number): string => String(s.charCodeAt(at) * 256 + s.charCodeAt(at + 1));
export const wordText = (s: string, at: number): string => String(LE
  ? s.charCodeAt(at) + s.charCodeAt(at + 1) * 0x100 + s.charCodeAt(at + 2) * 0x10000 + s.charCodeAt(at + 3) * 0x1000000
  : s.charCodeAt(at + 3) + s.charCodeAt(at + 2) * 0x100 + s.charCodeAt(at + 1) * 0x10000 + s.charCodeAt(at) * 0x1000000);
/** an address field of a key string */
export function addrTextAt(s: string, at: number, len: number): string {
  if (len === 4) return `${s.charCodeAt(at)}.${s.charCodeAt(at + 1)}.${s.charCodeAt(at + 2)}.${s.charCodeAt(at + 3)}`;
  return addrText(Buffer.from(s.slice(at, at + len), 'latin1'));
}

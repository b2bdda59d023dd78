// Values as nf_tables holds them. Addresses and ports in network byte order; a concatenation
// is its fields one after the other, each padded to 4 bytes (a register); numgen values and
// marks are host-order 32-bit words. And back to text, for the text writer and dumps.
import os from 'node:os';
import type { Family } from '../../ir/types.js';
import type { Protocol } from '../../model/types.js';

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

/** inet_proto in a concatenation: one byte, padded */
export const protoField = (p: Protocol): Buffer => Buffer.from([PROTO_NUMBER[p], 0, 0, 0]);
/** inet_service in a concatenation: two bytes big-endian, padded */
export const portField = (port: number): Buffer => Buffer.from([(port >> 8) & 0xff, port & 0xff, 0, 0]);
/** an address field: a v4 address is its own register, a v6 one four */
export const addrField = (ip: string): Buffer => addrBytes(ip);

export const latin1 = (...parts: Buffer[]): string => Buffer.concat(parts).toString('latin1');
export const fromLatin1 = (s: string): Buffer => Buffer.from(s, 'latin1');

export function addrText(b: Buffer): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(b.readUInt16BE(i));
  // RFC 5952, as model/ip.ts writes it
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  return best < 0 ? hex.join(':') : `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export const protoText = (b: Buffer, at: number): string => PROTO_NAME.get(b[at]!) ?? String(b[at]);
export const portText = (b: Buffer, at: number): string => String(b.readUInt16BE(at));

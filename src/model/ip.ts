// IP addresses and CIDRs as the API hands them to us, validated and normalized once.
// Only this module creates the branded types; everything past model/ may trust them.
import { isIPv6 } from 'node:net';
import { type Result, ok, err } from './result.js';

type Brand<T, B extends string> = T & { readonly __brand: B };
export type IPFamily = 'ipv4' | 'ipv6';
export type IP = Brand<string, 'IP'>;
export interface Cidr {
  readonly family: IPFamily;
  /** network address, normalized (host bits cleared) */
  readonly addr: IP;
  readonly prefix: number;
  /** canonical text, e.g. 10.0.0.0/8 */
  readonly text: string;
}

// kube-proxy parses "sloppily": IPv4 octets with leading zeros (172.30.0.041) are read as
// decimal, as Go's ParseIPSloppy does. One pass: four octets of 1-3 digits, each at most 255.
// An address already in canonical form is returned as the same string (the model then shares
// it with the API object instead of holding a copy: there is one per endpoint).
function parseIPv4(s: string): string | undefined {
  const octets = [0, 0, 0, 0];
  let n = 0, digits = 0, v = 0, canonical = true;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 0x2e; // a '.' after the last octet
    if (c >= 0x30 && c <= 0x39) {
      if (digits === 3) return undefined;
      if (digits === 1 && v === 0) canonical = false;
      v = v * 10 + (c - 0x30);
      digits++;
      continue;
    }
    if (c !== 0x2e || digits === 0 || v > 255 || n === 4) return undefined;
    octets[n++] = v;
    digits = 0;
    v = 0;
  }
  if (n !== 4) return undefined;
  return canonical ? s : octets.join('.');
}

export function parseIP(input: string): Result<IP, string> {
  const s = input.trim();
  if (s.length === 0 || s.length > 45) return err(`"${printable(input)}" is not an IP address`);
  if (s.includes(':')) {
    if (!isIPv6(s) || s.includes('%')) return err(`"${printable(input)}" is not an IP address`);
    return ok(canonicalIPv6(s) as IP);
  }
  const v4 = parseIPv4(s);
  if (v4 === undefined) return err(`"${printable(input)}" is not an IP address`);
  return ok(v4 as IP);
}

/** An address as the kernel sends it (4 or 16 bytes, network order); undefined for any other length. */
export function ipFromBytes(b: Uint8Array): IP | undefined {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}` as IP;
  if (b.length !== 16) return undefined;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  return compressIPv6(groups) as IP;
}

export function parseCidr(input: string): Result<Cidr, string> {
  const s = input.trim();
  const slash = s.indexOf('/');
  if (slash < 0) return err(`"${printable(input)}" is not a CIDR`);
  const ip = parseIP(s.slice(0, slash));
  const pfx = s.slice(slash + 1);
  if (!ip.ok || !/^[0-9]{1,3}$/.test(pfx)) return err(`"${printable(input)}" is not a CIDR`);
  const family = familyOf(ip.value);
  const prefix = Number(pfx);
  if (prefix > (family === 'ipv4' ? 32 : 128)) return err(`"${printable(input)}" has a prefix too long for its family`);
  const addr = maskAddress(ip.value, prefix);
  return ok({ family, addr, prefix, text: `${addr}/${prefix}` });
}

export function familyOf(ip: IP): IPFamily {
  return ip.includes(':') ? 'ipv6' : 'ipv4';
}

function toBigInt(ip: IP): bigint {
  if (familyOf(ip) === 'ipv4') {
    return ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
  }
  return expandIPv6(ip).reduce((acc, h) => (acc << 16n) | BigInt(h), 0n);
}

function fromBigInt(n: bigint, family: IPFamily): IP {
  if (family === 'ipv4') {
    return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 255n)).join('.') as IP;
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  return compressIPv6(groups) as IP;
}

export function cidrContains(c: Cidr, ip: IP): boolean {
  if (familyOf(ip) !== c.family) return false;
  return maskAddress(ip, c.prefix) === c.addr;
}

export function isLoopback(ip: IP): boolean {
  return familyOf(ip) === 'ipv4' ? ip.startsWith('127.') : ip === '::1';
}

function maskAddress(ip: IP, prefix: number): IP {
  const family = familyOf(ip);
  const bits = family === 'ipv4' ? 32 : 128;
  const n = toBigInt(ip);
  const mask = prefix === 0 ? 0n : ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefix)) - 1n);
  return fromBigInt(n & mask, family);
}

function expandIPv6(s: string): number[] {
  let text = s;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = text.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (v4?.[1]) {
    const o = v4[1].split('.').map(Number);
    text = text.slice(0, -v4[1].length) + `${(((o[0] ?? 0) << 8) | (o[1] ?? 0)).toString(16)}:${(((o[2] ?? 0) << 8) | (o[3] ?? 0)).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const fill = tail !== undefined ? 8 - h.length - t.length : 0;
  return [...h, ...Array<string>(fill).fill('0'), ...t].map((g) => parseInt(g, 16));
}

function canonicalIPv6(s: string): string {
  return compressIPv6(expandIPv6(s.toLowerCase()));
}

// RFC 5952: lowercase, longest run (>1) of zero groups compressed, first one on ties.
export function compressIPv6(g: number[]): string {
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** A value from the API, shortened and stripped of control characters, for error messages. */
export function printable(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
  const clean = s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
  return clean.length > 64 ? `${clean.slice(0, 61)}...` : clean;
}

/** A CIDR written in our own source code; throws on a typo, which is a bug. */
export function constCidr(text: string): Cidr {
  const c = parseCidr(text);
  if (!c.ok) throw new Error(`bad constant CIDR ${text}`);
  return c.value;
}

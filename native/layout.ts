// Byte layout of the eBPF maps, mirroring bpf/nftproxy_maps.h EXACTLY (the C header has
// _Static_asserts on every size; test/bpf/layout.test.ts checks these offsets against the
// BTF of the shipped object).
//
// All addresses are 16 bytes; IPv4 is stored v4-mapped (::ffff:a.b.c.d). Ports are in
// NETWORK byte order. proto = 6 (TCP) / 17 (UDP). Every pad byte is zero.
//
//   struct svc_key    { u8 addr[16] @0; u16 port @16; u8 proto @18; u8 pad @19; }            20 bytes
//   struct svc_val    { u32 gen @0; u16 count @4; u16 flags @6; u32 affinity_timeout_s @8; u16 local_count @12; u16 pad @14; }
//                     16 bytes (host order; flags bit0 = ClientIP; slots 0..local_count-1 are on this node)
//   struct be_key     { u32 gen @0; u32 slot @4; }                                            8 bytes (host order)
//   struct be_val     { u8 addr[16] @0; u16 port @16; u16 pad @18; }                         20 bytes
//   struct member_key { u32 gen @0; u32 pad @4; be_val be @8; }                              28 bytes -> u8 1
//   struct aff_key    { u64 netns_cookie @0; svc_key svc @8; u32 pad @28; }                  32 bytes
//   struct aff_val    { be_val be @0; u32 pad @20; u64 last_ns @24; }                        32 bytes
//   struct rev_key    { u64 cookie @0; u8 addr[16] @8; u16 port @24; u16 pad @26; u32 pad2 @28; } 32 bytes
//   struct rev_val    { u8 addr[16] @0; u16 port @16; u16 pad @18; }                         20 bytes
//   struct dead_key   { u8 addr[16] @0; u16 port @16; u8 proto @18; u8 pad @19; }            20 bytes -> u8 1
//   struct cidr_key   { u32 prefixlen @0; u8 addr[16] @4; }                                  20 bytes -> u8 keep
//   struct destroyed_rec { u8 addr[16] @0; u16 port @16 (net); u16 family @18; s32 err @20; } 24 bytes
//
// Maps: nftproxy_svcs HASH svc_key->svc_val (65536), nftproxy_backends HASH be_key->be_val
// (1048576, no prealloc), nftproxy_members HASH member_key->u8 (1048576, no prealloc),
// nftproxy_affinity LRU_HASH aff_key->aff_val (65536), nftproxy_revnat LRU_HASH
// rev_key->rev_val (262144), nftproxy_podcidrs LPM_TRIE cidr_key->u8 (1024, no prealloc);
// sock_destroy.o: nftproxy_dead HASH dead_key->u8 (4096).
// Integers other than ports are in HOST byte order (little-endian on x86-64).
import { isIPv4, isIPv6 } from 'node:net';

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const SVC_F_AFFINITY = 0x1;

export type Proto = 'tcp' | 'udp' | 6 | 17;

export const SIZES = {
  svc_key: 20,
  svc_val: 16,
  be_key: 8,
  be_val: 20,
  member_key: 28,
  member_val: 1,
  aff_key: 32,
  aff_val: 32,
  rev_key: 32,
  rev_val: 20,
  dead_key: 20,
  dead_val: 1,
  cidr_key: 20,
  cidr_val: 1,
  destroyed_rec: 24,
} as const;

/** Byte offsets of every field (what the C header says). */
export const OFFSETS = {
  svc_key: { addr: 0, port: 16, proto: 18, pad: 19 },
  svc_val: { gen: 0, count: 4, flags: 6, affinity_timeout_s: 8, local_count: 12, pad: 14 },
  be_key: { gen: 0, slot: 4 },
  be_val: { addr: 0, port: 16, pad: 18 },
  member_key: { gen: 0, pad: 4, be: 8 },
  aff_key: { netns_cookie: 0, svc: 8, pad: 28 },
  aff_val: { be: 0, pad: 20, last_ns: 24 },
  rev_key: { cookie: 0, addr: 8, port: 24, pad: 26, pad2: 28 },
  rev_val: { addr: 0, port: 16, pad: 18 },
  dead_key: { addr: 0, port: 16, proto: 18, pad: 19 },
  cidr_key: { prefixlen: 0, addr: 4 },
  destroyed_rec: { addr: 0, port: 16, family: 18, err: 20 },
} as const;

export const MAPS = {
  svcs: 'nftproxy_svcs',
  backends: 'nftproxy_backends',
  members: 'nftproxy_members',
  affinity: 'nftproxy_affinity',
  revnat: 'nftproxy_revnat',
  dead: 'nftproxy_dead',
  podcidrs: 'nftproxy_podcidrs',
} as const;

export interface Endpoint {
  addr: string;
  port: number;
}
export interface ServiceKey extends Endpoint {
  proto: Proto;
}
export interface ServiceVal {
  gen: number;
  count: number;
  /** ClientIP session affinity */
  affinity?: boolean;
  affinityTimeoutS?: number;
  /** slots 0..localCount-1 hold the backends on this node (probed for hairpins) */
  localCount?: number;
}

/** A service with more node-local backends than this stays with nft (bpf/nftproxy_maps.h). */
export const LOCAL_PROBE_MAX = 16;

const protoNumber = (p: Proto): number => {
  if (p === 'tcp' || p === 6) return IPPROTO_TCP;
  if (p === 'udp' || p === 17) return IPPROTO_UDP;
  throw new Error(`unsupported protocol ${String(p)}`);
};

const u32 = (n: number, what: string): number => {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`${what} out of range: ${n}`);
  return n;
};
const u16 = (n: number, what: string): number => {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new Error(`${what} out of range: ${n}`);
  return n;
};

/** 16 bytes: IPv6 as is, IPv4 as ::ffff:a.b.c.d. Throws on anything that is not an IP. */
export function addrBytes(addr: string): Buffer {
  const out = Buffer.alloc(16);
  if (isIPv4(addr)) {
    out[10] = 0xff;
    out[11] = 0xff;
    addr.split('.').forEach((o, i) => (out[12 + i] = Number(o)));
    return out;
  }
  if (!isIPv6(addr)) throw new Error(`not an IP address: ${JSON.stringify(addr)}`);
  let s = addr;
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const m = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (m) {
    const o = m[2]!.split('.').map(Number);
    s = `${m[1]}${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') as [string, string] : [s, undefined];
  const hs = head ? head.split(':') : [];
  const ts = tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups = tail === undefined ? hs : [...hs, ...Array(8 - hs.length - ts.length).fill('0'), ...ts];
  if (groups.length !== 8) throw new Error(`not an IP address: ${JSON.stringify(addr)}`);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** The inverse of addrBytes: v4-mapped addresses come back as dotted quads. */
export function addrString(b: Buffer, offset = 0): string {
  const a = b.subarray(offset, offset + 16);
  if (a.subarray(0, 10).every((x) => x === 0) && a[10] === 0xff && a[11] === 0xff) return `${a[12]}.${a[13]}.${a[14]}.${a[15]}`;
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(a.readUInt16BE(i * 2).toString(16));
  // RFC 5952: compress the longest run (>= 2) of zero groups.
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

export const isV4 = (addr: string): boolean => isIPv4(addr) || (isIPv6(addr) && addrString(addrBytes(addr)).includes('.'));

function writeEndpoint(b: Buffer, off: number, e: Endpoint): void {
  addrBytes(e.addr).copy(b, off);
  b.writeUInt16BE(u16(e.port, 'port'), off + 16); // network order
}

export function encodeSvcKey(k: ServiceKey): Buffer {
  const b = Buffer.alloc(SIZES.svc_key);
  writeEndpoint(b, 0, k);
  b[18] = protoNumber(k.proto);
  return b;
}

export function decodeSvcKey(b: Buffer, offset = 0): { addr: string; port: number; proto: number } {
  return { addr: addrString(b, offset), port: b.readUInt16BE(offset + 16), proto: b[offset + 18]! };
}

export function encodeSvcVal(v: ServiceVal): Buffer {
  const b = Buffer.alloc(SIZES.svc_val);
  b.writeUInt32LE(u32(v.gen, 'gen'), 0);
  b.writeUInt16LE(u16(v.count, 'count'), 4);
  b.writeUInt16LE(v.affinity ? SVC_F_AFFINITY : 0, 6);
  b.writeUInt32LE(u32(v.affinityTimeoutS ?? 0, 'affinity timeout'), 8);
  const local = v.localCount ?? 0;
  if (local > v.count || local > LOCAL_PROBE_MAX) throw new Error(`local backends out of range: ${local} of ${v.count} (at most ${LOCAL_PROBE_MAX})`);
  b.writeUInt16LE(local, 12);
  return b;
}

export function decodeSvcVal(b: Buffer): Required<ServiceVal> {
  return { gen: b.readUInt32LE(0), count: b.readUInt16LE(4), affinity: (b.readUInt16LE(6) & SVC_F_AFFINITY) !== 0, affinityTimeoutS: b.readUInt32LE(8), localCount: b.readUInt16LE(12) };
}

export function encodeBeKey(gen: number, slot: number): Buffer {
  const b = Buffer.alloc(SIZES.be_key);
  b.writeUInt32LE(u32(gen, 'gen'), 0);
  b.writeUInt32LE(u32(slot, 'slot'), 4);
  return b;
}

export function encodeBeVal(e: Endpoint): Buffer {
  const b = Buffer.alloc(SIZES.be_val);
  writeEndpoint(b, 0, e);
  return b;
}

export function decodeBeVal(b: Buffer, offset = 0): Endpoint {
  return { addr: addrString(b, offset), port: b.readUInt16BE(offset + 16) };
}

export function encodeMemberKey(gen: number, be: Endpoint): Buffer {
  const b = Buffer.alloc(SIZES.member_key);
  b.writeUInt32LE(u32(gen, 'gen'), 0);
  writeEndpoint(b, 8, be);
  return b;
}

export const MEMBER_VAL = Buffer.from([1]);

export function encodeAffKey(netnsCookie: bigint, svc: ServiceKey): Buffer {
  const b = Buffer.alloc(SIZES.aff_key);
  b.writeBigUInt64LE(netnsCookie, 0);
  encodeSvcKey(svc).copy(b, 8);
  return b;
}

export function decodeAffKey(b: Buffer): { netnsCookie: bigint; svc: { addr: string; port: number; proto: number } } {
  return { netnsCookie: b.readBigUInt64LE(0), svc: decodeSvcKey(b, 8) };
}

export function encodeAffVal(be: Endpoint, lastNs: bigint): Buffer {
  const b = Buffer.alloc(SIZES.aff_val);
  writeEndpoint(b, 0, be);
  b.writeBigUInt64LE(lastNs, 24);
  return b;
}

export function decodeAffVal(b: Buffer): { be: Endpoint; lastNs: bigint } {
  return { be: decodeBeVal(b, 0), lastNs: b.readBigUInt64LE(24) };
}

export function decodeRevKey(b: Buffer): { cookie: bigint; be: Endpoint } {
  return { cookie: b.readBigUInt64LE(0), be: { addr: addrString(b, 8), port: b.readUInt16BE(24) } };
}

export function decodeRevVal(b: Buffer): Endpoint {
  return decodeBeVal(b, 0);
}

export function encodeDeadKey(be: Endpoint, proto: Proto = 'udp'): Buffer {
  return encodeSvcKey({ ...be, proto });
}

export const DEAD_VAL = Buffer.from([1]);

export function decodeDestroyedRecs(b: Buffer): Array<Endpoint & { family: number; err: number }> {
  const out: Array<Endpoint & { family: number; err: number }> = [];
  for (let o = 0; o + SIZES.destroyed_rec <= b.length; o += SIZES.destroyed_rec) {
    out.push({ ...decodeBeVal(b, o), family: b.readUInt16LE(o + 18), err: b.readInt32LE(o + 20) });
  }
  return out;
}

/** An LPM key: `prefixlen` bits of the 16-byte (v4-mapped) address. */
export function encodeCidrKey(addr: string, prefixlen: number): Buffer {
  if (!Number.isInteger(prefixlen) || prefixlen < 0 || prefixlen > 128) throw new Error(`prefix length out of range: ${prefixlen}`);
  const b = Buffer.alloc(SIZES.cidr_key);
  b.writeUInt32LE(prefixlen, 0);
  const a = addrBytes(addr);
  // host bits zeroed: the trie keys on the prefix only
  for (let i = 0; i < 16; i++) {
    const keep = Math.max(0, Math.min(8, prefixlen - i * 8));
    b[4 + i] = a[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  return b;
}

export function decodeCidrKey(b: Buffer): { addr: string; prefixlen: number } {
  return { addr: addrString(b, 4), prefixlen: b.readUInt32LE(0) };
}

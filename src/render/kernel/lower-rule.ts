// IR rule -> the VM expressions nft 1.0.6 generates for the same rule's text, so that a
// table written over netlink is the table `nft -f` builds from dump's text (test/render/
// kernel-equivalence.kernel.test.ts compares the kernel's listings of both). Where nft makes a
// choice (how much of an address a prefix loads, which register a concatenation uses), this
// file makes the same one; each case says what nft does.
import type { AddrMatch, AffinityKey, Family, Match, Rule, Statement, Verdict } from '../../ir/types.js';
import { MASQ_MARK } from '../../ir/types.js';
import { assertNever } from '../../model/result.js';
import type { Protocol } from '../../model/types.js';
import { dispatchSetName, dnatGroupNames, picksFromGroup } from '../lower-dnat.js';
import { type Aliases, renderRule, quote } from '../rule-text.js';
import { PROTO_NUMBER, addrBytes, addrLen, word } from './bytes.js';
import type { AnonElement, AnonSet, Expr, KRule, KVerdict, Reg } from './types.js';

/**
 * The register nft uses for the field at byte `offset` of a concatenation: a 16-byte
 * register where the offset allows (1 = NFT_REG_1), a 4-byte one otherwise (8 = NFT_REG32_00).
 */
export const regAt = (offset: number): Reg => (offset % 16 === 0 ? 1 + offset / 16 : 8 + offset / 4);

const NF_NAT_RANGE_PROTO_SPECIFIED = 0x2;
const NF_NAT_RANGE_PROTO_RANDOM_FULLY = 0x10;
const RTN_LOCAL = 2;
const CT_STATE_NEW = 0x8;
const IPS_DST_NAT = 0x20;

const addrOffset = (f: Family, field: 'saddr' | 'daddr'): number => (f === 'ip' ? (field === 'saddr' ? 12 : 16) : (field === 'saddr' ? 8 : 24));
const loadAddr = (f: Family, field: 'saddr' | 'daddr', dreg: Reg): Expr => ({ op: 'payload', base: 'network', offset: addrOffset(f, field), len: addrLen(f), dreg });
const loadDport = (dreg: Reg): Expr => ({ op: 'payload', base: 'transport', offset: 2, len: 2, dreg });
const loadL4proto = (dreg: Reg): Expr => ({ op: 'meta', key: 'l4proto', dreg });
const be16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);

export function kverdict(v: Verdict, aliases?: Aliases): KVerdict {
  switch (v.kind) {
    case 'accept': case 'drop': case 'return': return { kind: v.kind };
    case 'jump': case 'goto': return { kind: v.kind, chain: aliases?.get(v.chain) ?? v.chain };
    default: return assertNever(v);
  }
}

/** The comment as nft stores it: what is inside the quotes dump prints. */
export const storedComment = (s: string): string => quote(s).slice(1, -1);

export function lowerRule(f: Family, r: Rule, aliases: Aliases, owner: string | undefined): KRule {
  const exprs: Expr[] = [];
  for (const m of r.matches) for (const e of matchExprs(f, m)) exprs.push(e);
  for (const s of r.stmts) for (const e of statementExprs(f, s, aliases)) exprs.push(e);
  return { text: renderRule(f, r, aliases), exprs, ...(r.comment ? { comment: storedComment(r.comment) } : {}), ...(owner ? { owner } : {}) };
}

function matchExprs(f: Family, m: Match): Expr[] {
  const alen = addrLen(f);
  switch (m.kind) {
    case 'ct-state-new':
      return [{ op: 'ct', key: 'state', dreg: 1 }, { op: 'bitwise', reg: 1, mask: word(CT_STATE_NEW), xor: word(0) }, { op: 'cmp', reg: 1, cmp: 'neq', data: word(0) }];
    case 'addr': {
      const cmp = m.op === '==' ? 'eq' : 'neq';
      if (m.values.length === 1) return addrCompare(f, m.field, cmp, m.values[0]!);
      return [loadAddr(f, m.field, 1), { op: 'lookup', sreg: 1, set: addrSet(f, m.field, m.values), ...(cmp === 'neq' ? { invert: true } : {}) }];
    }
    case 'addr-in-set': return [loadAddr(f, m.field, 1), { op: 'lookup', sreg: 1, set: m.set }];
    case 'fib-local': return [{ op: 'fib-type', field: m.field, dreg: 1 }, { op: 'cmp', reg: 1, cmp: 'eq', data: word(RTN_LOCAL) }];
    case 'dport':
      return [loadL4proto(1), { op: 'cmp', reg: 1, cmp: 'eq', data: Buffer.from([PROTO_NUMBER[m.proto]]) }, loadDport(1), { op: 'cmp', reg: 1, cmp: 'eq', data: be16(m.port) }];
    case 'masq-mark':
      return [{ op: 'meta', key: 'mark', dreg: 1 }, { op: 'bitwise', reg: 1, mask: word(MASQ_MARK), xor: word(0) }, { op: 'cmp', reg: 1, cmp: m.set ? 'neq' : 'eq', data: word(0) }];
    case 'hairpin':
      return [
        { op: 'ct', key: 'status', dreg: 1 }, { op: 'bitwise', reg: 1, mask: word(IPS_DST_NAT), xor: word(0) }, { op: 'cmp', reg: 1, cmp: 'neq', data: word(0) },
        loadAddr(f, 'saddr', 1), loadAddr(f, 'daddr', regAt(alen)), { op: 'lookup', sreg: 1, set: m.set },
      ];
    case 'affinity': return [...affinityKey(f, m.key), { op: 'lookup', sreg: 1, set: m.set }];
    case 'one-in': return [{ op: 'numgen', dreg: 1, mod: m.n, offset: 0 }, { op: 'cmp', reg: 1, cmp: 'eq', data: word(0) }];
    default: return assertNever(m);
  }
}

const affinityKey = (f: Family, k: AffinityKey): Expr[] => [
  loadAddr(f, 'saddr', 1),
  { op: 'numgen', dreg: regAt(addrLen(f)), mod: 1, offset: k[0] },
  { op: 'numgen', dreg: regAt(addrLen(f) + 4), mod: 1, offset: k[1] },
];

// One address or prefix. nft loads only the whole bytes a byte-aligned prefix covers; any
// other prefix (and /0) loads the whole address and masks it; a full-length prefix is an address.
function addrCompare(f: Family, field: 'saddr' | 'daddr', cmp: 'eq' | 'neq', v: AddrMatch): Expr[] {
  const alen = addrLen(f);
  if (typeof v === 'string' || v.prefix === alen * 8) return [loadAddr(f, field, 1), { op: 'cmp', reg: 1, cmp, data: addrBytes(typeof v === 'string' ? v : v.addr) }];
  const addr = addrBytes(v.addr);
  if (v.prefix > 0 && v.prefix % 8 === 0) {
    const n = v.prefix / 8;
    return [{ op: 'payload', base: 'network', offset: addrOffset(f, field), len: n, dreg: 1 }, { op: 'cmp', reg: 1, cmp, data: addr.subarray(0, n) }];
  }
  return [loadAddr(f, field, 1), { op: 'bitwise', reg: 1, mask: prefixMask(alen, v.prefix), xor: Buffer.alloc(alen) }, { op: 'cmp', reg: 1, cmp, data: addr }];
}

function prefixMask(len: number, prefix: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    b[i] = bits === 0 ? 0 : (0xff << (8 - bits)) & 0xff;
  }
  return b;
}

/**
 * `{ a, b, … }` of addresses and prefixes as nft builds it: a plain set when every value is an
 * address; an interval set as soon as one is a prefix, where overlapping and adjacent ranges
 * merge and each range is a start element and an end element (exclusive; none when the range
 * runs to the last address), after a leading end element at 0 when the first range starts above 0.
 */
export function addrSet(f: Family, field: 'saddr' | 'daddr', values: readonly AddrMatch[]): AnonSet {
  if (values.every((v) => typeof v === 'string')) {
    return { key: 'addr', field, interval: false, elements: values.map((v) => ({ key: addrBytes(v as string) })) };
  }
  const bits = BigInt(addrLen(f) * 8);
  const top = 1n << bits;
  const ranges = values.map((v) => {
    const start = toBig(addrBytes(typeof v === 'string' ? v : v.addr));
    const size = typeof v === 'string' ? 1n : 1n << (bits - BigInt(v.prefix));
    return [start, start + size] as [bigint, bigint];
  }).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const merged: [bigint, bigint][] = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && r[0] <= last[1]) { if (r[1] > last[1]) last[1] = r[1]; } else merged.push([r[0], r[1]]);
  }
  const len = addrLen(f);
  const elements: AnonElement[] = [];
  if (merged[0]![0] > 0n) elements.push({ key: fromBig(0n, len), end: true });
  for (const [start, end] of merged) {
    if (end < top) elements.push({ key: fromBig(start, len) }, { key: fromBig(end, len), end: true });
    else elements.push({ key: fromBig(start, len), open: true });
  }
  return { key: 'addr', field, interval: true, elements };
}

const toBig = (b: Buffer): bigint => BigInt(`0x${b.toString('hex')}`);
const fromBig = (n: bigint, len: number): Buffer => Buffer.from(n.toString(16).padStart(len * 2, '0'), 'hex');

function statementExprs(f: Family, s: Statement, aliases: Aliases): Expr[] {
  const alen = addrLen(f);
  switch (s.kind) {
    case 'verdict': return [{ op: 'verdict', verdict: kverdict(s.verdict, aliases) }];
    // ICMP port unreachable (3) / ICMPv6 port unreachable (4): what nft's bare `reject` sends
    case 'reject': return [{ op: 'reject', icmpCode: f === 'ip' ? 3 : 4 }];
    case 'vmap':
      return s.key === 'daddr.l4proto.dport'
        ? [loadAddr(f, 'daddr', 1), loadL4proto(regAt(alen)), loadDport(regAt(alen + 4)), { op: 'lookup', sreg: 1, set: s.map, dreg: 0 }]
        : [loadL4proto(1), loadDport(regAt(4)), { op: 'lookup', sreg: 1, set: s.map, dreg: 0 }];
    case 'mark-masq':
      return [{ op: 'meta', key: 'mark', dreg: 1 }, { op: 'bitwise', reg: 1, mask: word(~MASQ_MARK), xor: word(MASQ_MARK) }, { op: 'meta-set', key: 'mark', sreg: 1 }];
    case 'masquerade': {
      const masq: Expr = { op: 'masq', flags: NF_NAT_RANGE_PROTO_RANDOM_FULLY };
      return s.clearMark ? [{ op: 'meta', key: 'mark', dreg: 1 }, { op: 'bitwise', reg: 1, mask: word(0xffffffff), xor: word(MASQ_MARK) }, { op: 'meta-set', key: 'mark', sreg: 1 }, masq] : [masq];
    }
    case 'dnat': {
      if (s.backends.length === 0) throw new Error('dnat without backends: the compiler must not emit it');
      if (picksFromGroup(s)) return [{ op: 'verdict', verdict: { kind: 'goto', chain: dnatGroupNames(s.policy, s.backends.length).chain } }];
      if (s.backends.length !== 1) throw new Error('a dnat without packet keys names one endpoint: the compiler must not emit more');
      const b = s.backends[0]!;
      return [
        loadL4proto(1), { op: 'cmp', reg: 1, cmp: 'eq', data: Buffer.from([PROTO_NUMBER[s.proto]]) },
        { op: 'immediate', dreg: 1, data: addrBytes(b.addr) }, { op: 'immediate', dreg: 2, data: be16(b.port) },
        { op: 'dnat', addr: 1, proto: 2, flags: NF_NAT_RANGE_PROTO_SPECIFIED },
      ];
    }
    case 'affinity-update': return [...affinityKey(f, s.key), { op: 'dynset-update', set: s.set, sreg: 1, timeoutMs: s.timeoutSeconds * 1000 }];
    default: return assertNever(s);
  }
}

const L4_PROTOS: readonly Protocol[] = ['tcp', 'udp', 'sctp'];

/**
 * The rule of a shared endpoint-count chain: `meta l4proto { tcp, udp, sctp } dnat ADDR addr
 * . port to KEY . numgen random mod N map @MAP`, KEY being the packet's `daddr . l4proto .
 * dport` (ClusterIP, external and LB IPs) or `l4proto . dport` (NodePorts).
 */
export function groupDnatRule(f: Family, n: number, map: string, vip: boolean): KRule {
  const a = f === 'ip' ? 'ip' : 'ip6';
  const alen = addrLen(f);
  const text = `meta l4proto { tcp, udp, sctp } dnat ${a} addr . port to ${vip ? `${a} daddr . ` : ''}meta l4proto . th dport . numgen random mod ${n} map @${map}`;
  const protos: AnonSet = { key: 'proto', interval: false, elements: L4_PROTOS.map((p) => ({ key: Buffer.from([PROTO_NUMBER[p]]) })) };
  const key: Expr[] = vip
    ? [loadAddr(f, 'daddr', 1), loadL4proto(regAt(alen)), loadDport(regAt(alen + 4)), { op: 'numgen', dreg: regAt(alen + 8), mod: n, offset: 0 }]
    : [loadL4proto(1), loadDport(regAt(4)), { op: 'numgen', dreg: regAt(8), mod: n, offset: 0 }];
  return {
    text,
    exprs: [loadL4proto(1), { op: 'lookup', sreg: 1, set: protos }, ...key, { op: 'lookup', sreg: 1, set: map, dreg: 1 }, { op: 'dnat', addr: 1, proto: regAt(alen), flags: 0 }],
  };
}

/**
 * A dispatch set's rule (lower-dnat.ts: DISPATCH_CHAIN): `KEY @service-ips-<chain> goto
 * <chain>`, KEY being the packet's `daddr . l4proto . dport` (vip) or `l4proto . dport`: the
 * same registers as the dispatch maps' lookups, a lookup without data, then the verdict.
 */
export function dispatchRule(f: Family, target: string, which: 'vip' | 'nodeport'): KRule {
  const a = f === 'ip' ? 'ip' : 'ip6';
  const alen = addrLen(f);
  const set = dispatchSetName(target, which);
  const key: Expr[] = which === 'vip' ? [loadAddr(f, 'daddr', 1), loadL4proto(regAt(alen)), loadDport(regAt(alen + 4))] : [loadL4proto(1), loadDport(regAt(4))];
  return {
    text: `${which === 'vip' ? `${a} daddr . ` : ''}meta l4proto . th dport @${set} goto ${target}`,
    exprs: [...key, { op: 'lookup', sreg: 1, set }, { op: 'verdict', verdict: { kind: 'goto', chain: target } }],
  };
}

// Canonical forms of nf_tables objects, so that what the kernel dumps compares with what our
// encoder sends for the same object. The kernel does not echo a rule byte for byte:
// - registers come back in its own numbering: it stores 32-bit register indexes and dumps
//   NFT_REG_1..4 where the index allows (nft's NFT_REG32_00 is dumped as NFT_REG_1);
// - attributes with a default are dumped even when we left them out (lookup flags 0, numgen
//   offset 0, dynset flags), in its own order;
// - nat fills in what the request implied: the upper end of a range (= the lower one) and the
//   NF_NAT_RANGE_MAP_IPS / PROTO_SPECIFIED flags;
// - anonymous sets are renamed (__set%d -> __set3) and known by name, not by batch id.
// So both sides go through the same decoder: every expression becomes its name and its
// attributes sorted by type, registers as 32-bit indexes, defaults dropped, anonymous sets
// replaced by their contents. Two rules with equal canonical forms do the same to every packet.
// Our side is produced by the encoder itself (encodeBatch), so this checks what it would send.
import type { Family } from '../../ir/types.js';
import type { Op } from '../../render/kernel/ops.js';
import type { KRule, KSetDecl } from '../../render/kernel/types.js';
import * as A from './abi.js';
import { attrList, attrs, messages, str } from './attrs.js';
import { type KernelElement, type KernelSet, dataOf, elementsOfList, setOf } from './dump.js';
import { encodeBatch } from './encode.js';
import { NFGENMSG_LEN, NLMSG_HDRLEN } from './abi.js';

type Kind = 'u32' | 'i32' | 'u64' | 'u8' | 'reg' | 'str' | 'data' | 'set' | 'skip';
interface Field { readonly name: string; readonly kind: Kind; readonly dflt?: number }
const f = (name: string, kind: Kind, dflt?: number): Field => (dflt === undefined ? { name, kind } : { name, kind, dflt });

// Attribute numbers from linux/netfilter/nf_tables.h, per expression.
const SPEC: Readonly<Record<string, Readonly<Record<number, Field>>>> = {
  payload: { 1: f('dreg', 'reg'), 2: f('base', 'u32'), 3: f('offset', 'u32'), 4: f('len', 'u32'), 5: f('sreg', 'reg'), 6: f('csum_type', 'u32', 0), 7: f('csum_offset', 'u32', 0), 8: f('csum_flags', 'u32', 0) },
  meta: { 1: f('dreg', 'reg'), 2: f('key', 'u32'), 3: f('sreg', 'reg') },
  cmp: { 1: f('sreg', 'reg'), 2: f('op', 'u32'), 3: f('data', 'data') },
  bitwise: { 1: f('sreg', 'reg'), 2: f('dreg', 'reg'), 3: f('len', 'u32'), 4: f('mask', 'data'), 5: f('xor', 'data'), 6: f('op', 'u32', 0), 7: f('data', 'data') },
  lookup: { 1: f('set', 'set'), 2: f('sreg', 'reg'), 3: f('dreg', 'reg'), 4: f('set_id', 'skip'), 5: f('flags', 'u32', 0) },
  immediate: { 1: f('dreg', 'reg'), 2: f('data', 'data') },
  nat: { 1: f('type', 'u32'), 2: f('family', 'u32'), 3: f('addr_min', 'reg'), 4: f('addr_max', 'reg'), 5: f('proto_min', 'reg'), 6: f('proto_max', 'reg'), 7: f('flags', 'u32', 0) },
  masq: { 1: f('flags', 'u32', 0), 2: f('proto_min', 'reg'), 3: f('proto_max', 'reg') },
  reject: { 1: f('type', 'u32'), 2: f('icmp_code', 'u8') },
  numgen: { 1: f('dreg', 'reg'), 2: f('mod', 'u32'), 3: f('type', 'u32'), 4: f('offset', 'u32', 0) },
  dynset: { 1: f('set', 'str'), 2: f('set_id', 'skip'), 3: f('op', 'u32'), 4: f('sreg_key', 'reg'), 5: f('sreg_data', 'reg'), 6: f('timeout', 'u64', 0), 8: f('pad', 'skip'), 9: f('flags', 'u32', 0) },
  fib: { 1: f('dreg', 'reg'), 2: f('result', 'u32'), 3: f('flags', 'u32') },
  ct: { 1: f('dreg', 'reg'), 2: f('key', 'u32'), 3: f('direction', 'u8'), 4: f('sreg', 'reg') },
  counter: { 1: f('bytes', 'skip'), 2: f('packets', 'skip'), 3: f('pad', 'skip') },
};

/** nft register number (0 verdict, 1-4, 8-23) -> the kernel's 32-bit register index */
const regIndex = (r: number): number => (r === 0 ? 0 : r <= 4 ? r * 4 : r - 8 + 4);

const NF_NAT_RANGE_MAP_IPS = 0x1;
const NF_NAT_RANGE_PROTO_SPECIFIED = 0x2;

const VERDICT_NAME = new Map<number, string>(Object.entries(A.VERDICT_CODE).map(([k, v]) => [v, k]));

/** A data attribute (NFTA_DATA_VALUE / NFTA_DATA_VERDICT) as text: hex bytes, or the verdict. */
export function dataText(nest: Buffer): string {
  const d = dataOf(nest);
  if (!d) return '?';
  if (d.kind === 'value') return d.bytes.toString('hex');
  return `${VERDICT_NAME.get(d.code) ?? d.code}${d.chain !== undefined ? ` ${d.chain}` : ''}`;
}

/** Resolves a lookup's set: a named set stays its name, an anonymous one becomes its contents. */
export type SetResolver = (name: string, id: number | undefined) => string;

/** One expression (a NFTA_LIST_ELEM's payload) -> "name(field=value,…)". */
function canonicalExpr(item: Buffer, sets: SetResolver): string {
  const a = attrs(item);
  const name = str(a.get(A.EXPR.NAME)) ?? '?';
  const body = a.get(A.EXPR.DATA);
  const spec = SPEC[name];
  const fields = new Map<string, string>();
  const raw = body ? attrList(body) : [];
  let setName: string | undefined, setId: number | undefined;
  for (const [type, v] of raw) {
    const fs = spec?.[type];
    if (!fs) { fields.set(`a${type}`, v.toString('hex')); continue; }
    switch (fs.kind) {
      case 'skip': if (fs.name === 'set_id') setId = v.readUInt32BE(0); break;
      case 'u32': { const n = v.readUInt32BE(0); if (n !== fs.dflt) fields.set(fs.name, String(n)); break; }
      case 'i32': fields.set(fs.name, String(v.readInt32BE(0))); break;
      case 'u64': { const n = v.readBigUInt64BE(0); if (fs.dflt === undefined || n !== BigInt(fs.dflt)) fields.set(fs.name, String(n)); break; }
      case 'u8': fields.set(fs.name, String(v.readUInt8(0))); break;
      case 'reg': fields.set(fs.name, `r${regIndex(v.readUInt32BE(0))}`); break;
      case 'str': fields.set(fs.name, str(v) ?? ''); break;
      case 'data': fields.set(fs.name, dataText(v)); break;
      case 'set': setName = str(v); break;
    }
  }
  if (setName !== undefined) fields.set('set', sets(setName, setId));
  if (name === 'nat' || name === 'masq') {
    // what the kernel fills in (see the top of this file)
    let flags = Number(fields.get('flags') ?? 0);
    if (fields.has('addr_min')) flags |= NF_NAT_RANGE_MAP_IPS;
    if (fields.has('proto_min')) flags |= NF_NAT_RANGE_PROTO_SPECIFIED;
    if (flags) fields.set('flags', String(flags)); else fields.delete('flags');
    if (fields.get('addr_max') === fields.get('addr_min')) fields.delete('addr_max');
    if (fields.get('proto_max') === fields.get('proto_min')) fields.delete('proto_max');
  }
  const order = spec ? Object.values(spec).map((x) => x.name) : [];
  const keys = [...fields.keys()].sort((x, y) => rank(order, x) - rank(order, y) || (x < y ? -1 : 1));
  return `${name}(${keys.map((k) => `${k}=${fields.get(k)}`).join(',')})`;
}
const rank = (order: readonly string[], k: string): number => {
  const i = order.indexOf(k);
  return i < 0 ? 1000 : i;
};

/** A rule's NFTA_RULE_EXPRESSIONS -> one canonical string per expression. */
export function canonicalRule(exprs: Buffer, sets: SetResolver): string[] {
  return attrList(exprs).map(([, item]) => canonicalExpr(item, sets));
}

/** What identifies a set's contents and shape (anonymous sets in rules; named sets' declarations). */
export function canonicalSetDecl(s: Omit<KernelSet, 'elements' | 'name'>, anonymous: boolean): string {
  // an anonymous set's own flags (anonymous, constant) and size say how it was made, not what it holds
  const flags = anonymous ? s.flags & (A.SET_F.INTERVAL | A.SET_F.MAP) : s.flags;
  return [`flags=${flags}`, `key=${s.keyType}/${s.keyLen}`,
    // a verdict map's data length is the kernel's own (sizeof struct nft_verdict): we send 0
    ...(s.dataType !== undefined ? [`data=${s.dataType >>> 0}${s.dataType >>> 0 === A.NFT_DATA_VERDICT ? '' : `/${s.dataLen ?? 0}`}`] : []),
    ...(!anonymous && s.timeoutMs !== undefined ? [`timeout=${s.timeoutMs}`] : []),
    ...(!anonymous && s.size !== undefined ? [`size=${s.size}`] : []),
  ].join(',');
}

export function canonicalElement(e: KernelElement): string {
  return `${e.key.toString('hex')}${e.flags & A.SET_ELEM_F.INTERVAL_END ? '~end' : ''}${e.data ? ` : ${e.data.kind === 'value' ? e.data.bytes.toString('hex') : `${VERDICT_NAME.get(e.data.code) ?? e.data.code}${e.data.chain !== undefined ? ` ${e.data.chain}` : ''}`}` : ''}${e.userdata ? ` #${e.userdata.toString('hex')}` : ''}`;
}

export const canonicalAnonSet = (decl: Omit<KernelSet, 'elements' | 'name'>, elements: readonly KernelElement[]): string =>
  `{${canonicalSetDecl(decl, true)}: ${elements.map(canonicalElement).sort().join(', ')}}`;

/** One message of an encoded batch: its nf_tables type and attributes. */
function* batchMessages(chunks: readonly Buffer[]): Generator<{ type: number; a: Map<number, Buffer> }> {
  for (const m of messages(Buffer.concat(chunks))) {
    if (m.type >> 8 !== A.NFNL_SUBSYS_NFTABLES) continue;
    yield { type: m.type & 0xff, a: attrs(m.data, NLMSG_HDRLEN + NFGENMSG_LEN) };
  }
}

/**
 * Rules as our encoder sends them, in canonical form, per chain (in order): their anonymous
 * sets are read from the same batch (by batch id). One batch for all of them: a message
 * writer per rule would allocate a megabyte each, and a 10k-service table has 20,000 rules.
 */
export function desiredRules(family: Family, chains: Iterable<{ readonly name: string; readonly rules: readonly KRule[] }>): Map<string, string[][]> {
  function* ops(): Generator<Op> {
    for (const c of chains) for (const rule of c.rules) yield { family, table: 'nftproxy', op: 'add-rule', chain: c.name, rule };
  }
  const batch = encodeBatch(ops(), 1);
  const decls = new Map<number, Omit<KernelSet, 'elements' | 'name'>>();
  const elements = new Map<number, KernelElement[]>();
  const out = new Map<string, string[][]>();
  const sets: SetResolver = (name, id) => {
    if (id === undefined) return name;
    const d = decls.get(id);
    return d ? canonicalAnonSet(d, elements.get(id) ?? []) : `${name}#${id}`;
  };
  for (const { type, a } of batchMessages(batch.chunks)) {
    if (type === A.MSG.NEWSET) {
      const s = setOf(a);
      const id = a.get(A.SET.ID);
      if (s && id) decls.set(id.readUInt32BE(0), s);
    } else if (type === A.MSG.NEWSETELEM) {
      const id = a.get(A.SET_ELEM_LIST.SET_ID), list = a.get(A.SET_ELEM_LIST.ELEMENTS);
      if (id && list) elements.set(id.readUInt32BE(0), elementsOfList(list));
    } else if (type === A.MSG.NEWRULE) {
      const chain = str(a.get(A.RULE.CHAIN)) ?? '';
      let rules = out.get(chain);
      if (!rules) out.set(chain, (rules = []));
      rules.push(canonicalRule(a.get(A.RULE.EXPRESSIONS) ?? Buffer.alloc(0), sets));
    }
  }
  return out;
}

/** A named set's declaration as our encoder sends it, in canonical form. */
export function desiredSetDecl(family: Family, decl: KSetDecl): string {
  const batch = encodeBatch([{ family, table: 'nftproxy', op: 'add-set', set: decl }], 1);
  for (const { type, a } of batchMessages(batch.chunks)) {
    if (type !== A.MSG.NEWSET) continue;
    const s = setOf(a);
    if (s) return canonicalSetDecl(s, false);
  }
  throw new Error(`the encoder wrote no set for ${decl.name}`);
}

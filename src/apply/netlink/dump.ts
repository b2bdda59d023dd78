// Reading nf_tables objects back from the kernel (netlink dumps): tables, chains with their
// hooks, rules with their handles and raw expressions, sets with their declarations and
// elements. What `verify` compares with what nftproxy intends and what `trace` needs to
// name the rule a trace event points at. Read-only: nothing here writes to the kernel.
//
// Expressions are kept as the kernel sent them (the NFTA_RULE_EXPRESSIONS attribute);
// canonical.ts turns them into a form that compares with our encoder's output.
import type { Family } from '../../ir/types.js';
import * as A from './abi.js';
import { type Attrs, attrList, attrs, bodyAttrs, familyOf, str, u32, u64 } from './attrs.js';
import { NetlinkError, type NfSocket } from './socket.js';

export interface KernelHook {
  /** NF_INET_* (0 prerouting … 4 postrouting) */
  readonly hooknum: number;
  readonly priority: number;
  readonly type: string | undefined;
  /** the base chain's policy verdict code (1 accept, 0 drop) */
  readonly policy: number | undefined;
}

export interface KernelRule {
  readonly chain: string;
  readonly handle: bigint;
  /** the NFTA_RULE_EXPRESSIONS attribute's payload, as dumped */
  readonly exprs: Buffer;
  readonly userdata: Buffer | undefined;
}

export interface KernelChain {
  readonly name: string;
  readonly hook: KernelHook | undefined;
  readonly rules: KernelRule[];
}

export type KernelData =
  | { readonly kind: 'value'; readonly bytes: Buffer }
  | { readonly kind: 'verdict'; readonly code: number; readonly chain: string | undefined };

export interface KernelElement {
  readonly key: Buffer;
  readonly data: KernelData | undefined;
  readonly flags: number;
  readonly userdata: Buffer | undefined;
}

export interface KernelSet {
  readonly name: string;
  readonly flags: number;
  readonly keyType: number;
  readonly keyLen: number;
  readonly dataType: number | undefined;
  readonly dataLen: number | undefined;
  readonly timeoutMs: bigint | undefined;
  readonly size: number | undefined;
  /** undefined when not read (dynamic sets, or not asked for) */
  readonly elements: KernelElement[] | undefined;
}

export interface KernelTable {
  readonly family: Family;
  readonly name: string;
  /** in the kernel's order (the order they were added) */
  readonly chains: readonly KernelChain[];
  readonly sets: readonly KernelSet[];
}

export const familyOfProto = (nfproto: number): Family | undefined => (nfproto === A.NFPROTO.ip ? 'ip' : nfproto === A.NFPROTO.ip6 ? 'ip6' : undefined);

/** Every table of families ip and ip6 in the socket's network namespace. */
export function listTables(sock: NfSocket): { family: Family; name: string }[] {
  const out: { family: Family; name: string }[] = [];
  for (const m of sock.dump(A.MSG.GETTABLE, 0)) {
    const family = familyOfProto(familyOf(m));
    const name = str(bodyAttrs(m).get(A.TABLE.NAME));
    if (family && name !== undefined) out.push({ family, name });
  }
  return out;
}

function hookOf(a: Attrs): KernelHook | undefined {
  const h = a.get(A.CHAIN.HOOK);
  if (!h) return undefined;
  const ha = attrs(h);
  const num = u32(ha.get(A.HOOK.HOOKNUM)), prio = ha.get(A.HOOK.PRIORITY);
  if (num === undefined || !prio) return undefined;
  return { hooknum: num, priority: prio.readInt32BE(0), type: str(a.get(A.CHAIN.TYPE)), policy: u32(a.get(A.CHAIN.POLICY)) };
}

/** The chains of one table (or of every table of the family), with their hooks; no rules. */
export function readChains(sock: NfSocket, family: Family, table?: string): { table: string; name: string; hook: KernelHook | undefined }[] {
  const out: { table: string; name: string; hook: KernelHook | undefined }[] = [];
  for (const m of sock.dump(A.MSG.GETCHAIN, A.NFPROTO[family], table === undefined ? undefined : (w) => w.str(A.CHAIN.TABLE, table))) {
    const a = bodyAttrs(m);
    const t = str(a.get(A.CHAIN.TABLE)), name = str(a.get(A.CHAIN.NAME));
    if (t === undefined || name === undefined || (table !== undefined && t !== table)) continue;
    out.push({ table: t, name, hook: hookOf(a) });
  }
  return out;
}

/** The rules of a table (every chain, or only `chain`: the kernel filters the dump), in chain order, each with its handle. */
export function readRules(sock: NfSocket, family: Family, table: string, chain?: string): KernelRule[] {
  const out: KernelRule[] = [];
  for (const m of sock.dump(A.MSG.GETRULE, A.NFPROTO[family], (w) => { w.str(A.RULE.TABLE, table); if (chain !== undefined) w.str(A.RULE.CHAIN, chain); })) {
    const a = bodyAttrs(m);
    const name = str(a.get(A.RULE.CHAIN)), handle = u64(a.get(A.RULE.HANDLE));
    if (str(a.get(A.RULE.TABLE)) !== table || name === undefined || handle === undefined || (chain !== undefined && name !== chain)) continue;
    out.push({ chain: name, handle, exprs: a.get(A.RULE.EXPRESSIONS) ?? Buffer.alloc(0), userdata: a.get(A.RULE.USERDATA) });
  }
  return out;
}

/** The named sets a rule's lookup expressions read. */
export function lookupSets(exprs: Buffer): string[] {
  const out: string[] = [];
  for (const [, item] of attrList(exprs)) {
    const e = attrs(item);
    if (str(e.get(A.EXPR.NAME)) !== 'lookup') continue;
    const set = str(attrs(e.get(A.EXPR.DATA) ?? Buffer.alloc(0)).get(A.LOOKUP.SET));
    if (set !== undefined) out.push(set);
  }
  return out;
}

export function setOf(a: Attrs): Omit<KernelSet, 'elements'> | undefined {
  const name = str(a.get(A.SET.NAME));
  if (name === undefined) return undefined;
  const desc = a.get(A.SET.DESC);
  return {
    name,
    flags: u32(a.get(A.SET.FLAGS)) ?? 0,
    keyType: u32(a.get(A.SET.KEY_TYPE)) ?? 0,
    keyLen: u32(a.get(A.SET.KEY_LEN)) ?? 0,
    dataType: u32(a.get(A.SET.DATA_TYPE)),
    dataLen: u32(a.get(A.SET.DATA_LEN)),
    timeoutMs: u64(a.get(A.SET.TIMEOUT)),
    size: desc ? u32(attrs(desc).get(A.SET_DESC.SIZE)) : undefined,
  };
}

/** One set's declaration (anonymous sets included), or undefined when it does not exist. */
export function readSet(sock: NfSocket, family: Family, table: string, name: string): Omit<KernelSet, 'elements'> | undefined {
  const m = sock.get(A.MSG.GETSET, A.NFPROTO[family], (w) => { w.str(A.SET.TABLE, table); w.str(A.SET.NAME, name); });
  return m ? setOf(bodyAttrs(m)) : undefined;
}

export function dataOf(nest: Buffer | undefined): KernelData | undefined {
  if (!nest) return undefined;
  const d = attrs(nest);
  const v = d.get(A.DATA.VALUE);
  if (v) return { kind: 'value', bytes: Buffer.from(v) };
  const verdict = d.get(A.DATA.VERDICT);
  if (!verdict) return undefined;
  const va = attrs(verdict);
  const code = va.get(A.VERDICT.CODE);
  return { kind: 'verdict', code: code ? code.readInt32BE(0) : 0, chain: str(va.get(A.VERDICT.CHAIN)) };
}

/** The elements of one set, as dumped. */
export function readElements(sock: NfSocket, family: Family, table: string, set: string): KernelElement[] {
  const out: KernelElement[] = [];
  for (const m of sock.dump(A.MSG.GETSETELEM, A.NFPROTO[family], (w) => { w.str(A.SET_ELEM_LIST.TABLE, table); w.str(A.SET_ELEM_LIST.SET, set); })) {
    const list = bodyAttrs(m).get(A.SET_ELEM_LIST.ELEMENTS);
    if (list) for (const e of elementsOfList(list)) out.push(e);
  }
  return out;
}

/** The elements of an NFTA_SET_ELEM_LIST_ELEMENTS attribute (a dump's, or one our encoder wrote). */
export function elementsOfList(list: Buffer): KernelElement[] {
  const out: KernelElement[] = [];
  for (const [, el] of attrList(list)) {
    const a = attrs(el);
    const keyNest = a.get(A.SET_ELEM.KEY);
    const key = keyNest ? attrs(keyNest).get(A.DATA.VALUE) : undefined;
    const ud = a.get(A.SET_ELEM.USERDATA);
    out.push({ key: Buffer.from(key ?? Buffer.alloc(0)), data: dataOf(a.get(A.SET_ELEM.DATA)), flags: u32(a.get(A.SET_ELEM.FLAGS)) ?? 0, userdata: ud ? Buffer.from(ud) : undefined });
  }
  return out;
}

export interface ReadTableOptions {
  /** read the elements of this named set? default: every set that is not dynamic (timeout) */
  readonly elementsOf?: (set: Omit<KernelSet, 'elements'>) => boolean;
}

/**
 * One table whole: chains (hooks and rules, handles kept), named sets (declarations and
 * elements); anonymous sets are read on demand by whoever resolves a rule's lookup
 * (canonical.ts). Undefined when the table does not exist.
 */
export function readTable(sock: NfSocket, family: Family, name: string, o: ReadTableOptions = {}): KernelTable | undefined {
  let chains;
  try {
    if (!sock.get(A.MSG.GETTABLE, A.NFPROTO[family], (w) => w.str(A.TABLE.NAME, name))) return undefined;
    chains = readChains(sock, family, name);
  } catch (e) {
    if (e instanceof NetlinkError && e.refusals.some((r) => r.errno === 2)) return undefined;
    throw e;
  }
  const byName = new Map<string, KernelChain>(chains.map((c) => [c.name, { name: c.name, hook: c.hook, rules: [] }]));
  for (const r of readRules(sock, family, name)) {
    let c = byName.get(r.chain);
    // a chain added between the two dumps: it still gets its rules
    if (!c) byName.set(r.chain, (c = { name: r.chain, hook: undefined, rules: [] }));
    c.rules.push(r);
  }
  const wants = o.elementsOf ?? ((s) => (s.flags & A.SET_F.TIMEOUT) === 0);
  const sets: KernelSet[] = [];
  for (const m of sock.dump(A.MSG.GETSET, A.NFPROTO[family], (w) => w.str(A.SET.TABLE, name))) {
    const a = bodyAttrs(m);
    if (str(a.get(A.SET.TABLE)) !== name) continue;
    const s = setOf(a);
    if (!s || (s.flags & A.SET_F.ANONYMOUS) !== 0) continue;
    sets.push({ ...s, elements: wants(s) ? readElements(sock, family, name, s.name) : undefined });
  }
  return { family, name, chains: [...byName.values()], sets };
}

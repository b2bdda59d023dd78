// Kernel operations (render/kernel/ops.ts) -> one nf_tables batch: BATCH_BEGIN, a message per
// op (elements packed many to a message), BATCH_END. The kernel applies the batch as one
// transaction. Table-driven where the kernel's format is a table: set shapes (key type and
// length, user data nft reads back to print them), expressions (attributes in order).
//
// Each message's sequence number is remembered with what it was for (the op, the service
// port), so an error the kernel reports against a sequence number (and, for elements, an
// attribute offset) names its cause.
import os from 'node:os';
import type { Family } from '../../ir/types.js';
import { assertNever } from '../../model/result.js';
import type { Op } from '../../render/kernel/ops.js';
import type { AnonSet, Expr, KElement, KSetDecl, KVerdict, SetShape } from '../../render/kernel/types.js';
import * as A from './abi.js';
import { MessageWriter } from './attrs.js';

const LE = os.endianness() === 'LE';
const u32h = (n: number): Buffer => { const b = Buffer.alloc(4); if (LE) b.writeUInt32LE(n >>> 0); else b.writeUInt32BE(n >>> 0); return b; };

// --- user data (libnftnl's TLV: u8 type, u8 length, value) ---
type Item = readonly [number, Buffer];
function udata(items: readonly Item[]): Buffer {
  const parts: Buffer[] = [];
  for (const [t, v] of items) {
    if (v.length > 255) throw new Error('user data item over 255 bytes');
    parts.push(Buffer.from([t, v.length]), v);
  }
  return Buffer.concat(parts);
}
const cstr = (s: string): Buffer => Buffer.concat([Buffer.from(s), Buffer.from([0])]);

// How nft describes a `typeof` key: an expression type (nft's enum expr_types) and its fields.
const EXPR_TYPE = { verdict: 1, payload: 7, meta: 9, concat: 13, numgen: 23 } as const;
const typeofExpr = (type: number, data: Buffer): Buffer => udata([[A.UDATA_TYPEOF.EXPR, u32h(type)], [A.UDATA_TYPEOF.DATA, data]]);
// payload protocol descriptions and fields, as nft numbers them: ip 12 (saddr 11, daddr 12),
// ip6 13 (saddr 8, daddr 9), th 11 (dport 2)
const addrT = (f: Family, field: 'saddr' | 'daddr'): Buffer => typeofExpr(EXPR_TYPE.payload, udata([[0, u32h(f === 'ip' ? 12 : 13)], [1, u32h(f === 'ip' ? (field === 'saddr' ? 11 : 12) : (field === 'saddr' ? 8 : 9))]]));
const dportT = (): Buffer => typeofExpr(EXPR_TYPE.payload, udata([[0, u32h(11)], [1, u32h(2)]]));
const l4protoT = (): Buffer => typeofExpr(EXPR_TYPE.meta, udata([[0, u32h(A.META_KEY.l4proto)]]));
const numgenT = (): Buffer => typeofExpr(EXPR_TYPE.numgen, udata([[0, u32h(A.NG_RANDOM)], [1, u32h(1)], [2, u32h(0)]]));
const concatT = (items: readonly Buffer[]): Buffer => typeofExpr(EXPR_TYPE.concat, udata(items.map((x, i) => [i, x] as const)));
const BYTEORDER = { invalid: 0, host: 1, big: 2 } as const;

// nft's datatype numbers; a concatenation's type is its fields' types, 6 bits each
const DT = { integer: 4, ipv4: 7, ipv6: 8, proto: 12, service: 13 } as const;
const concatType = (types: readonly number[]): number => types.reduce((acc, t) => acc * 64 + t, 0);

interface SetLayout {
  readonly flags: number;
  readonly keyType: number;
  readonly keyLen: number;
  readonly data?: { readonly type: number; readonly len: number };
  readonly udata: readonly Item[];
}

// A full sync writes elements service by service, tens of thousands of element messages:
// each shape's layout is made once.
const layouts = new Map<string, SetLayout>();
export function setLayout(f: Family, shape: SetShape): SetLayout {
  const id = `${f} ${shape}`;
  let l = layouts.get(id);
  if (!l) layouts.set(id, (l = makeSetLayout(f, shape)));
  return l;
}

function makeSetLayout(f: Family, shape: SetShape): SetLayout {
  const a = f === 'ip' ? DT.ipv4 : DT.ipv6, alen = f === 'ip' ? 4 : 16;
  const verdict = { type: A.NFT_DATA_VERDICT, len: 0 };
  const dnatData = { type: concatType([a, DT.service]), len: alen + 4 };
  const mapUdata = (key: Buffer, data?: Buffer): Item[] => [[A.UDATA_SET.KEYBYTEORDER, u32h(BYTEORDER.invalid)], [A.UDATA_SET.DATABYTEORDER, u32h(BYTEORDER.invalid)], [A.UDATA_SET.KEY_TYPEOF, key], ...(data ? [[A.UDATA_SET.DATA_TYPEOF, data] as Item] : []), [A.UDATA_SET.DATA_INTERVAL, u32h(0)]];
  switch (shape) {
    case 'addr': return { flags: 0, keyType: a, keyLen: alen, udata: [[A.UDATA_SET.KEYBYTEORDER, u32h(BYTEORDER.big)]] };
    case 'addr.addr': return { flags: 0, keyType: concatType([a, a]), keyLen: 2 * alen, udata: [[A.UDATA_SET.KEYBYTEORDER, u32h(BYTEORDER.invalid)], [A.UDATA_SET.KEY_TYPEOF, concatT([])]] };
    case 'addr.proto.port:verdict': return { flags: A.SET_F.MAP, keyType: concatType([a, DT.proto, DT.service]), keyLen: alen + 8, data: verdict, udata: mapUdata(concatT([])) };
    case 'proto.port:verdict': return { flags: A.SET_F.MAP, keyType: concatType([DT.proto, DT.service]), keyLen: 8, data: verdict, udata: mapUdata(concatT([])) };
    case 'addr.proto.port': return { flags: 0, keyType: concatType([a, DT.proto, DT.service]), keyLen: alen + 8, udata: [[A.UDATA_SET.KEYBYTEORDER, u32h(BYTEORDER.invalid)], [A.UDATA_SET.KEY_TYPEOF, concatT([])]] };
    case 'proto.port': return { flags: 0, keyType: concatType([DT.proto, DT.service]), keyLen: 8, udata: [[A.UDATA_SET.KEYBYTEORDER, u32h(BYTEORDER.invalid)], [A.UDATA_SET.KEY_TYPEOF, concatT([])]] };
    case 'saddr.word.word':
      return { flags: A.SET_F.TIMEOUT | A.SET_F.EVAL, keyType: concatType([a, DT.integer, DT.integer]), keyLen: alen + 8, udata: [[A.UDATA_SET.KEYBYTEORDER, u32h(BYTEORDER.invalid)], [A.UDATA_SET.KEY_TYPEOF, concatT([addrT(f, 'saddr'), numgenT(), numgenT()])]] };
    case 'addr.proto.port.slot:addr.port':
      return { flags: A.SET_F.MAP, keyType: concatType([a, DT.proto, DT.service, DT.integer]), keyLen: alen + 12, data: dnatData, udata: mapUdata(concatT([addrT(f, 'daddr'), l4protoT(), dportT(), numgenT()]), concatT([addrT(f, 'daddr'), dportT()])) };
    case 'proto.port.slot:addr.port':
      return { flags: A.SET_F.MAP, keyType: concatType([DT.proto, DT.service, DT.integer]), keyLen: 12, data: dnatData, udata: mapUdata(concatT([l4protoT(), dportT(), numgenT()]), concatT([addrT(f, 'daddr'), dportT()])) };
    default: return assertNever(shape);
  }
}

// An anonymous set's name as nft sends it: the kernel puts the number in; rules name it by batch id.
const ANON_SET = '__set%d';

function anonLayout(f: Family, s: AnonSet): SetLayout {
  const CONST = A.SET_F.ANONYMOUS | A.SET_F.CONSTANT;
  switch (s.key) {
    case 'addr':
      return {
        flags: CONST | (s.interval ? A.SET_F.INTERVAL : 0), keyType: f === 'ip' ? DT.ipv4 : DT.ipv6, keyLen: f === 'ip' ? 4 : 16,
        udata: [[A.UDATA_SET.KEYBYTEORDER, u32h(BYTEORDER.big)], ...(s.interval ? [[A.UDATA_SET.MERGE_ELEMENTS, u32h(1)] as Item] : []), [A.UDATA_SET.KEY_TYPEOF, addrT(f, s.field ?? 'saddr')]],
      };
    case 'proto': return { flags: CONST, keyType: DT.proto, keyLen: 1, udata: [[A.UDATA_SET.KEYBYTEORDER, u32h(BYTEORDER.host)], [A.UDATA_SET.KEY_TYPEOF, l4protoT()]] };
    default: return assertNever(s.key);
  }
}

export const HOOKNUM = { prerouting: 0, input: 1, forward: 2, output: 3, postrouting: 4 } as const;

/** What a message of the batch was for: named in errors. */
export interface MessageInfo {
  readonly what: string;
  readonly owner?: string;
  /** element messages: where each element starts in the message, and whose it is (same index) */
  readonly elements?: { readonly offsets: readonly number[]; readonly owners: readonly (string | undefined)[] };
}

export interface Batch {
  readonly chunks: Buffer[];
  readonly bytes: number;
  /** sequence numbers [first, last] of the ops' messages (BATCH_BEGIN is first - 1) */
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly info: ReadonlyMap<number, MessageInfo>;
  /** ops + elements: what the batch costs the kernel */
  readonly ops: number;
  /** it deletes a table: a full replace */
  readonly replacesTables: boolean;
}

// An element list attribute holds at most 64 KiB (its length is 16 bits): leave room.
const ELEMENT_LIST_BUDGET = 60_000;

/** Encodes a transaction. `seq` is the first sequence number to use (unique per socket). */
export function encodeBatch(ops: Iterable<Op>, seq: number): Batch {
  const w = new MessageWriter();
  const info = new Map<number, MessageInfo>();
  const begin = seq;
  let next = seq + 1;
  let count = 0;
  let setId = 1;
  let replacesTables = false;
  w.begin(A.NFNL_MSG_BATCH_BEGIN, A.NLM_F.REQUEST, begin, 0, A.NFNL_SUBSYS_NFTABLES);
  w.end();
  const msg = (type: number, flags: number, family: Family, what: string, owner?: string): number => {
    const s = next++;
    w.begin((A.NFNL_SUBSYS_NFTABLES << 8) | type, A.NLM_F.REQUEST | flags, s, A.NFPROTO[family]);
    info.set(s, owner ? { what, owner } : { what });
    return s;
  };

  for (const op of ops) {
    const f = op.family;
    switch (op.op) {
      case 'add-table':
        msg(A.MSG.NEWTABLE, 0, f, `add table ${f} ${op.table}`);
        w.str(A.TABLE.NAME, op.table);
        w.u32(A.TABLE.FLAGS, 0);
        if (op.comment) w.udataString(A.TABLE.USERDATA, A.UDATA_TABLE_COMMENT, op.comment);
        w.end(); count++;
        break;
      case 'delete-table':
        replacesTables = true;
        msg(A.MSG.DELTABLE, 0, f, `delete table ${f} ${op.table}`);
        w.str(A.TABLE.NAME, op.table);
        w.end(); count++;
        break;
      case 'add-set':
        msg(A.MSG.NEWSET, A.NLM_F.CREATE, f, `add set ${op.set.name}`, op.owner);
        setAttrs(w, f, op.table, op.set.name, setLayout(f, op.set.shape), setId++, op.set);
        w.end(); count++;
        break;
      case 'delete-set':
        msg(A.MSG.DELSET, 0, f, `delete set ${op.name}`, op.owner);
        w.str(A.SET.TABLE, op.table);
        w.str(A.SET.NAME, op.name);
        w.end(); count++;
        break;
      case 'add-chain':
        msg(A.MSG.NEWCHAIN, A.NLM_F.CREATE, f, `add chain ${op.chain.name}`, op.owner);
        w.str(A.CHAIN.TABLE, op.table);
        w.str(A.CHAIN.NAME, op.chain.name);
        if (op.chain.hook) {
          w.str(A.CHAIN.TYPE, op.chain.hook.type);
          w.u32(A.CHAIN.POLICY, A.VERDICT_CODE.accept);
          const h = w.open(A.CHAIN.HOOK);
          w.u32(A.HOOK.HOOKNUM, HOOKNUM[op.chain.hook.hook]);
          w.u32(A.HOOK.PRIORITY, op.chain.hook.priority);
          w.close(h);
        }
        w.end(); count++;
        break;
      case 'flush-table':
        // no chain named: the kernel deletes every rule of the table
        replacesTables = true;
        msg(A.MSG.DELRULE, 0, f, `flush table ${f} ${op.table}`);
        w.str(A.RULE.TABLE, op.table);
        w.end(); count++;
        break;
      case 'flush-set':
        // no elements listed: the kernel deletes every element of the set
        msg(A.MSG.DELSETELEM, 0, f, `flush ${op.kind} ${op.name}`);
        w.str(A.SET_ELEM_LIST.TABLE, op.table);
        w.str(A.SET_ELEM_LIST.SET, op.name);
        w.end(); count++;
        break;
      case 'flush-chain':
        msg(A.MSG.DELRULE, 0, f, `flush chain ${op.name}`, op.owner);
        w.str(A.RULE.TABLE, op.table);
        w.str(A.RULE.CHAIN, op.name);
        w.end(); count++;
        break;
      case 'delete-rule':
        if (op.handle === undefined) throw new Error(`delete rule of ${op.chain} (the one that looks up ${op.lookup}): its handle was not read`);
        msg(A.MSG.DELRULE, 0, f, `delete the rule of ${op.chain} that looks up ${op.lookup}`);
        w.str(A.RULE.TABLE, op.table);
        w.str(A.RULE.CHAIN, op.chain);
        w.u64(A.RULE.HANDLE, op.handle);
        w.end(); count++;
        break;
      case 'delete-chain':
        msg(A.MSG.DELCHAIN, 0, f, `delete chain ${op.name}`, op.owner);
        w.str(A.CHAIN.TABLE, op.table);
        w.str(A.CHAIN.NAME, op.name);
        w.end(); count++;
        break;
      case 'add-rule': {
        // anonymous sets first: the rule's lookup names them by batch id
        const anonIds = new Map<AnonSet, number>();
        for (const e of op.rule.exprs) {
          if (e.op !== 'lookup' || typeof e.set === 'string') continue;
          const id = setId++;
          anonIds.set(e.set, id);
          const layout = anonLayout(f, e.set);
          msg(A.MSG.NEWSET, A.NLM_F.CREATE, f, `anonymous set of a rule in ${op.chain}`, op.rule.owner);
          const size = e.set.elements.length + (e.set.elements.some((x) => x.open) ? 1 : 0);
          setAttrs(w, f, op.table, ANON_SET, layout, id, { size });
          w.end(); count++;
          msg(A.MSG.NEWSETELEM, A.NLM_F.CREATE, f, `elements of an anonymous set in ${op.chain}`, op.rule.owner);
          w.str(A.SET_ELEM_LIST.TABLE, op.table);
          w.str(A.SET_ELEM_LIST.SET, ANON_SET);
          w.u32(A.SET_ELEM_LIST.SET_ID, id);
          const list = w.open(A.SET_ELEM_LIST.ELEMENTS);
          e.set.elements.forEach((el, i) => {
            const n = w.open(i + 1);
            if (el.end) w.u32(A.SET_ELEM.FLAGS, A.SET_ELEM_F.INTERVAL_END);
            value(w, A.SET_ELEM.KEY, el.key);
            if (el.open) w.bytes(A.SET_ELEM.USERDATA, udata([[1, u32h(1)]]));
            w.close(n);
          });
          w.close(list);
          w.end();
        }
        msg(A.MSG.NEWRULE, A.NLM_F.CREATE | A.NLM_F.APPEND, f, `add rule to ${op.chain}: ${op.rule.text}`, op.rule.owner);
        w.str(A.RULE.TABLE, op.table);
        w.str(A.RULE.CHAIN, op.chain);
        const list = w.open(A.RULE.EXPRESSIONS);
        for (const e of op.rule.exprs) expression(w, f, e, anonIds);
        w.close(list);
        if (op.rule.comment) w.udataString(A.RULE.USERDATA, A.UDATA_RULE_COMMENT, op.rule.comment);
        w.end(); count++;
        break;
      }
      case 'add-elements': case 'delete-elements': {
        const add = op.op === 'add-elements';
        const verb = add ? 'add' : 'delete';
        const layout = setLayout(f, op.shape);
        let open = false, listAt = 0, listStart = 0, i = 0, offsets: number[] = [], owners: (string | undefined)[] = [], s = 0;
        const start = (): void => {
          s = msg(add ? A.MSG.NEWSETELEM : A.MSG.DELSETELEM, add ? A.NLM_F.CREATE : 0, f, `${verb} elements of ${op.set}`);
          w.str(A.SET_ELEM_LIST.TABLE, op.table);
          w.str(A.SET_ELEM_LIST.SET, op.set);
          listStart = w.messageLength;
          listAt = w.open(A.SET_ELEM_LIST.ELEMENTS);
          open = true; i = 0; offsets = []; owners = [];
        };
        const finish = (): void => {
          w.close(listAt);
          w.end();
          info.set(s, { what: `${verb} elements of ${op.set}`, elements: { offsets, owners } });
          open = false;
        };
        for (const el of op.elements) {
          if (!open) start();
          else if (w.messageLength - listStart > ELEMENT_LIST_BUDGET) { finish(); start(); }
          offsets.push(w.messageOffset);
          owners.push(el.owner);
          const n = w.open(++i);
          element(w, layout, el, add);
          w.close(n);
          count++;
        }
        if (open) finish();
        break;
      }
      default: assertNever(op);
    }
  }
  const lastSeq = next - 1;
  // The one acknowledgement asked for: it is queued after every refusal (socket.ts).
  if (lastSeq >= begin + 1) w.flagLast(A.NLM_F.ACK);
  w.begin(A.NFNL_MSG_BATCH_END, A.NLM_F.REQUEST, next, 0, A.NFNL_SUBSYS_NFTABLES);
  w.end();
  const bytes = w.length;
  return { chunks: w.finish(), bytes, firstSeq: begin + 1, lastSeq, info, ops: count, replacesTables };
}

function setAttrs(w: MessageWriter, f: Family, table: string, name: string, l: SetLayout, id: number, decl: Partial<KSetDecl>): void {
  w.str(A.SET.TABLE, table);
  w.str(A.SET.NAME, name);
  w.u32(A.SET.FLAGS, l.flags);
  w.u32(A.SET.KEY_TYPE, l.keyType);
  w.u32(A.SET.KEY_LEN, l.keyLen);
  if (l.data) {
    w.u32(A.SET.DATA_TYPE, l.data.type);
    w.u32(A.SET.DATA_LEN, l.data.len);
  }
  w.u32(A.SET.ID, id);
  if (decl.size !== undefined) {
    const d = w.open(A.SET.DESC);
    w.u32(A.SET_DESC.SIZE, decl.size);
    w.close(d);
  }
  if (decl.timeoutSeconds !== undefined) w.u64(A.SET.TIMEOUT, BigInt(decl.timeoutSeconds) * 1000n);
  const items: Item[] = [...l.udata];
  if (decl.comment) items.push([A.UDATA_SET.COMMENT, cstr(decl.comment)]);
  w.bytes(A.SET.USERDATA, udata(items));
  void f;
}

function value(w: MessageWriter, type: number, bytes: Buffer): void {
  const n = w.open(type);
  w.bytes(A.DATA.VALUE, bytes);
  w.close(n);
}

function verdict(w: MessageWriter, type: number, v: KVerdict): void {
  const d = w.open(type);
  const n = w.open(A.DATA.VERDICT);
  w.u32(A.VERDICT.CODE, A.VERDICT_CODE[v.kind]);
  if (v.kind === 'jump' || v.kind === 'goto') w.str(A.VERDICT.CHAIN, v.chain);
  w.close(n);
  w.close(d);
}

function element(w: MessageWriter, l: SetLayout, el: KElement, add: boolean): void {
  if (el.key.length !== l.keyLen) throw new Error(`element key of ${el.key.length} bytes for a set whose keys are ${l.keyLen}`);
  let n = w.open(A.SET_ELEM.KEY);
  w.latin1(A.DATA.VALUE, el.key);
  w.close(n);
  if (!add) return;
  if (el.data) {
    if (el.data.kind === 'verdict') verdict(w, A.SET_ELEM.DATA, el.data.verdict);
    else { n = w.open(A.SET_ELEM.DATA); w.latin1(A.DATA.VALUE, el.data.bytes); w.close(n); }
  }
  if (el.timeoutMs !== undefined) w.u64(A.SET_ELEM.TIMEOUT, BigInt(el.timeoutMs));
  if (el.expiresMs !== undefined) w.u64(A.SET_ELEM.EXPIRATION, BigInt(el.expiresMs));
  if (el.comment) w.udataString(A.SET_ELEM.USERDATA, A.UDATA_SET_ELEM_COMMENT, el.comment);
}

function expression(w: MessageWriter, f: Family, e: Expr, anonIds: ReadonlyMap<AnonSet, number>): void {
  const item = w.open(A.LIST_ELEM);
  const name = (n: string): number => { w.str(A.EXPR.NAME, n); return w.open(A.EXPR.DATA); };
  let d: number;
  switch (e.op) {
    case 'payload':
      d = name('payload');
      w.u32(A.PAYLOAD.DREG, e.dreg); w.u32(A.PAYLOAD.BASE, A.PAYLOAD_BASE[e.base]); w.u32(A.PAYLOAD.OFFSET, e.offset); w.u32(A.PAYLOAD.LEN, e.len);
      break;
    case 'meta':
      d = name('meta');
      w.u32(A.META.KEY, A.META_KEY[e.key]); w.u32(A.META.DREG, e.dreg);
      break;
    case 'meta-set':
      d = name('meta');
      w.u32(A.META.KEY, A.META_KEY[e.key]); w.u32(A.META.SREG, e.sreg);
      break;
    case 'ct':
      d = name('ct');
      w.u32(A.CT.KEY, A.CT_KEY[e.key]); w.u32(A.CT.DREG, e.dreg);
      break;
    case 'bitwise':
      d = name('bitwise');
      w.u32(A.BITWISE.SREG, e.reg); w.u32(A.BITWISE.DREG, e.reg); w.u32(A.BITWISE.OP, 0); w.u32(A.BITWISE.LEN, e.mask.length);
      value(w, A.BITWISE.MASK, e.mask); value(w, A.BITWISE.XOR, e.xor);
      break;
    case 'cmp':
      d = name('cmp');
      w.u32(A.CMP.SREG, e.reg); w.u32(A.CMP.OP, A.CMP_OP[e.cmp]); value(w, A.CMP.DATA, e.data);
      break;
    case 'lookup': {
      d = name('lookup');
      w.u32(A.LOOKUP.SREG, e.sreg);
      if (e.dreg !== undefined) w.u32(A.LOOKUP.DREG, e.dreg);
      if (typeof e.set === 'string') w.str(A.LOOKUP.SET, e.set);
      else {
        w.str(A.LOOKUP.SET, ANON_SET);
        w.u32(A.LOOKUP.SET_ID, anonIds.get(e.set)!);
      }
      if (e.invert) w.u32(A.LOOKUP.FLAGS, A.LOOKUP_F_INV);
      break;
    }
    case 'verdict':
      d = name('immediate');
      w.u32(A.IMMEDIATE.DREG, 0); verdict(w, A.IMMEDIATE.DATA, e.verdict);
      break;
    case 'immediate':
      d = name('immediate');
      w.u32(A.IMMEDIATE.DREG, e.dreg); value(w, A.IMMEDIATE.DATA, e.data);
      break;
    case 'dnat':
      d = name('nat');
      w.u32(A.NAT.TYPE, A.NAT_DNAT); w.u32(A.NAT.FAMILY, A.NFPROTO[f]); w.u32(A.NAT.REG_ADDR_MIN, e.addr); w.u32(A.NAT.REG_PROTO_MIN, e.proto);
      if (e.flags) w.u32(A.NAT.FLAGS, e.flags);
      break;
    case 'masq':
      d = name('masq');
      w.u32(A.MASQ.FLAGS, e.flags);
      break;
    case 'reject':
      d = name('reject');
      w.u32(A.REJECT.TYPE, 0); w.u8(A.REJECT.ICMP_CODE, e.icmpCode);
      break;
    case 'numgen':
      d = name('numgen');
      w.u32(A.NG.DREG, e.dreg); w.u32(A.NG.MODULUS, e.mod); w.u32(A.NG.TYPE, A.NG_RANDOM);
      if (e.offset) w.u32(A.NG.OFFSET, e.offset);
      break;
    case 'dynset-update':
      d = name('dynset');
      w.u32(A.DYNSET.SREG_KEY, e.sreg); w.str(A.DYNSET.SET_NAME, e.set); w.u32(A.DYNSET.OP, A.DYNSET_OP_UPDATE); w.u64(A.DYNSET.TIMEOUT, BigInt(e.timeoutMs));
      break;
    case 'fib-type':
      d = name('fib');
      w.u32(A.FIB.FLAGS, A.FIB_F[e.field]); w.u32(A.FIB.RESULT, A.FIB_RESULT_ADDRTYPE); w.u32(A.FIB.DREG, e.dreg);
      break;
    default: assertNever(e);
  }
  w.close(d);
  w.close(item);
}

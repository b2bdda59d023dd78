// The text writer: kernel objects -> nft syntax, for people (`nftproxy dump`) and for `nft -f`.
// A whole table is laid out as `nft list table` prints it; a transaction (ops.ts) as the
// commands that would make the same change. The netlink writer never goes through here.
import type { Family } from '../../ir/types.js';
import { assertNever } from '../../model/result.js';
import { addrTextAt, portText, protoText, wordText } from './bytes.js';
import { type KFamily, familyChains, familySets } from './family.js';
import type { Op } from './ops.js';
import type { KChain, KData, KElement, KHook, KSetDecl, KTableHead, KVerdict, SetShape } from './types.js';

const addrType = (f: Family): string => (f === 'ip' ? 'ipv4_addr' : 'ipv6_addr');
const kw = (f: Family): string => (f === 'ip' ? 'ip' : 'ip6');
const quoted = (s: string): string => `"${s}"`;

import { setKind } from './ops.js';

export { setKind };

/** The declaration lines of a set (type, size, flags, timeout, comment), without elements. */
export function setDeclLines(f: Family, s: KSetDecl): string[] {
  const lines = [typeLine(f, s.shape)];
  if (s.size !== undefined) lines.push(`size ${s.size}`);
  if (s.timeoutSeconds !== undefined) lines.push('flags dynamic,timeout', `timeout ${s.timeoutSeconds}s`);
  if (s.comment) lines.push(`comment ${quoted(s.comment)}`);
  return lines;
}

function typeLine(f: Family, shape: SetShape): string {
  const a = addrType(f), k = kw(f);
  switch (shape) {
    case 'addr': return `type ${a}`;
    case 'addr.addr': return `type ${a} . ${a}`;
    case 'addr.proto.port:verdict': return `type ${a} . inet_proto . inet_service : verdict`;
    case 'proto.port:verdict': return 'type inet_proto . inet_service : verdict';
    case 'addr.proto.port': return `type ${a} . inet_proto . inet_service`;
    case 'proto.port': return 'type inet_proto . inet_service';
    case 'saddr.word.word': return `typeof ${k} saddr . numgen random mod 1 . numgen random mod 1`;
    case 'addr.proto.port.slot:addr.port': return `typeof ${k} daddr . meta l4proto . th dport . numgen random mod 1 : ${k} daddr . th dport`;
    case 'proto.port.slot:addr.port': return `typeof meta l4proto . th dport . numgen random mod 1 : ${k} daddr . th dport`;
    default: return assertNever(shape);
  }
}

type Field = 'addr' | 'proto' | 'port' | 'word';
const KEY_FIELDS: Readonly<Record<SetShape, readonly Field[]>> = {
  'addr': ['addr'],
  'addr.addr': ['addr', 'addr'],
  'addr.proto.port:verdict': ['addr', 'proto', 'port'],
  'proto.port:verdict': ['proto', 'port'],
  'addr.proto.port': ['addr', 'proto', 'port'],
  'proto.port': ['proto', 'port'],
  'saddr.word.word': ['addr', 'word', 'word'],
  'addr.proto.port.slot:addr.port': ['addr', 'proto', 'port', 'word'],
  'proto.port.slot:addr.port': ['proto', 'port', 'word'],
};

/** bytes of a concatenation (latin1) -> "a . b . c" */
export function fieldsText(f: Family, fields: readonly Field[], bytes: string): string {
  const alen = f === 'ip' ? 4 : 16;
  let out = '';
  let at = 0;
  for (const field of fields) {
    if (at > 0) out += ' . ';
    if (field === 'addr') { out += addrTextAt(bytes, at, alen); at += alen; continue; }
    out += field === 'proto' ? protoText(bytes, at) : field === 'port' ? portText(bytes, at) : wordText(bytes, at);
    at += 4;
  }
  return out;
}

export const keyText = (f: Family, shape: SetShape, key: string): string => fieldsText(f, KEY_FIELDS[shape], key);

export function verdictText(v: KVerdict): string {
  return v.kind === 'jump' || v.kind === 'goto' ? `${v.kind} ${v.chain}` : v.kind;
}

const dataText = (f: Family, d: KData): string => (d.kind === 'verdict' ? verdictText(d.verdict) : fieldsText(f, ['addr', 'port'], d.bytes));

export function elementText(f: Family, shape: SetShape, e: KElement): string {
  const timeout = e.timeoutMs !== undefined ? ` timeout ${msText(e.timeoutMs)}` : '';
  const expires = e.expiresMs !== undefined ? ` expires ${msText(e.expiresMs)}` : '';
  return `${keyText(f, shape, e.key)}${timeout}${expires}${e.comment ? ` comment ${quoted(e.comment)}` : ''}${e.data ? ` : ${dataText(f, e.data)}` : ''}`;
}

const msText = (ms: number): string => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`);

export const hookText = (h: KHook): string => `type ${h.type} hook ${h.hook} priority ${h.priority}; policy accept;`;

const byKey = (a: KElement, b: KElement): number => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/** One table in `nft list` layout: sets and maps first, then chains; elements in key order. */
export function tableLines(f: KFamily): string[] {
  const { family } = f.head;
  const out = [`table ${family} ${f.head.name} {`, `\tcomment ${quoted(f.head.comment)}`];
  for (const { decl, elements } of familySets(f)) {
    out.push('', `\t${setKind(decl.shape)} ${decl.name} {`);
    for (const d of setDeclLines(family, decl)) out.push(`\t\t${d}`);
    const els = elements ? [...elements].sort(byKey) : [];
    els.forEach((e, i) => out.push(`${i === 0 ? '\t\telements = { ' : '\t\t\t     '}${elementText(family, decl.shape, e)}${i === els.length - 1 ? ' }' : ','}`));
    out.push('\t}');
  }
  for (const c of familyChains(f)) out.push('', ...chainLines(c));
  out.push('}');
  return out;
}

function chainLines(c: KChain): string[] {
  return [`\tchain ${c.name} {`, ...(c.hook ? [`\t\t${hookText(c.hook)}`] : []), ...c.rules.map((r) => `\t\t${r.text}`), '\t}'];
}

/** What `nft -f` needs to replace nftproxy's tables with these: the layout dump prints. */
export function tablesText(fams: readonly KFamily[], heads: readonly KTableHead[] = fams.map((f) => f.head)): string {
  const out: string[] = [];
  for (const h of heads) out.push(`add table ${h.family} ${h.name}`, `delete table ${h.family} ${h.name}`);
  for (const f of fams) for (const l of tableLines(f)) out.push(l);
  return out.join('\n') + '\n';
}

/** A transaction as nft commands (for people: logs, tests, `--dry-run`-like output). */
export function opsText(ops: Iterable<Op>): string {
  const out: string[] = [];
  for (const op of ops) {
    const at = `${op.family} ${op.table}`;
    switch (op.op) {
      case 'add-table': out.push(`add table ${at}${op.comment ? ` { comment ${quoted(op.comment)}; }` : ''}`); break;
      case 'delete-table': out.push(`delete table ${at}`); break;
      case 'add-set': out.push(`add ${setKind(op.set.shape)} ${at} ${op.set.name} { ${setDeclLines(op.family, op.set).join('; ')}; }`); break;
      case 'delete-set': out.push(`delete ${op.kind} ${at} ${op.name}`); break;
      case 'flush-table': out.push(`flush table ${at}`); break;
      case 'flush-set': out.push(`flush ${op.kind} ${at} ${op.name}`); break;
      case 'add-chain': out.push(`add chain ${at} ${op.chain.name}${op.chain.hook ? ` { ${hookText(op.chain.hook)} }` : ''}`); break;
      case 'flush-chain': out.push(`flush chain ${at} ${op.name}`); break;
      case 'delete-chain': out.push(`delete chain ${at} ${op.name}`); break;
      case 'delete-rule':
        if (op.handle === undefined) throw new Error(`delete rule of ${op.chain} (the one that looks up ${op.lookup}): read its handle first (NetlinkWriter.withRuleHandles)`);
        out.push(`delete rule ${at} ${op.chain} handle ${op.handle}`);
        break;
      case 'add-rule': out.push(`add rule ${at} ${op.chain} ${op.rule.text}`); break;
      case 'add-elements': case 'delete-elements': {
        const verb = op.op === 'add-elements' ? 'add' : 'delete';
        const els = [...op.elements].map((e) => (verb === 'add' ? elementText(op.family, op.shape, e) : keyText(op.family, op.shape, e.key)));
        if (els.length) out.push(`${verb} element ${at} ${op.set} { ${els.join(', ')} }`);
        break;
      }
      default: assertNever(op);
    }
  }
  return out.join('\n') + (out.length ? '\n' : '');
}

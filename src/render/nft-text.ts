// IR -> nft text, the form `nft -f -` loads and the applier sends. Laid out like
// `nft list ruleset`. One transaction: "add table" then "delete table" then the table,
// so it creates the table when missing and replaces all of it otherwise, and never
// touches another table.
import type { Chain, Family, Match, NamedSet, Rule, Ruleset, SetElement, Statement, Table, Verdict, AddrMatch, AffinityKey, KeyAtom } from '../ir/types.js';
import { MASQ_MARK } from '../ir/types.js';
import { assertNever } from '../model/result.js';
import { addrKeyword, dnatGroupNames } from './lower-dnat.js';
import { type KTable, toKTable } from './nft-objects.js';
import { nftComment } from './nft-comment.js';

const hex = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

export function renderText(rs: Ruleset): string {
  const out: string[] = [];
  for (const t of rs.tables) {
    out.push(`add table ${t.family} ${t.name}`);
    out.push(`delete table ${t.family} ${t.name}`);
  }
  for (const t of rs.tables) out.push(renderTable(t));
  return out.join('\n') + '\n';
}

export function renderTable(t: Table): string {
  return renderKTable(toKTable(t));
}

/** A whole table in `nft list` layout: sets and maps first, then chains. */
export function renderKTable(k: KTable): string {
  return kTableLines(k).map((l) => l.text).join('\n');
}

/** One line of a transaction and the service port it belongs to (for error attribution). */
export interface OwnedLine { readonly text: string; readonly owner: string | undefined }

/** The table block line by line, one element or rule per line, each with its owner. */
export function kTableLines(k: KTable): OwnedLine[] {
  const lines: OwnedLine[] = [];
  const push = (text: string, owner?: string): void => { lines.push({ text, owner }); };
  push(`table ${k.family} ${k.name} {`);
  push(`\tcomment ${quote(k.comment)}`);
  for (const s of k.sets.values()) {
    push('');
    push(`\t${s.kind} ${s.name} {`, s.owner);
    for (const d of s.decl) push(`\t\t${d}`, s.owner);
    const els = [...s.elements.values()];
    els.forEach((e, i) => push(`${i === 0 ? '\t\telements = { ' : '\t\t\t     '}${e.text}${i === els.length - 1 ? ' }' : ','}`, e.owner));
    push('\t}');
  }
  for (const c of k.chains.values()) {
    push('');
    push(`\tchain ${c.name} {`, c.owner);
    if (c.hook) push(`\t\t${c.hook}`);
    for (const r of c.rules) push(`\t\t${r.text}`, r.owner);
    push('\t}');
  }
  push('}');
  return lines;
}

/** An element's key text (for delete) and whole text (for add). */
/** Chain name -> the shared chain that stands in for it (lower-dnat.ts: dnatAliases). */
export type Aliases = ReadonlyMap<string, string>;
const NO_ALIASES: Aliases = new Map();

export function renderElementParts(e: SetElement, aliases: Aliases = NO_ALIASES): { key: string; text: string } {
  const key = e.key.map(atom).join(' . ');
  const comment = e.comment ? ` comment ${quote(e.comment)}` : '';
  return { key, text: e.verdict ? `${key}${comment} : ${verdict(e.verdict, aliases)}` : `${key}${comment}` };
}

const atom = (k: KeyAtom): string => String(k);

export function renderRule(f: Family, r: Rule, aliases: Aliases = NO_ALIASES): string {
  const parts = [...r.matches.map((m) => match(f, m)), ...r.stmts.map((s) => statement(f, s, aliases))];
  if (r.comment) parts.push(`comment ${quote(r.comment)}`);
  return parts.join(' ');
}

const addrText = (a: AddrMatch): string => (typeof a === 'string' ? a : a.text);

function match(f: Family, m: Match): string {
  const a = addrKeyword(f);
  switch (m.kind) {
    case 'ct-state-new': return 'ct state new';
    case 'addr': {
      const v = m.values.length === 1 ? addrText(m.values[0]!) : `{ ${m.values.map(addrText).join(', ')} }`;
      return `${a} ${m.field} ${m.op === '!=' ? '!= ' : ''}${v}`;
    }
    case 'addr-in-set': return `${a} ${m.field} @${m.set}`;
    case 'fib-local': return `fib ${m.field} type local`;
    case 'dport': return `${m.proto} dport ${m.port}`;
    case 'masq-mark': return `meta mark & ${hex(MASQ_MARK)} ${m.set ? '!=' : '=='} ${hex(0)}`;
    case 'hairpin': return `ct status dnat ${a} saddr . ${a} daddr @${m.set}`;
    case 'affinity': return `${affinityKeyText(f, m.key)} @${m.set}`;
    default: return assertNever(m);
  }
}

function statement(f: Family, s: Statement, aliases: Aliases): string {
  const a = addrKeyword(f);
  switch (s.kind) {
    case 'verdict': return verdict(s.verdict, aliases);
    case 'reject': return 'reject';
    case 'vmap': return s.key === 'daddr.l4proto.dport' ? `${a} daddr . meta l4proto . th dport vmap @${s.map}` : `meta l4proto . th dport vmap @${s.map}`;
    case 'mark-masq': return `meta mark set meta mark | ${hex(MASQ_MARK)}`;
    case 'masquerade': return s.clearMark ? `meta mark set meta mark ^ ${hex(MASQ_MARK)} masquerade fully-random` : 'masquerade fully-random';
    case 'dnat': {
      if (s.backends.length === 0) throw new Error('dnat without backends: the compiler must not emit it');
      if (s.backends.length === 1) {
        const b = s.backends[0]!;
        return `meta l4proto ${s.proto} dnat to ${f === 'ip' ? b.addr : `[${b.addr}]`}:${b.port}`;
      }
      return `goto ${dnatGroupNames(s.policy, s.backends.length).chain}`;
    }
    case 'affinity-update': return `update @${s.set} { ${affinityKeyText(f, s.key)} timeout ${s.timeoutSeconds}s }`;
    case 'random-goto': return `numgen random mod ${s.chains.length} vmap { ${s.chains.map((c, i) => `${i} : goto ${c}`).join(', ')} }`;
    default: return assertNever(s);
  }
}

// nft 1.0.6 takes no constants in a concatenation on the left of a lookup; `numgen random
// mod 1 offset K` always yields K, and is typed, so it stands in for the constant.
const affinityKeyText = (f: Family, k: AffinityKey): string => `${addrKeyword(f)} saddr . numgen random mod 1 offset ${k[0]} . numgen random mod 1 offset ${k[1]}`;

function verdict(v: Verdict, aliases: Aliases = NO_ALIASES): string {
  switch (v.kind) {
    case 'accept': case 'drop': case 'return': return v.kind;
    case 'jump': case 'goto': return `${v.kind} ${aliases.get(v.chain) ?? v.chain}`;
    default: return assertNever(v);
  }
}

// Comments come from our own code or validated names; escaping is belt and braces.
export function quote(s: string): string {
  return `"${nftComment(s).replace(/[^A-Za-z0-9 _.,:/()+=<>@-]/g, '_')}"`;
}

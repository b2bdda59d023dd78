// IR rules and verdicts -> nft syntax: the text of one rule as `nft list` prints it (and `nft
// -f` reads it). The kernel objects (render/kernel) carry it beside the rule's expressions.
import type { Family, Match, Rule, Statement, Verdict, AddrMatch, AffinityKey } from '../ir/types.js';
import { MASQ_MARK } from '../ir/types.js';
import { assertNever } from '../model/result.js';
import { addrKeyword, dnatGroupNames, picksFromGroup } from './lower-dnat.js';
import { nftComment } from './nft-comment.js';

const hex = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

/** Chain name -> the shared chain that stands in for it (lower-dnat.ts: dnatAliases). */
export type Aliases = ReadonlyMap<string, string>;
const NO_ALIASES: Aliases = new Map();

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
    case 'one-in': return `numgen random mod ${m.n} 0`;
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
      if (picksFromGroup(s)) return `goto ${dnatGroupNames(s.policy, s.backends.length).chain}`;
      if (s.backends.length !== 1) throw new Error('a dnat without packet keys names one endpoint: the compiler must not emit more');
      const b = s.backends[0]!;
      return `meta l4proto ${s.proto} dnat to ${f === 'ip' ? b.addr : `[${b.addr}]`}:${b.port}`;
    }
    case 'affinity-update': return `update @${s.set} { ${affinityKeyText(f, s.key)} timeout ${s.timeoutSeconds}s }`;
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

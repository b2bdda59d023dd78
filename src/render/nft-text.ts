// IR -> nft text, the form `nft -f -` loads and the applier sends. Laid out like
// `nft list ruleset`. One transaction: "add table" then "delete table" then the table,
// so it creates the table when missing and replaces all of it otherwise, and never
// touches another table.
import type { Chain, Family, Match, NamedSet, Rule, Ruleset, SetElement, Statement, Table, Verdict, AddrMatch, KeyAtom } from '../ir/types.js';
import { MASQ_MARK } from '../ir/types.js';
import { assertNever } from '../model/result.js';
import { addrKeyword, collectDnatGroups, dnatGroupNames } from './lower-dnat.js';
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
  const lines: string[] = [`table ${t.family} ${t.name} {`, `\tcomment "rules for nftproxy"`];
  for (const s of t.sets) lines.push('', ...renderSet(t.family, s));
  const groups = collectDnatGroups(t);
  const a = addrKeyword(t.family);
  for (const g of groups) {
    const dataType = `${a} daddr . th dport`;
    lines.push('', `\tmap ${g.vipMap} {`, `\t\ttypeof ${a} daddr . meta l4proto . th dport . numgen random mod 1 : ${dataType}`);
    if (g.vipElements.length) lines.push(`\t\telements = { ${g.vipElements.map((e) => `${e.key.addr} . ${e.key.proto} . ${e.key.port} . ${e.slot} : ${e.backend.addr} . ${e.backend.port}`).join(',\n\t\t\t     ')} }`);
    lines.push('\t}');
    lines.push('', `\tmap ${g.nodePortMap} {`, `\t\ttypeof meta l4proto . th dport . numgen random mod 1 : ${dataType}`);
    if (g.nodePortElements.length) lines.push(`\t\telements = { ${g.nodePortElements.map((e) => `${e.key.proto} . ${e.key.port} . ${e.slot} : ${e.backend.addr} . ${e.backend.port}`).join(',\n\t\t\t     ')} }`);
    lines.push('\t}');
  }
  for (const c of t.chains) lines.push('', ...renderChain(t.family, c));
  for (const g of groups) {
    lines.push('', `\tchain ${g.chain} {`,
      `\t\tmeta l4proto { tcp, udp, sctp } dnat ${a} addr . port to ${a} daddr . meta l4proto . th dport . numgen random mod ${g.n} map @${g.vipMap}`,
      `\t\tmeta l4proto { tcp, udp, sctp } dnat ${a} addr . port to meta l4proto . th dport . numgen random mod ${g.n} map @${g.nodePortMap}`,
      '\t}');
  }
  lines.push('}');
  return lines.join('\n');
}

const keyTypes = (f: Family, key: NamedSet['key']): string => {
  const addr = f === 'ip' ? 'ipv4_addr' : 'ipv6_addr';
  switch (key) {
    case 'addr': return addr;
    case 'addr.addr': return `${addr} . ${addr}`;
    case 'addr.l4proto.dport': return `${addr} . inet_proto . inet_service`;
    case 'l4proto.dport': return 'inet_proto . inet_service';
    default: return assertNever(key);
  }
};

function renderSet(f: Family, s: NamedSet): string[] {
  const lines = [`\t${s.isMap ? 'map' : 'set'} ${s.name} {`, `\t\ttype ${keyTypes(f, s.key)}${s.isMap ? ' : verdict' : ''}`];
  const flags = [...(s.interval ? ['interval'] : []), ...(s.timeoutSeconds !== undefined ? ['dynamic', 'timeout'] : [])];
  if (flags.length) lines.push(`\t\tflags ${flags.join(',')}`);
  if (s.timeoutSeconds !== undefined) lines.push(`\t\ttimeout ${s.timeoutSeconds}s`);
  if (s.comment) lines.push(`\t\tcomment ${quote(s.comment)}`);
  if (s.elements.length) lines.push(`\t\telements = { ${s.elements.map(renderElement).join(',\n\t\t\t     ')} }`);
  lines.push('\t}');
  return lines;
}

export function renderElement(e: SetElement): string {
  const key = e.key.map(atom).join(' . ');
  const comment = e.comment ? ` comment ${quote(e.comment)}` : '';
  return e.verdict ? `${key}${comment} : ${verdict(e.verdict)}` : `${key}${comment}`;
}

const atom = (k: KeyAtom): string => String(k);

function renderChain(f: Family, c: Chain): string[] {
  const lines = [`\tchain ${c.name} {`];
  if (c.base) lines.push(`\t\ttype ${c.base.type} hook ${c.base.hook} priority ${c.base.priority}; policy accept;`);
  for (const r of c.rules) lines.push(`\t\t${renderRule(f, r)}`);
  lines.push('\t}');
  return lines;
}

export function renderRule(f: Family, r: Rule): string {
  const parts = [...r.matches.map((m) => match(f, m)), ...r.stmts.map((s) => statement(f, s))];
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
    default: return assertNever(m);
  }
}

function statement(f: Family, s: Statement): string {
  const a = addrKeyword(f);
  switch (s.kind) {
    case 'verdict': return verdict(s.verdict);
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
    case 'update-saddr': return `update @${s.set} { ${a} saddr }`;
    case 'random-goto': return `numgen random mod ${s.chains.length} vmap { ${s.chains.map((c, i) => `${i} : goto ${c}`).join(', ')} }`;
    default: return assertNever(s);
  }
}

function verdict(v: Verdict): string {
  switch (v.kind) {
    case 'accept': case 'drop': case 'return': return v.kind;
    case 'jump': case 'goto': return `${v.kind} ${v.chain}`;
    default: return assertNever(v);
  }
}

// Comments come from our own code or validated names; escaping is belt and braces.
export function quote(s: string): string {
  return `"${nftComment(s).replace(/[^A-Za-z0-9 _.,:/()+=<>@-]/g, '_')}"`;
}

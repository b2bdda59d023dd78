// IR -> nft JSON (libnftables-json(5)), what `nft -j -f -` takes.
//
// nft 1.0.6 cannot declare a `typeof` map in JSON, and every map keyed by `numgen` needs
// one; so here "dnat to one of N backends" becomes an inline numgen map in the rule.
// It loads and behaves the same, but inline maps cost the kernel time per map, so the
// daemon applies the text form (render/nft-text.ts) and JSON serves tooling and dump.
// For the same reason the shared session-affinity set (its key has numgen words) becomes
// kube-proxy's layout here: one timeout set per affinity endpoint, named after its key.
import type { AddrMatch, AffinityKey, Chain, Family, KeyAtom, Match, NamedSet, Rule, Ruleset, SetElement, Statement, Table, Verdict } from '../ir/types.js';
import { MASQ_MARK } from '../ir/types.js';
import { assertNever } from '../model/result.js';
import { nftComment } from './nft-comment.js';

type J = unknown;

export function renderJson(rs: Ruleset): string {
  const cmds: J[] = [{ metainfo: { json_schema_version: 1 } }];
  for (const t of rs.tables) {
    const tbl = { family: t.family, name: t.name };
    cmds.push({ add: { table: tbl } }, { delete: { table: tbl } }, { add: { table: { ...tbl, comment: 'rules for nftproxy' } } });
  }
  for (const t of rs.tables) for (const c of tableCommands(t)) cmds.push(c); // no spread: big tables overflow push(...)
  return `${JSON.stringify({ nftables: cmds }, null, 1)}\n`;
}

function tableCommands(t: Table): J[] {
  const base = { family: t.family, table: t.name };
  const out: J[] = [];
  for (const s of t.sets) if (s.key !== 'saddr.affinity') out.push({ add: { [s.isMap ? 'map' : 'set']: setObject(t.family, base, s) } });
  // one set per affinity key, declared once (a key's endpoint is remembered by several rules)
  const affinitySets = new Set<string>();
  for (const c of t.chains) {
    for (const r of c.rules) {
      for (const s of r.stmts) {
        if (s.kind !== 'affinity-update') continue;
        const name = affinitySetName(s.key);
        if (affinitySets.has(name)) continue;
        affinitySets.add(name);
        out.push({ add: { set: { ...base, name, type: t.family === 'ip' ? 'ipv4_addr' : 'ipv6_addr', flags: ['timeout'], timeout: s.timeoutSeconds } } });
      }
    }
  }
  for (const c of t.chains) out.push({ add: { chain: chainObject(base, c) } });
  for (const c of t.chains) for (const r of c.rules) out.push({ add: { rule: { ...base, chain: c.name, expr: ruleExpr(t.family, r), ...(r.comment ? { comment: nftComment(r.comment) } : {}) } } });
  for (const s of t.sets) if (s.elements.length) out.push({ add: { element: { ...base, name: s.name, elem: s.elements.map((e) => element(s, e)) } } });
  return out;
}

function setObject(f: Family, base: object, s: NamedSet): J {
  const addr = f === 'ip' ? 'ipv4_addr' : 'ipv6_addr';
  const type = s.key === 'addr' ? addr : s.key === 'addr.addr' ? [addr, addr] : s.key === 'addr.l4proto.dport' ? [addr, 'inet_proto', 'inet_service'] : ['inet_proto', 'inet_service'];
  // nft 1.0.6's JSON parser has no "dynamic" flag; the kernel adds it to a timeout set
  // as soon as a rule updates it, so "timeout" alone gives the same set.
  const flags = [...(s.interval ? ['interval'] : []), ...(s.timeoutSeconds !== undefined ? ['timeout'] : [])];
  return {
    ...base, name: s.name, type,
    ...(s.isMap ? { map: 'verdict' } : {}),
    ...(flags.length ? { flags } : {}),
    ...(s.timeoutSeconds !== undefined ? { timeout: s.timeoutSeconds } : {}),
    ...(s.comment ? { comment: nftComment(s.comment) } : {}),
  };
}

function chainObject(base: object, c: Chain): J {
  return { ...base, name: c.name, ...(c.base ? { type: c.base.type, hook: c.base.hook, prio: c.base.priority, policy: 'accept' } : {}) };
}

const atomJ = (k: KeyAtom): J => {
  if (typeof k === 'number') return k;
  const slash = k.indexOf('/');
  return slash > 0 ? { prefix: { addr: k.slice(0, slash), len: Number(k.slice(slash + 1)) } } : k;
};

function element(s: NamedSet, e: SetElement): J {
  const val = e.key.length === 1 ? atomJ(e.key[0]!) : { concat: e.key.map(atomJ) };
  const key = e.comment ? { elem: { val, comment: nftComment(e.comment) } } : val;
  return s.isMap && e.verdict ? [key, verdictJ(e.verdict)] : key;
}

const affinitySetName = (k: AffinityKey): string => `affinity-${k.map((w) => w.toString(16).padStart(8, '0')).join('')}`;
const payload = (protocol: string, field: string): J => ({ payload: { protocol, field } });
const addrField = (f: Family, field: 'saddr' | 'daddr'): J => payload(f === 'ip' ? 'ip' : 'ip6', field);
const addrValue = (a: AddrMatch): J => (typeof a === 'string' ? a : { prefix: { addr: a.addr, len: a.prefix } });
const l4proto: J = { meta: { key: 'l4proto' } };
const thDport: J = payload('th', 'dport');
const mark: J = { meta: { key: 'mark' } };
const match = (op: string, left: J, right: J): J => ({ match: { op, left, right } });

function ruleExpr(f: Family, r: Rule): J[] {
  return [...r.matches.flatMap((m) => [matchJ(f, m)].flat()), ...r.stmts.flatMap((s) => stmtJ(f, s))];
}

function matchJ(f: Family, m: Match): J {
  switch (m.kind) {
    case 'ct-state-new': return match('in', { ct: { key: 'state' } }, 'new');
    case 'addr': return match(m.op, addrField(f, m.field), m.values.length === 1 ? addrValue(m.values[0]!) : { set: m.values.map(addrValue) });
    case 'addr-in-set': return match('==', addrField(f, m.field), `@${m.set}`);
    case 'fib-local': return match('==', { fib: { result: 'type', flags: [m.field] } }, 'local');
    case 'dport': return match('==', payload(m.proto, 'dport'), m.port);
    case 'masq-mark': return match(m.set ? '!=' : '==', { '&': [mark, MASQ_MARK] }, 0);
    case 'hairpin': return [match('in', { ct: { key: 'status' } }, 'dnat'), match('==', { concat: [addrField(f, 'saddr'), addrField(f, 'daddr')] }, `@${m.set}`)];
    case 'affinity': return match('==', addrField(f, 'saddr'), `@${affinitySetName(m.key)}`);
    case 'one-in': return match('==', { numgen: { mode: 'random', mod: m.n, offset: 0 } }, 0);
    default: return assertNever(m);
  }
}

function stmtJ(f: Family, s: Statement): J[] {
  switch (s.kind) {
    case 'verdict': return [verdictJ(s.verdict)];
    case 'reject': return [{ reject: null }];
    case 'vmap': return [{ vmap: { key: { concat: s.key === 'daddr.l4proto.dport' ? [addrField(f, 'daddr'), l4proto, thDport] : [l4proto, thDport] }, data: `@${s.map}` } }];
    case 'mark-masq': return [{ mangle: { key: mark, value: { '|': [mark, MASQ_MARK] } } }];
    case 'masquerade': return [...(s.clearMark ? [{ mangle: { key: mark, value: { '^': [mark, MASQ_MARK] } } }] : []), { masquerade: { flags: 'fully-random' } }];
    case 'dnat': {
      const protoMatch = match('==', l4proto, s.proto);
      const [first] = s.backends;
      if (!first) throw new Error('dnat without backends: the compiler must not emit it');
      if (s.backends.length === 1) return [protoMatch, { dnat: { addr: first.addr, port: first.port } }];
      const numgen = { numgen: { mode: 'random', mod: s.backends.length, offset: 0 } };
      if (s.backends.every((b) => b.port === first.port)) {
        return [protoMatch, { dnat: { addr: { map: { key: numgen, data: { set: s.backends.map((b, i) => [i, b.addr]) } } }, port: first.port } }];
      }
      return [protoMatch, { dnat: { family: f, addr: { map: { key: numgen, data: { set: s.backends.map((b, i) => [i, { concat: [b.addr, b.port] }]) } } } } }];
    }
    case 'affinity-update': return [{ set: { op: 'update', elem: addrField(f, 'saddr'), set: `@${affinitySetName(s.key)}` } }];
    default: return assertNever(s);
  }
}

function verdictJ(v: Verdict): J {
  switch (v.kind) {
    case 'accept': case 'drop': case 'return': return { [v.kind]: null };
    case 'jump': case 'goto': return { [v.kind]: { target: v.chain } };
    default: return assertNever(v);
  }
}

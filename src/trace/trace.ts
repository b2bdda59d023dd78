// explain's tracer: walks the IR the way netfilter walks the loaded table, for the first
// packet of a new connection, and follows every branch of a random choice so that it
// reports all endpoints a connection may land on. Pure: (ruleset, node addresses, packet).
import { type IP, cidrContains, familyOf } from '../model/ip.js';
import type { Protocol } from '../model/types.js';
import { type AddrMatch, type BaseHook, type Chain, type Family, type Match, type NamedSet, type Rule, type Ruleset, type ServicePortInfo, type Statement, type Table, type Verdict, fmtBackend } from '../ir/types.js';
import { assertNever } from '../model/result.js';
import { dnatAliases } from '../render/lower-dnat.js';

export interface Packet {
  readonly src: IP;
  readonly dst: IP;
  readonly proto: Protocol;
  readonly dport: number;
}

export interface Landing {
  readonly addr: IP;
  readonly port: number;
  readonly masquerade: boolean;
  readonly masqueradeWhy: readonly string[];
}

export type Outcome =
  | { readonly kind: 'dnat'; readonly endpoints: readonly Landing[] }
  | { readonly kind: 'drop'; readonly why: string }
  | { readonly kind: 'reject'; readonly why: string }
  | { readonly kind: 'not-proxied'; readonly why: string };

export interface Trace {
  readonly packet: Packet;
  readonly origin: 'node' | 'remote';
  readonly outcome: Outcome;
  readonly servicePort: ServicePortInfo | undefined;
  readonly steps: readonly string[];
}

interface State {
  daddr: IP;
  dport: number;
  mark: boolean;
  dnat: boolean;
  masqWhy: string[];
  steps: string[];
  owner: string | undefined;
}

type R = { kind: 'return' | 'accept'; st: State } | { kind: 'drop' | 'reject'; st: State; why: string };
type End = { kind: 'continue'; st: State } | { kind: 'drop' | 'reject'; st: State; why: string };

const hookOrder = (t: Table, hook: BaseHook['hook']): Chain[] =>
  t.chains.filter((c) => c.base?.hook === hook).sort((a, b) => a.base!.priority - b.base!.priority);

export function trace(rs: Ruleset, nodeIPs: readonly IP[], p: Packet): Trace {
  const family: Family = familyOf(p.dst) === 'ipv4' ? 'ip' : 'ip6';
  const table = rs.tables.find((t) => t.family === family);
  const local = (ip: IP): boolean => nodeIPs.includes(ip);
  const origin = local(p.src) ? 'node' : 'remote';
  const init: State = { daddr: p.dst, dport: p.dport, mark: false, dnat: false, masqWhy: [], steps: [], owner: undefined };
  if (!table) return { packet: p, origin, outcome: { kind: 'not-proxied', why: `no ${family} table` }, servicePort: undefined, steps: [] };
  const ev = new Evaluator(table, p, local);

  // netfilter order for a new connection: prerouting (or output) hooks by priority, then
  // input/forward after routing on the translated destination, then postrouting.
  const first: BaseHook['hook'][] = origin === 'node' ? ['output'] : ['prerouting'];
  let states: End[] = [{ kind: 'continue', st: init }];
  for (const hook of first) states = states.flatMap((s) => (s.kind === 'continue' ? ev.runHook(hookOrder(table, hook), s.st) : [s]));
  states = states.flatMap((s) => {
    if (s.kind !== 'continue') return [s];
    const toLocal = local(s.st.daddr);
    // Locally generated traffic to a local address loops back through input.
    const hooks: BaseHook['hook'][] = origin === 'node' ? (toLocal ? ['postrouting', 'input'] : ['postrouting']) : toLocal ? ['input'] : ['forward', 'postrouting'];
    let r: End[] = [s];
    for (const h of hooks) r = r.flatMap((x) => (x.kind === 'continue' ? ev.runHook(hookOrder(table, h), x.st) : [x]));
    return r;
  });

  const steps = states[0]?.st.steps ?? [];
  const owner = states.find((s) => s.st.owner)?.st.owner;
  const servicePort = rs.servicePorts.find((sp) => sp.id === owner && sp.family === family);
  const dead = states.find((s): s is Extract<End, { why: string }> => s.kind !== 'continue');
  let outcome: Outcome;
  if (dead) outcome = { kind: dead.kind, why: dead.why };
  else if (!states.some((s) => s.st.dnat)) outcome = { kind: 'not-proxied', why: 'no rule of nftproxy matched: the packet goes on untranslated' };
  else {
    const seen = new Map<string, Landing>();
    for (const s of states) {
      const key = `${s.st.daddr}/${s.st.dport}`;
      if (!seen.has(key)) seen.set(key, { addr: s.st.daddr, port: s.st.dport, masquerade: s.st.masqWhy.length > 0 && s.st.masqWhy.some((w) => w.startsWith('masquerade')), masqueradeWhy: s.st.masqWhy });
    }
    outcome = { kind: 'dnat', endpoints: [...seen.values()] };
  }
  return { packet: p, origin, outcome, servicePort, steps };
}

class Evaluator {
  private readonly chains: Map<string, Chain>;
  private readonly sets: Map<string, NamedSet>;
  /** chains the kernel does not have, and the shared chain that stands in for each */
  private readonly aliases: ReadonlyMap<string, string>;
  constructor(private readonly t: Table, private readonly p: Packet, private readonly local: (ip: IP) => boolean) {
    this.chains = new Map(t.chains.map((c) => [c.name, c]));
    this.aliases = dnatAliases(t.chains);
    this.sets = new Map(t.sets.map((s) => [s.name, s]));
  }

  runHook(chains: Chain[], st: State): End[] {
    let states: End[] = [{ kind: 'continue', st }];
    for (const c of chains) {
      states = states.flatMap((s) => {
        if (s.kind !== 'continue') return [s];
        // A NAT decision is made once per connection: later nat chains do not see it.
        if (c.base?.type === 'nat' && c.base.hook === 'prerouting' && s.st.dnat) return [s];
        return this.runChain(c, clone(s.st)).map((r): End => ('why' in r ? { kind: r.kind, st: r.st, why: r.why } : { kind: 'continue', st: r.st }));
      });
    }
    return states;
  }

  // Evaluates a chain from rule `from`; 'return' means fell off the end (or return),
  // 'accept' ends the base chain.
  private runChain(c: Chain, st: State, depth = 0, from = 0): R[] {
    if (depth > 32) throw new Error(`chain loop at ${c.name}`);
    if (c.owner && !st.owner) st.owner = c.owner;
    for (let i = from; i < c.rules.length; i++) {
      const rule = c.rules[i]!;
      if (!rule.matches.every((m) => this.match(m, st))) continue;
      const where = `${c.name}${rule.comment ? ` (${rule.comment})` : ''}`;
      const chance = rule.matches.find((m) => m.kind === 'one-in');
      if (chance) {
        // a random rule: followed both ways, taken (1 time in n) and passed over
        const passed = clone(st);
        st.steps.push(`${where}: random choice, this rule 1 time in ${chance.n}, else the next`);
        return [...(this.runRule(rule, st, c, depth, where, i) ?? this.runChain(c, st, depth, i + 1)), ...this.runChain(c, passed, depth, i + 1)];
      }
      const r = this.runRule(rule, st, c, depth, where, i);
      if (r) return r;
    }
    return [{ kind: 'return', st }];
  }

  /** A matched rule's statements; undefined: evaluation goes on at the next rule. */
  private runRule(rule: Rule, st: State, c: Chain, depth: number, where: string, i: number): R[] | undefined {
    for (const s of rule.stmts) {
      const r = this.stmt(s, st, where);
      if (r === 'next') continue;
      if (r === 'break') return undefined;
      if (Array.isArray(r)) return r.flatMap((b) => (b.kind === 'verdict' ? this.follow(b.v, b.st, c, depth, where, i) : [b.r]));
      return this.follow(r, st, c, depth, where, i);
    }
    return undefined;
  }

  private follow(v: Verdict | 'reject', st: State, c: Chain, depth: number, where: string, ruleIndex: number): R[] {
    if (v === 'reject') { st.steps.push(`${where}: reject`); return [{ kind: 'reject', st, why: rejectWhy(where) }]; }
    switch (v.kind) {
      case 'accept': return [{ kind: 'accept', st }];
      case 'return': return [{ kind: 'return', st }];
      case 'drop': st.steps.push(`${where}: drop`); return [{ kind: 'drop', st, why: dropWhy(where) }];
      case 'jump': case 'goto': {
        const alias = this.aliases.get(v.chain);
        st.steps.push(`${where}: ${v.kind} ${v.chain}${alias ? ` (in the kernel: ${alias}, shared)` : ''}`);
        const target = this.chains.get(v.chain);
        if (!target) throw new Error(`missing chain ${v.chain}`);
        const res = this.runChain(target, st, depth + 1);
        // After a jump returns, evaluation resumes at the caller's next rule; a goto
        // never comes back, so its return is the caller's return.
        return v.kind === 'goto' ? res : res.flatMap((r) => (r.kind === 'return' ? this.runChain(c, r.st, depth, ruleIndex + 1) : [r]));
      }
      default: return assertNever(v);
    }
  }

  private match(m: Match, st: State): boolean {
    const field = (f: 'saddr' | 'daddr'): IP => (f === 'saddr' ? this.p.src : st.daddr);
    switch (m.kind) {
      case 'ct-state-new': return true;
      case 'addr': {
        const hit = m.values.some((v) => addrMatches(v, field(m.field)));
        return m.op === '==' ? hit : !hit;
      }
      case 'addr-in-set': {
        const set = this.sets.get(m.set);
        if (!set) throw new Error(`missing set ${m.set}`);
        return set.elements.some((e) => String(e.key[0]) === field(m.field));
      }
      case 'fib-local': return this.local(field(m.field));
      case 'dport': return m.proto === this.p.proto && m.port === st.dport;
      case 'masq-mark': return st.mark === m.set;
      case 'affinity':
        st.steps.push(`session affinity: ${m.set} has no entry for a client's first connection`);
        return false;
      case 'one-in': return true; // runChain follows both ways
      case 'hairpin': {
        if (!st.dnat) return false;
        const set = this.sets.get(m.set);
        return set?.elements.some((e) => e.key[0] === this.p.src && e.key[1] === st.daddr) ?? false;
      }
      default: return assertNever(m);
    }
  }

  private stmt(s: Statement, st: State, where: string): 'next' | 'break' | Verdict | 'reject' | ({ kind: 'verdict'; v: Verdict; st: State } | { kind: 'end'; r: { kind: 'accept'; st: State } })[] {
    switch (s.kind) {
      case 'verdict': return s.verdict;
      case 'reject': return 'reject';
      case 'vmap': {
        const set = this.sets.get(s.map);
        if (!set) throw new Error(`missing map ${s.map}`);
        const key = s.key === 'daddr.l4proto.dport' ? [st.daddr, this.p.proto, st.dport] : [this.p.proto, st.dport];
        const el = set.elements.find((e) => e.key.length === key.length && e.key.every((k, i) => k === key[i]));
        if (!el?.verdict) return 'break';
        st.steps.push(`${where}: ${key.join(' . ')} found in ${s.map}`);
        // A drop/reject from a no-endpoint map enters no service chain: the element names it.
        if (el.owner && !st.owner) st.owner = el.owner;
        return el.verdict;
      }
      case 'mark-masq':
        st.mark = true;
        st.steps.push(`${where}: marked for masquerade`);
        st.masqWhy.push(`marked in ${where}`);
        return 'next';
      case 'masquerade':
        st.mark = false;
        st.masqWhy.push(`masquerade in ${where}`);
        st.steps.push(`${where}: masquerade`);
        return 'next';
      case 'dnat': {
        st.steps.push(`${where}: dnat to one of ${s.backends.map(fmtBackend).join(', ')}`);
        return s.backends.map((b) => {
          const n = clone(st);
          n.daddr = b.addr;
          n.dport = b.port;
          n.dnat = true;
          return { kind: 'end' as const, r: { kind: 'accept' as const, st: n } };
        });
      }
      case 'affinity-update':
        st.steps.push(`${where}: remember the client for this endpoint in ${s.set} (${s.timeoutSeconds}s)`);
        return 'next';
      default: return assertNever(s);
    }
  }
}

const clone = (s: State): State => ({ ...s, masqWhy: [...s.masqWhy], steps: [...s.steps] });
const addrMatches = (v: AddrMatch, ip: IP): boolean => (typeof v === 'string' ? v === ip : cidrContains(v, ip));

function rejectWhy(where: string): string {
  if (where.startsWith('cluster-ips-check')) return 'the ClusterIP does not serve this port/protocol';
  return 'the service has no usable endpoint';
}
function dropWhy(where: string): string {
  if (where.startsWith('firewall-')) return 'the source is not in loadBalancerSourceRanges';
  if (where.startsWith('cluster-ips-check')) return 'the address is in the service CIDR but no service owns it';
  return 'traffic policy Local and no endpoint on this node';
}

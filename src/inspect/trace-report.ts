// Trace events -> one report per packet, in nftproxy's words: the path through the chains,
// the service port, the endpoint the DNAT chose, masquerade or not, the verdict, and whether
// that is what explain predicts for the same tuple. Pure: the kernel reading is the caller's.
//
// How the events are read (apply/netlink/trace.ts):
// - A packet starts with the event of the rule in trace's own table that set nftrace: every
//   later event with its id is that packet's, until the next such start (the kernel may give
//   a later skb the same id), a drop, or a quiet moment (an accepted packet has no last event).
// - The hook of an event is the hook of the base chain the packet last entered (a base chain
//   always reports before any chain it jumps to).
// - The endpoint: the first event of each base chain carries the packet's headers as they are
//   there; once a DNAT happened (nat prerouting or output), the next hook's headers show the
//   new destination. If they changed without an nftproxy NAT rule in the path, conntrack did
//   it: a packet of a flow that was translated before (UDP datagrams after the first).
import type { Family, ServicePortInfo } from '../ir/types.js';
import { fmtBackend } from '../ir/types.js';
import type { Protocol } from '../model/types.js';
import type { TraceEvent } from '../apply/netlink/trace.js';
import { addrText } from '../render/kernel/bytes.js';
import type { Trace } from '../trace/trace.js';

export interface RuleRef {
  readonly chain: string;
  /** nftproxy's own text when the kernel's rule is the one intended, else its expressions */
  readonly text: string;
  readonly intended: boolean;
  /** read from the kernel's expressions, not from the text */
  readonly masquerade: boolean;
  readonly dnat: boolean;
  readonly reject: boolean;
}

export interface TraceContext {
  readonly family: Family;
  /** trace's own table: its events start a packet and are not shown */
  readonly ownTable: string;
  /** nftproxy's table in this family */
  readonly table: string;
  /** the hook of a base chain ("prerouting" …), undefined for a regular chain */
  readonly hookOf: (table: string, chain: string) => string | undefined;
  /** a rule of nftproxy's table by handle */
  readonly ruleOf: (handle: bigint) => RuleRef | undefined;
  /** the service port (id) that owns one of nftproxy's chains */
  readonly ownerOfChain: (chain: string) => string | undefined;
  /** the service port (id) whose dispatch key the packet carries */
  readonly ownerOfTuple: (dst: string, proto: Protocol, dport: number) => string | undefined;
  readonly ports: readonly ServicePortInfo[];
  readonly ifname: (index: number) => string;
  /** explain's answer for the same tuple */
  readonly predicted: Trace;
}

export interface PathStep {
  readonly hook: string;
  readonly table: string;
  readonly chain: string;
  /** the rule (nftproxy's text), "(end of chain)" or "(policy)" */
  readonly rule: string;
  readonly verdict: string;
}

export type KernelVerdict =
  | { readonly kind: 'dnat'; readonly text: string }
  | { readonly kind: 'reject'; readonly text: string }
  | { readonly kind: 'drop'; readonly text: string }
  | { readonly kind: 'accept'; readonly text: string };

export interface PacketReport {
  readonly id: number;
  readonly packet: { readonly proto: string; readonly src: string; readonly sport: number | undefined; readonly dst: string; readonly dport: number | undefined; readonly hook: string; readonly iif: string | undefined };
  readonly path: readonly PathStep[];
  readonly servicePort: { readonly id: string; readonly label: string } | null;
  readonly endpoint: { readonly addr: string; readonly port: number | undefined; readonly seenAt: string; readonly by: 'nftproxy' | 'conntrack' } | null;
  readonly masquerade: boolean;
  readonly verdict: KernelVerdict;
  readonly explain: { readonly text: string; readonly agrees: boolean; readonly why?: string };
  /** the trace ended (timeout, Ctrl-C) or lost events before the packet's path was complete */
  readonly incomplete: boolean;
}

// --- grouping events into packets ---

interface Open { events: TraceEvent[]; last: number; ended: boolean }

export class PacketCollector {
  private readonly open = new Map<number, Open>();
  private readonly done: TraceEvent[][] = [];

  constructor(private readonly ownTable: string, private readonly quietMs: number) {}

  add(e: TraceEvent, now: number): void {
    if (e.table === this.ownTable) {
      // the rule that set nftrace (it has a handle; the chain's end is reported without one)
      if (e.type === 'rule' && e.ruleHandle !== undefined) {
        const prev = this.open.get(e.id);
        if (prev) { this.done.push(prev.events); this.open.delete(e.id); }
        this.open.set(e.id, { events: [e], last: now, ended: false });
        return;
      }
    }
    const p = this.open.get(e.id);
    if (!p) return; // another tracer's packet, or one whose start we did not see
    p.events.push(e);
    p.last = now;
    if ((e.type === 'rule' && e.verdict?.code === DROP) || (e.type === 'policy' && e.policy === DROP)) p.ended = true;
  }

  /** Packets whose path is complete at `now` (all of them with `all`), oldest first. */
  take(now: number, all = false): { events: TraceEvent[]; complete: boolean }[] {
    const out = this.done.splice(0).map((events) => ({ events, complete: true }));
    for (const [id, p] of this.open) {
      if (!p.ended && !all && now - p.last < this.quietMs) continue;
      this.open.delete(id);
      out.push({ events: p.events, complete: p.ended || now - p.last >= this.quietMs });
    }
    return out;
  }
}

const DROP = 0;
const CONTINUE = -1;
const ACCEPT = 1;
const VERDICTS = new Map<number, string>([[0, 'drop'], [1, 'accept'], [2, 'stolen'], [3, 'queue'], [4, 'repeat'], [-1, 'continue'], [-2, 'break'], [-3, 'jump'], [-4, 'goto'], [-5, 'return']]);

function verdictText(e: TraceEvent): string {
  if (e.type === 'policy') return `policy ${VERDICTS.get(e.policy ?? -99) ?? e.policy}`;
  if (e.type === 'return') return 'return';
  const v = e.verdict;
  if (!v) return 'continue';
  const name = VERDICTS.get(v.code) ?? `verdict ${v.code}`;
  return v.chain !== undefined ? `${name} ${v.chain}` : name;
}

interface Headers { proto: number; src: string; dst: string; sport: number | undefined; dport: number | undefined }
const PROTO_NAMES = new Map<number, string>([[6, 'tcp'], [17, 'udp'], [132, 'sctp'], [1, 'icmp'], [58, 'icmpv6']]);

function headersOf(family: Family, net: Buffer | undefined, th: Buffer | undefined): Headers | undefined {
  if (!net) return undefined;
  let h: Omit<Headers, 'sport' | 'dport'>;
  if (family === 'ip') {
    if (net.length < 20) return undefined;
    h = { proto: net[9]!, src: addrText(net.subarray(12, 16)), dst: addrText(net.subarray(16, 20)) };
  } else {
    if (net.length < 40) return undefined;
    h = { proto: net[6]!, src: addrText(net.subarray(8, 24)), dst: addrText(net.subarray(24, 40)) };
  }
  const ports = th && th.length >= 4 && (h.proto === 6 || h.proto === 17 || h.proto === 132);
  return { ...h, sport: ports ? th.readUInt16BE(0) : undefined, dport: ports ? th.readUInt16BE(2) : undefined };
}

// --- one packet ---

export function interpret(events: readonly TraceEvent[], ctx: TraceContext, complete: boolean): PacketReport {
  const first = events[0]!;
  const origin = headersOf(ctx.family, first.network, first.transport);
  const startHook = ctx.hookOf(first.table, first.chain) ?? first.chain;
  const path: PathStep[] = [];
  let hook = startHook;
  let endpoint: PacketReport['endpoint'] = null;
  let masquerade = false, natRule = false;
  let verdict: KernelVerdict | undefined;
  let owner: string | undefined;

  for (const e of events) {
    const base = ctx.hookOf(e.table, e.chain);
    if (base) hook = base;
    const h = headersOf(ctx.family, e.network, e.transport);
    if (h && origin && !endpoint && (h.dst !== origin.dst || h.dport !== origin.dport)) endpoint = { addr: h.dst, port: h.dport, seenAt: hook, by: 'nftproxy' };
    if (e.table === ctx.ownTable) continue;
    // The end of a chain is a rule event without a handle (verdict continue): in a base chain
    // the policy event that follows says what happens; a regular chain returns to its caller.
    const end = e.type === 'rule' && e.ruleHandle === undefined && e.verdict?.code === CONTINUE;
    if (end && base) continue;
    const ours = e.table === ctx.table;
    const rule = ours && e.type === 'rule' && e.ruleHandle !== undefined ? ctx.ruleOf(e.ruleHandle) : undefined;
    const text = end || e.type === 'return' ? '(no rule matched)' : e.type === 'policy' ? '(policy)' : rule ? rule.text : `rule handle ${e.ruleHandle ?? '?'}${ours ? ' (not one nftproxy intends; see nftproxy verify)' : ''}`;
    path.push({ hook, table: e.table, chain: e.chain, rule: text, verdict: end ? 'return' : verdictText(e) });
    if (ours) {
      owner ??= ctx.ownerOfChain(e.chain) ?? (e.verdict?.chain !== undefined ? ctx.ownerOfChain(e.verdict.chain) : undefined);
      if (rule?.masquerade && e.verdict?.code === ACCEPT) masquerade = true;
      if (rule?.dnat && e.verdict?.code === ACCEPT) natRule = true;
    }
    if (!verdict && e.type === 'rule' && e.verdict?.code === DROP) {
      const where = `${ours ? '' : `table ${ctx.family} ${e.table} `}chain ${e.chain}`;
      verdict = rule?.reject ? { kind: 'reject', text: `REJECT (${where})` } : { kind: 'drop', text: `DROP (${where})` };
    }
    if (!verdict && e.type === 'policy' && e.policy === DROP) verdict = { kind: 'drop', text: `DROP (policy of table ${ctx.family} ${e.table} chain ${e.chain})` };
  }
  if (endpoint && !natRule) endpoint = { ...endpoint, by: 'conntrack' };
  if (!verdict) {
    verdict = endpoint
      ? { kind: 'dnat', text: `DNAT to ${fmtBackend({ addr: endpoint.addr, port: endpoint.port ?? 0 })}${endpoint.by === 'conntrack' ? ' (by conntrack: a flow translated before; no nftproxy rule ran)' : ''}` }
      : { kind: 'accept', text: 'accepted untranslated: not proxied' };
  }
  if (origin) owner ??= ctx.ownerOfTuple(origin.dst, (PROTO_NAMES.get(origin.proto) ?? 'tcp') as Protocol, origin.dport ?? 0);
  const label = (id: string): string => {
    const sp = ctx.ports.find((p) => p.id === id && p.family === ctx.family);
    return sp ? `${sp.service} port ${sp.portName || '(unnamed)'} ${sp.port}/${sp.proto.toUpperCase()}` : id;
  };
  return {
    id: first.id,
    packet: {
      proto: origin ? (PROTO_NAMES.get(origin.proto) ?? String(origin.proto)) : '?',
      src: origin?.src ?? '?', sport: origin?.sport, dst: origin?.dst ?? '?', dport: origin?.dport,
      hook: startHook,
      iif: first.iif !== undefined ? ctx.ifname(first.iif) : undefined,
    },
    path,
    servicePort: owner ? { id: owner, label: label(owner) } : null,
    endpoint,
    masquerade,
    verdict,
    explain: compareWithExplain(verdict, endpoint, masquerade, ctx.predicted),
    incomplete: !complete,
  };
}

function predictedText(t: Trace): string {
  const o = t.outcome;
  switch (o.kind) {
    case 'dnat': {
      const m = new Set(o.endpoints.map((e) => e.masquerade));
      return `DNAT to one of ${o.endpoints.map(fmtBackend).join(', ')}, masquerade ${m.size > 1 ? 'depends on the endpoint' : m.has(true) ? 'yes' : 'no'}`;
    }
    case 'drop': return `DROP: ${o.why}`;
    case 'reject': return `REJECT: ${o.why}`;
    case 'not-proxied': return `not proxied: ${o.why}`;
  }
}

function compareWithExplain(v: KernelVerdict, ep: PacketReport['endpoint'], masq: boolean, t: Trace): PacketReport['explain'] {
  const text = predictedText(t);
  const o = t.outcome;
  const kindOf = { dnat: 'dnat', drop: 'drop', reject: 'reject', 'not-proxied': 'accept' } as const;
  if (kindOf[o.kind] !== v.kind) return { text, agrees: false, why: `the kernel's verdict is ${v.text}` };
  if (o.kind !== 'dnat' || !ep) return { text, agrees: true };
  const landing = o.endpoints.find((e) => e.addr === ep.addr && e.port === ep.port);
  if (!landing) return { text, agrees: false, why: `${fmtBackend({ addr: ep.addr, port: ep.port ?? 0 })} is not among the endpoints explain predicts` };
  if (ep.by === 'nftproxy' && landing.masquerade !== masq) return { text, agrees: false, why: `the kernel ${masq ? 'masqueraded' : 'did not masquerade'} the packet` };
  return { text, agrees: true };
}

// --- text ---

export function formatPacket(r: PacketReport, n: number): string {
  const p = r.packet;
  const port = (x: number | undefined): string => (x === undefined ? '' : `:${x}`);
  const addr = (a: string): string => (a.includes(':') && p.sport !== undefined ? `[${a}]` : a);
  const lines = [`packet ${n}: ${p.proto} ${addr(p.src)}${port(p.sport)} -> ${addr(p.dst)}${port(p.dport)} (${p.hook}${p.iif ? `, in on ${p.iif}` : ''}; trace id ${r.id.toString(16).padStart(8, '0')})${r.incomplete ? ' [incomplete: the trace ended before the packet\'s path did]' : ''}`];
  lines.push('  path:');
  let last = '';
  for (const s of r.path) {
    const hook = s.hook === last ? '' : s.hook;
    last = s.hook;
    lines.push(`    ${hook.padEnd(11)} ${s.table === 'nftproxy' ? '' : `[table ${s.table}] `}${s.chain}: ${s.rule}  -> ${s.verdict}`);
  }
  if (r.path.length === 0) lines.push('    (no chain of any other table saw it)');
  lines.push(`  service port: ${r.servicePort?.label ?? '(none)'}`);
  lines.push(`  endpoint:     ${r.endpoint ? `${fmtBackend({ addr: r.endpoint.addr, port: r.endpoint.port ?? 0 })} (the packet's destination at ${r.endpoint.seenAt})` : '(none: not translated)'}`);
  lines.push(`  masquerade:   ${r.masquerade ? 'yes' : 'no'}`);
  lines.push(`  verdict:      ${r.verdict.text}`);
  lines.push(`  explain:      ${r.explain.text} -> ${r.explain.agrees ? 'agrees' : `DIFFERS: ${r.explain.why}`}`);
  return lines.join('\n') + '\n';
}

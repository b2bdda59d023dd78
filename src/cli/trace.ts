// `nftproxy trace`: follow real packets through the kernel. A table of its own marks the
// packets of one tuple with nftrace at the earliest hooks (render/kernel/trace-table.ts); the
// kernel's trace events (apply/netlink/trace.ts) are read back and told in nftproxy's words
// (inspect/trace-report.ts), next to explain's prediction for the same tuple.
//
// The table is removed whatever ends the trace: the count reached, the timeout, Ctrl-C
// (SIGINT), SIGTERM or SIGHUP, an error. Only SIGKILL can leave it; its name carries the pid
// namespace and pid, and the next trace removes tables of dead traces of its pid namespace.
// Order at start: inputs first (a bad flag or no source touches nothing), then the trace
// socket (so no event of the first packet is missed), then the table.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type { Family, Table } from '../ir/types.js';
import { TABLE_NAME } from '../ir/types.js';
import { familyOf } from '../model/ip.js';
import type { Protocol } from '../model/types.js';
import { parsePacket } from '../trace/packet.js';
import { trace } from '../trace/trace.js';
import { NetlinkWriter } from '../apply/netlink/writer.js';
import { NfSocket } from '../apply/netlink/socket.js';
import { listTables, readChains, readElements, readRules, readSet, type KernelRule } from '../apply/netlink/dump.js';
import { canonicalRule, desiredRules } from '../apply/netlink/canonical.js';
import type { KChain } from '../render/kernel/types.js';
import { TraceReader } from '../apply/netlink/trace.js';
import { type KFamily, familyChains, familySets, kernelFamilyOfTable } from '../render/kernel/family.js';
import { addrField, portField, protoField } from '../render/kernel/bytes.js';
import { dispatchKeyOf } from '../render/kernel/ops.js';
import { TRACE_PRIORITY, type TraceMatch, traceTableName, traceTableOps, traceTableOwner, traceTableRemoveOps } from '../render/kernel/trace-table.js';
import { anonReader } from '../inspect/verify.js';
import { ownerOfChainName } from '../inspect/owners.js';
import { PacketCollector, type RuleRef, type TraceContext, formatPacket, interpret } from '../inspect/trace-report.js';
import { parseDuration } from './duration.js';
import { processAlive } from './process-alive.js';
import { type LiveOpts, loadLive } from './live-inputs.js';
import { UsageError } from './load-inputs.js';
import type { Io } from './main.js';

export interface TraceOpts extends LiveOpts {
  src: string;
  dst: string;
  proto: string;
  count: string;
  timeout: string;
  json?: boolean;
}

/** How long an accepted packet's path may pause before it counts as complete: paths take microseconds. */
const QUIET_MS = 200;
const HOOKS = ['prerouting', 'input', 'forward', 'output', 'postrouting'];

function pidNamespace(): string {
  try {
    return /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1] ?? '0';
  } catch {
    return '0';
  }
}

function interfaceNames(): Map<number, string> {
  const out = new Map<number, string>();
  try {
    for (const name of readdirSync('/sys/class/net')) {
      const n = Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim());
      if (Number.isInteger(n)) out.set(n, name);
    }
  } catch { /* names are a nicety */ }
  return out;
}

export async function runTrace(o: TraceOpts, io: Io): Promise<number> {
  // --- inputs: nothing in the kernel is touched before they are all good ---
  const p = parsePacket(o.src, o.dst, o.proto);
  if (!p.ok) throw new UsageError(p.error);
  if (p.value.proto === 'sctp') throw new UsageError('--proto sctp: trace follows tcp and udp');
  const count = Number(o.count);
  if (!Number.isInteger(count) || count < 1) throw new UsageError(`--count ${o.count} is not a positive whole number`);
  const timeoutMs = /^\d+$/.test(o.timeout.trim()) ? Number(o.timeout) * 1000 : parseDuration(o.timeout);
  if (timeoutMs === undefined || timeoutMs <= 0) throw new UsageError(`--timeout ${o.timeout} is not a duration (e.g. 30s, 2m; a bare number is seconds)`);
  const live = await loadLive(o, (l) => io.err(`${l}\n`));
  const packet = p.value;
  const family: Family = familyOf(packet.dst) === 'ipv4' ? 'ip' : 'ip6';
  const predicted = trace(live.ruleset, live.config.nodeIPs, packet);
  const table = live.ruleset.tables.find((t) => t.family === family);
  const intended = table ? kernelFamilyOfTable(table) : undefined;
  const match: TraceMatch = { family, src: packet.src, dst: packet.dst, proto: packet.proto as Exclude<Protocol, 'sctp'>, dport: packet.dport };

  // --- the kernel ---
  let reader: TraceReader, query: NfSocket;
  try {
    reader = TraceReader.open();
  } catch (e) {
    io.err(`nftproxy trace: ${(e as Error).message}\n`);
    return 3;
  }
  try {
    query = NfSocket.open();
  } catch (e) {
    reader.close();
    io.err(`nftproxy trace: ${(e as Error).message}\n`);
    return 3;
  }
  const writer = new NetlinkWriter();
  const pidns = pidNamespace();
  const name = traceTableName(pidns, process.pid, randomBytes(4).toString('hex'));
  let stopped: string | undefined;
  const onSignal = (sig: NodeJS.Signals): void => { stopped = sig; };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, onSignal);
  let attempted = false;
  try {
    for (const t of listTables(query)) {
      const owner = traceTableOwner(t.name);
      if (!owner || owner.pidns !== pidns || processAlive(owner.pid)) continue;
      const r = await writer.commit(traceTableRemoveOps(t.family, t.name));
      io.err(r.ok ? `removed table ${t.family} ${t.name}, left by a trace that was killed\n` : `could not remove table ${t.family} ${t.name} left by a killed trace: ${r.error.message}\n`);
    }
    const ctx = traceContext(family, name, query, intended, live.ruleset, live.config.nodeIPs.map(String), predicted);
    if (!intended) io.err(`note: nftproxy intends no ${family} table here; the path shows whatever else the packet meets\n`);
    else if (!listTables(query).some((t) => t.family === family && t.name === TABLE_NAME)) io.err(`note: there is no table ${family} ${TABLE_NAME} in this network namespace: nftproxy's rules are not loaded here\n`);
    const made = await writer.commit(traceTableOps(name, match));
    // refused: the transaction changed nothing. A socket error leaves it unknown: remove to be sure.
    attempted = made.ok || made.error.code === 'NETLINK_IO';
    if (!made.ok) {
      io.err(`nftproxy trace: cannot add the trace table: ${made.error.message}\n`);
      return 3;
    }
    if (stopped) return exitOf(stopped);
    io.err(`tracing ${packet.proto} ${packet.src} -> ${o.dst} (table ${family} ${name}, hooks prerouting and output at priority ${TRACE_PRIORITY}) for ${count} packet${count === 1 ? '' : 's'}, at most ${Math.round(timeoutMs / 100) / 10}s; Ctrl-C stops\n`);

    const collector = new PacketCollector(name, QUIET_MS);
    const deadline = Date.now() + timeoutMs;
    let n = 0, lostSaid = false;
    const emit = (events: Parameters<typeof interpret>[0], complete: boolean): void => {
      const r = interpret(events, ctx, complete);
      n++;
      io.out(o.json ? `${JSON.stringify(r)}\n` : `${n > 1 ? '\n' : ''}${formatPacket(r, n)}`);
    };
    while (n < count && !stopped) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      const { events, lost } = await reader.read(Math.min(100, left));
      if (lost && !lostSaid) { lostSaid = true; io.err('warning: the kernel dropped trace events (the socket queue overflowed): some paths are incomplete\n'); }
      const now = Date.now();
      for (const e of events) collector.add(e, now);
      for (const pk of collector.take(now)) { if (n < count) emit(pk.events, pk.complete); }
    }
    if (n < count) for (const pk of collector.take(Date.now(), true)) { if (n < count) emit(pk.events, pk.complete); }
    if (stopped) { io.err(`stopped by ${stopped} after ${n} of ${count} packet${count === 1 ? '' : 's'}\n`); return exitOf(stopped); }
    if (n < count) { io.err(`timed out after ${Math.round(timeoutMs / 100) / 10}s with ${n} of ${count} packet${count === 1 ? '' : 's'}${n === 0 ? ': no packet of that tuple came (is this the node that sees it? send one while the trace runs)' : ''}\n`); return 1; }
    return 0;
  } catch (e) {
    // the kernel failed us mid-way (a socket error): the table still goes, below
    io.err(`nftproxy trace: ${(e as Error).message}\n`);
    return 3;
  } finally {
    if (attempted) {
      const r = await writer.commit(traceTableRemoveOps(family, name));
      if (!r.ok) io.err(`nftproxy trace: could not remove its table: ${r.error.message}; remove it with: nft delete table ${family} ${name}\n`);
    }
    for (const s of signals) process.off(s, onSignal);
    reader.close();
    query.close();
    await writer.close();
  }
}

const exitOf = (sig: string): number => (sig === 'SIGINT' ? 130 : sig === 'SIGTERM' ? 143 : 129);

/** Names for what the events point at: hooks of base chains, nftproxy's rules by handle, owners. */
function traceContext(family: Family, ownTable: string, query: NfSocket, intended: KFamily | undefined, ruleset: { servicePorts: TraceContext['ports']; tables: readonly Table[] }, nodeIPs: readonly string[], predicted: TraceContext['predicted']): TraceContext {
  const hooks = new Map<string, string>();
  const readHooks = (): void => {
    for (const c of readChains(query, family)) if (c.hook) hooks.set(`${c.table}\u0000${c.name}`, HOOKS[c.hook.hooknum] ?? `hook ${c.hook.hooknum}`);
  };
  readHooks();
  let hooksReadAt = Date.now();

  // Rules are named lazily, when an event points at one: a 10k-service table has 15,000 rules
  // and hundreds of anonymous sets, of which a packet meets a dozen.
  const chainOwner = new Map<string, string>();
  const chains = new Map<string, KChain>();
  if (intended) {
    for (const c of familyChains(intended)) {
      if (c.owner) chainOwner.set(c.name, c.owner);
      if (!chains.has(c.name)) chains.set(c.name, c);
    }
  }
  const intendedCanon = new Map<string, string[]>();
  const intendedOf = (chain: string): string[] => {
    let c = intendedCanon.get(chain);
    if (!c) {
      const kc = chains.get(chain);
      c = kc ? (desiredRules(family, [kc]).get(chain) ?? []).map((r) => r.join(' ')) : [];
      intendedCanon.set(chain, c);
    }
    return c;
  };
  const anon = anonReader((set) => {
    const decl = readSet(query, family, TABLE_NAME, set);
    return decl ? { decl, elements: readElements(query, family, TABLE_NAME, set) } : undefined;
  });
  const kernelRules = new Map<bigint, { rule: KernelRule; index: number }>();
  const readKernelRules = (): void => {
    let all: KernelRule[];
    try { all = readRules(query, family, TABLE_NAME); } catch { return; }
    const index = new Map<string, number>();
    for (const k of all) {
      const i = index.get(k.chain) ?? 0;
      index.set(k.chain, i + 1);
      kernelRules.set(k.handle, { rule: k, index: i });
    }
  };
  readKernelRules();
  let rulesReadAt = Date.now();
  const refs = new Map<bigint, RuleRef>();
  const refOf = (handle: bigint): RuleRef | undefined => {
    const hit = refs.get(handle);
    if (hit) return hit;
    const k = kernelRules.get(handle);
    if (!k) return undefined;
    const canon = canonicalRule(k.rule.exprs, anon);
    const joined = canon.join(' ');
    const want = intendedOf(k.rule.chain);
    const at = want[k.index] === joined ? k.index : want.indexOf(joined);
    const ref: RuleRef = {
      chain: k.rule.chain, text: at >= 0 ? chains.get(k.rule.chain)!.rules[at]!.text : joined, intended: at >= 0,
      masquerade: canon.some((c) => c.startsWith('masq(')), dnat: canon.some((c) => c.startsWith('nat(')), reject: canon.some((c) => c.startsWith('reject(')),
    };
    refs.set(handle, ref);
    return ref;
  };

  // dispatch keys (daddr . l4proto . dport, l4proto . dport) -> the service port they belong to
  const byVip = new Map<string, string>(), byNodePort = new Map<string, string>();
  const nodePortIPs = new Set<string>(nodeIPs);
  if (intended) {
    for (const { decl, elements } of familySets(intended)) {
      for (const e of elements ?? []) {
        if (decl.name === 'nodeport-ips') nodePortIPs.add(e.key);
        if (!e.owner) continue;
        const which = dispatchKeyOf(decl.shape);
        if (which === 'vip') byVip.set(e.key, e.owner);
        if (which === 'nodeport') byNodePort.set(e.key, e.owner);
      }
    }
  }
  const ifnames = interfaceNames();
  const ids = new Set(ruleset.servicePorts.filter((s) => s.family === family).map((s) => s.id));
  return {
    family, ownTable, table: TABLE_NAME,
    hookOf: (table, chain) => {
      if (table === ownTable) return chain;
      const k = `${table}\u0000${chain}`;
      // a base chain made after the start: read again, at most once a second
      if (!hooks.has(k) && Date.now() - hooksReadAt > 1000) { hooksReadAt = Date.now(); try { readHooks(); } catch { /* keep what we have */ } }
      return hooks.get(k);
    },
    ruleOf: (handle) => {
      // a rule a sync added after the start: read them again, at most every 200 ms
      if (!kernelRules.has(handle) && Date.now() - rulesReadAt > 200) { rulesReadAt = Date.now(); readKernelRules(); }
      return refOf(handle);
    },
    ownerOfChain: (chain) => chainOwner.get(chain) ?? ownerOfChainName(chain, ids),
    ownerOfTuple: (dst, proto, dport) => {
      if (proto !== 'tcp' && proto !== 'udp' && proto !== 'sctp') return undefined;
      const vip = byVip.get(addrField(dst) + protoField(proto) + portField(dport));
      if (vip) return vip;
      return nodePortIPs.has(addrField(dst)) || nodePortIPs.has(dst) ? byNodePort.get(protoField(proto) + portField(dport)) : undefined;
    },
    ports: ruleset.servicePorts,
    ifname: (i) => ifnames.get(i) ?? `if${i}`,
    predicted,
  };
}

// `nftproxy trace`'s own table: two base chains at the earliest hooks a connection's first
// packet meets (prerouting for packets from elsewhere, output for the node's own), each with
// one rule that matches the tuple asked about and sets `meta nftrace`. The kernel then reports
// every chain and rule that packet goes through, in every table (NFNLGRP_NFTRACE).
//
// A table of its own, never a chain in nftproxy's table: the daemon replaces its table whole
// (full syncs, drift repair), which would drop a foreign chain mid-trace, and the drift monitor
// would count it as drift. The name carries the pid, so a table left by a killed trace can be
// recognised and removed by the next trace (traceTableOwner).
//
// Priority -500: before defragmentation (-400), raw (-300), conntrack (-200) and every chain
// of nftproxy's (-110 the earliest), so the trace starts before anything has touched the packet.
import type { Family } from '../../ir/types.js';
import type { Protocol } from '../../model/types.js';
import { PROTO_NUMBER, addrBytes, addrLen } from './bytes.js';
import type { Op } from './ops.js';
import type { Expr, KRule } from './types.js';

export const TRACE_PRIORITY = -500;

/**
 * nftproxy-trace-<pid namespace inode>-<pid>-<random>: whose it is, so a trace can tell a table
 * a killed trace left (its process gone) from one a running trace owns. The pid namespace, so a
 * trace on the host and one in a pod never judge each other's pids.
 */
export const traceTableName = (pidns: string, pid: number, random: string): string => `nftproxy-trace-${pidns}-${pid}-${random}`;
export function traceTableOwner(name: string): { pidns: string; pid: number } | undefined {
  const m = /^nftproxy-trace-(\d+)-(\d+)-[0-9a-f]+$/.exec(name);
  return m ? { pidns: m[1]!, pid: Number(m[2]) } : undefined;
}

export interface TraceMatch {
  readonly family: Family;
  readonly src: string;
  readonly dst: string;
  readonly proto: Exclude<Protocol, 'sctp'>;
  readonly dport: number;
}

const be16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const TCP_FLAGS_OFFSET = 13;
const TCP_SYN = 0x02, TCP_ACK = 0x10;

/**
 * The rule: `ip saddr S ip daddr D meta l4proto P th dport N [tcp flags & (syn | ack) == syn]
 * meta nftrace set 1`. For TCP only the first packet of a connection (a SYN without ACK):
 * it is the one that meets nftproxy's NAT chains; the rest of the connection follows conntrack.
 * UDP has no such mark at this hook (conntrack has not run yet), so every datagram is traced.
 */
function traceRule(m: TraceMatch): KRule {
  const k = m.family === 'ip' ? 'ip' : 'ip6';
  const alen = addrLen(m.family);
  const saddrAt = m.family === 'ip' ? 12 : 8, daddrAt = m.family === 'ip' ? 16 : 24;
  const exprs: Expr[] = [
    { op: 'payload', base: 'network', offset: saddrAt, len: alen, dreg: 1 }, { op: 'cmp', reg: 1, cmp: 'eq', data: addrBytes(m.src) },
    { op: 'payload', base: 'network', offset: daddrAt, len: alen, dreg: 1 }, { op: 'cmp', reg: 1, cmp: 'eq', data: addrBytes(m.dst) },
    { op: 'meta', key: 'l4proto', dreg: 1 }, { op: 'cmp', reg: 1, cmp: 'eq', data: Buffer.from([PROTO_NUMBER[m.proto]]) },
    { op: 'payload', base: 'transport', offset: 2, len: 2, dreg: 1 }, { op: 'cmp', reg: 1, cmp: 'eq', data: be16(m.dport) },
  ];
  if (m.proto === 'tcp') {
    exprs.push(
      { op: 'payload', base: 'transport', offset: TCP_FLAGS_OFFSET, len: 1, dreg: 1 },
      { op: 'bitwise', reg: 1, mask: Buffer.from([TCP_SYN | TCP_ACK]), xor: Buffer.from([0]) },
      { op: 'cmp', reg: 1, cmp: 'eq', data: Buffer.from([TCP_SYN]) },
    );
  }
  exprs.push({ op: 'immediate', dreg: 1, data: Buffer.from([1]) }, { op: 'meta-set', key: 'nftrace', sreg: 1 });
  const text = `${k} saddr ${m.src} ${k} daddr ${m.dst} meta l4proto ${m.proto} th dport ${m.dport}${m.proto === 'tcp' ? ' tcp flags & (syn | ack) == syn' : ''} meta nftrace set 1`;
  return { text, exprs };
}

/** One transaction that creates the table, its two chains and their rules. */
export function traceTableOps(name: string, m: TraceMatch): Op[] {
  const at = { family: m.family, table: name };
  const rule = traceRule(m);
  return [
    { ...at, op: 'add-table', comment: 'nftproxy trace: removed when the trace ends' },
    { ...at, op: 'add-chain', chain: { name: 'prerouting', hook: { type: 'filter', hook: 'prerouting', priority: TRACE_PRIORITY } } },
    { ...at, op: 'add-chain', chain: { name: 'output', hook: { type: 'filter', hook: 'output', priority: TRACE_PRIORITY } } },
    { ...at, op: 'add-rule', chain: 'prerouting', rule },
    { ...at, op: 'add-rule', chain: 'output', rule },
  ];
}

/** Removes the table whether or not it exists (add, then delete, in one transaction). */
export function traceTableRemoveOps(family: Family, name: string): Op[] {
  return [{ family, table: name, op: 'add-table' }, { family, table: name, op: 'delete-table' }];
}

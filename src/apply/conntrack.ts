// UDP conntrack hygiene, the side-effect edge: list candidate flows, judge them with the pure
// matcher, delete the stale ones one by one. Over netlink (./netlink/conntrack.ts): no
// process per cleanup, no text to parse, and each delete names the kernel's id of the flow
// that was judged, so a flow that came back with the same tuple meanwhile is left alone.
//
// The table is injected so the daemon decides which network namespace it works in (its own,
// normally; a test's node namespace in the lab).
import type { Family } from '../ir/types.js';
import { type ConntrackFilter, isStale } from './conntrack-plan.js';
import { type FlowQuery, type ListedFlow, deleteFlow, flowText, listFlows } from './netlink/conntrack.js';
import { NfSocket } from './netlink/socket.js';

/** The kernel's conntrack table, as far as cleanup uses it. Errors throw. */
export interface ConntrackTable {
  /** flows of the query's family and protocol; narrowed to its destination and port when given */
  list(q: FlowQuery): readonly ListedFlow[];
  /** deletes exactly this flow: true, or false when it is gone already */
  delete(f: ListedFlow): boolean;
}

/** The conntrack table of this process's network namespace (or of `netns`, a path such as /run/netns/X), over one netlink socket opened on first use. */
export class NetlinkConntrack implements ConntrackTable {
  private sock: NfSocket | undefined;

  constructor(private readonly netns?: string) {}

  list(q: FlowQuery): readonly ListedFlow[] {
    return listFlows(this.socket(), q);
  }

  delete(f: ListedFlow): boolean {
    return deleteFlow(this.socket(), f);
  }

  close(): void {
    this.sock?.close();
    this.sock = undefined;
  }

  private socket(): NfSocket {
    if (this.sock && !this.sock.isClosed) return this.sock;
    return (this.sock = NfSocket.open(this.netns ? { netns: this.netns } : {}));
  }
}

export interface CleanupResult {
  readonly deleted: number;
  readonly errors: string[];
}

const label = (f: ConntrackFilter): string =>
  `${f.service}:${f.portName} ${f.kind === 'vip' ? `${f.origDst}:${f.origDport}` : `nodePort ${f.origDport}`}`;

const queryOf = (f: ConntrackFilter): FlowQuery =>
  f.kind === 'vip' ? { family: f.family, proto: f.proto, origDst: f.origDst, origDport: f.origDport } : { family: f.family, proto: f.proto, origDport: f.origDport };

const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/**
 * Delete the stale flows each filter describes. Never throws for kernel failures: they are
 * collected in `errors` and the remaining filters still run.
 */
export function cleanConntrack(filters: readonly ConntrackFilter[], table: ConntrackTable, bulkAbove = BULK_THRESHOLD): CleanupResult {
  let deleted = 0;
  const errors: string[] = [];
  // Few filters: let the kernel narrow each listing to the filter's destination. Many (a
  // start, a big change): one listing per family, matched in memory.
  const listings = new Map<Family, { ok: true; flows: readonly ListedFlow[] } | { ok: false; error: string }>();
  const flowsFor = (filter: ConntrackFilter): readonly ListedFlow[] | string => {
    if (filters.length <= bulkAbove) {
      try {
        return table.list(queryOf(filter)).filter((f) => isStale(filter, f));
      } catch (e) {
        return `listing conntrack for ${label(filter)}: ${messageOf(e)}`;
      }
    }
    let l = listings.get(filter.family);
    if (!l) {
      try {
        l = { ok: true, flows: table.list({ family: filter.family, proto: 'udp' }) };
      } catch (e) {
        l = { ok: false, error: `listing ${filter.family} UDP conntrack: ${messageOf(e)}` };
      }
      listings.set(filter.family, l);
    }
    return l.ok ? l.flows.filter((f) => isStale(filter, f)) : l.error;
  };
  const done = new Set<string>(); // a flow two filters condemn is deleted once
  for (const filter of filters) {
    const stale = flowsFor(filter);
    if (typeof stale === 'string') {
      if (!errors.includes(stale)) errors.push(stale);
      continue;
    }
    for (const flow of stale) {
      const key = `${flow.zone} ${flow.id} ${flowText(flow)}`;
      if (done.has(key)) continue;
      done.add(key);
      try {
        if (table.delete(flow)) deleted++;
      } catch (e) {
        errors.push(`deleting ${flowText(flow)} (${label(filter)}): ${messageOf(e)}`);
      }
    }
  }
  return { deleted, errors };
}

/** Above this many filters, list each family once instead of once per filter. */
const BULK_THRESHOLD = 8;

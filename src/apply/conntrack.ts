// UDP conntrack hygiene, the side-effect edge: list candidate flows with the conntrack
// tool, judge them with the pure matcher, delete the stale ones one by one.
//
// Everything runs through an injected `run` so the daemon decides where the tool runs; the
// default runs it in this process's own network namespace, with an argument array (never a
// shell string). Addresses reach the command line only as validated IPs (branded types from
// the model, or re-parsed from the tool's own listing), so no argument can turn into an option.
//
// Observed with conntrack v1.4.7 (kernel 6.18):
//  -L: exit 0 even when nothing matches; flows on stdout, "N flow entries have been shown." on stderr.
//  -D: exit 0 and "N flow entries have been deleted." on stderr (the deleted flows on stdout);
//      nothing matched: exit 1 and "0 flow entries have been deleted." -- not a failure here,
//      the flow may simply have expired or gone with an earlier delete.
//  usage errors (bad option, bad address, family mismatch): exit 2.
//  -D without --zone deletes the matching flow in every zone. We leave zones out on purpose:
//      a same-tuple twin in another zone with the same reply source is stale by the same rule.
import { execa } from 'execa';
import type { Family } from '../ir/types.js';
import { type ConntrackFilter, type Flow, isStale, parseFlows } from './conntrack-plan.js';

export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}
export type RunConntrack = (args: string[]) => Promise<RunResult>;

export interface CleanupResult {
  readonly deleted: number;
  readonly errors: string[];
}

/** Generous: a big table walk takes a while, but a hung tool must not stall syncing forever. */
const TIMEOUT_MS = 60_000;

export const runConntrackHere: RunConntrack = async (args) => {
  const r = await execa('conntrack', args, { reject: false, timeout: TIMEOUT_MS, stdin: 'ignore' });
  // exitCode is undefined when the tool could not start or was killed: say why in stderr.
  return { stdout: String(r.stdout ?? ''), stderr: r.exitCode === undefined ? String(r.shortMessage ?? 'conntrack did not run') : String(r.stderr ?? ''), exitCode: r.exitCode ?? -1 };
};

const toolFamily = (f: Family): string => (f === 'ip' ? 'ipv4' : 'ipv6');

/** Server-side narrowing; the pure matcher re-checks everything regardless. */
export function listArgs(filter: ConntrackFilter): string[] {
  const args = ['-L', '-p', filter.proto, '-f', toolFamily(filter.family)];
  if (filter.kind === 'vip') args.push('--orig-dst', filter.origDst);
  args.push('--orig-port-dst', String(filter.origDport));
  return args;
}

/** Exactly this flow: full original tuple plus the reply source that made it stale. */
export function deleteArgs(flow: Flow): string[] {
  return [
    '-D', '-p', flow.proto, '-f', toolFamily(flow.family),
    '--orig-src', flow.orig.src, '--orig-dst', flow.orig.dst,
    '--orig-port-src', String(flow.orig.sport), '--orig-port-dst', String(flow.orig.dport),
    '--reply-src', flow.reply.src,
  ];
}

const deletedCount = (stderr: string): number | undefined => {
  const m = /(\d+) flow entries have been deleted/.exec(stderr);
  return m ? Number(m[1]) : undefined;
};

const label = (f: ConntrackFilter): string =>
  `${f.service}:${f.portName} ${f.kind === 'vip' ? `${f.origDst}:${f.origDport}` : `nodePort ${f.origDport}`}`;

const firstLine = (s: string): string => s.trim().split('\n')[0] ?? '';

/**
 * Delete the stale flows each filter describes. Never throws for tool failures: they are
 * collected in `errors` and the remaining filters still run.
 */
export async function cleanConntrack(filters: readonly ConntrackFilter[], run: RunConntrack = runConntrackHere, bulkAbove = BULK_THRESHOLD): Promise<CleanupResult> {
  let deleted = 0;
  const errors: string[] = [];
  // Few filters: let the tool narrow each listing. Many (a start, a big change): one listing
  // per family, matched in memory; one process instead of one per VIP.
  const listings = new Map<string, { ok: true; flows: Flow[] } | { ok: false; error: string }>();
  const flowsFor = async (filter: ConntrackFilter): Promise<Flow[] | string> => {
    if (filters.length <= bulkAbove) {
      const listed = await run(listArgs(filter));
      return listed.exitCode === 0 ? parseFlows(listed.stdout).filter((f) => isStale(filter, f)) : `conntrack ${listArgs(filter).join(' ')} (${label(filter)}): exit ${listed.exitCode}: ${firstLine(listed.stderr)}`;
    }
    let l = listings.get(filter.family);
    if (!l) {
      const args = ['-L', '-p', 'udp', '-f', toolFamily(filter.family)];
      const listed = await run(args);
      l = listed.exitCode === 0 ? { ok: true, flows: parseFlows(listed.stdout) } : { ok: false, error: `conntrack ${args.join(' ')}: exit ${listed.exitCode}: ${firstLine(listed.stderr)}` };
      listings.set(filter.family, l);
    }
    return l.ok ? l.flows.filter((f) => isStale(filter, f)) : l.error;
  };
  for (const filter of filters) {
    const stale = await flowsFor(filter);
    if (typeof stale === 'string') {
      if (!errors.includes(stale)) errors.push(stale);
      continue;
    }
    for (const flow of stale) {
      const args = deleteArgs(flow);
      const r = await run(args);
      const n = deletedCount(r.stderr);
      if (r.exitCode === 0) deleted += n ?? 1;
      else if (r.exitCode === 1 && n === 0) continue; // already gone (expired, or deleted with an earlier twin)
      else errors.push(`conntrack ${args.join(' ')} (${label(filter)}): exit ${r.exitCode}: ${firstLine(r.stderr)}`);
    }
  }
  return { deleted, errors };
}

/** Above this many filters, list each family once instead of once per filter. */
const BULK_THRESHOLD = 8;

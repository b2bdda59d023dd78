// What the datapath suites share to run table rows through a lab (test/lab/): where each
// address of a section lives, a row's expected outcome in the notation the kernel's result is
// read in, and measuring in the background (beforeAll starts it, each row's `it` awaits its
// own result, so a row is reported as soon as its section got to it).
import { type LabSpec, parseDst } from '../lab/lab.js';
import type { Observed } from '../lab/outcome.js';
import type { Env, Expect } from './builders.js';

export const unique = <T>(xs: Iterable<T>): T[] => [...new Set(xs)];
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function endpointAddresses(objects: readonly unknown[]): string[] {
  return objects.flatMap((o) => {
    const obj = o as { kind?: string; endpoints?: { addresses: string[] }[] };
    return obj.kind === 'EndpointSlice' ? (obj.endpoints ?? []).flatMap((e) => e.addresses) : [];
  });
}

/**
 * The lab for some cases: a pod for every endpoint of every case (not only those a row
 * expects, so a packet DNATed to a terminating or remote-only endpoint is seen), the node IPs
 * on the node, every other source in a client namespace, apart from sources that send to their
 * own address (reference rows 28/29), which need a namespace of their own.
 */
export function labSpecFor(
  cases: readonly { env: Env; objects: readonly unknown[]; rows: readonly { src: string; dst: string }[] }[],
  ports: readonly number[],
  moreSources: readonly string[] = [],
): LabSpec {
  const rows = cases.flatMap((c) => c.rows);
  const nodeIPs = unique(cases.flatMap((c) => c.env.nodeIPs ?? []));
  const pods = unique(cases.flatMap((c) => endpointAddresses(c.objects)));
  const sources = unique([...rows.map((r) => r.src), ...moreSources]).filter((s) => !nodeIPs.includes(s) && !pods.includes(s));
  const selfAddressed = sources.filter((s) => rows.some((r) => r.src === s && parseDst(r.dst).host === s));
  return { nodeIPs, pods, clients: sources.filter((s) => !selfAddressed.includes(s)), selfAddressed, ports };
}

/** The table row in the notation both the kernel and the tracer are read in. */
export function tableOutcome(row: { want: Expect; masq?: boolean }): Observed {
  const got = Array.isArray(row.want) ? [...row.want].sort() : row.want;
  // A packet nftproxy leaves alone ("") is not masqueraded: the table says "no".
  return { got, masq: row.masq ?? (row.want === '' ? false : undefined) };
}

export const fmtWant = (want: Expect): string => (Array.isArray(want) ? want.join(', ') : want === '' ? '"" (not proxied)' : want);

/** A result measured in the background; the `it` waiting for it reports a failure. */
export interface Pending<T> { promise: Promise<T>; resolve: (o: T) => void; reject: (e: unknown) => void }
export function pending<T>(): Pending<T> {
  let resolve!: (o: T) => void, reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej; });
  promise.catch(() => {}); // the row's `it` reports it; never an unhandled rejection
  return { promise, resolve, reject };
}

/** Runs `fn` on every item, at most `n` at a time. */
export async function pool<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

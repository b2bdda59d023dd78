// ../shared/reference-scenarios.md with real packets: every row's flow is sent as real TCP or
// UDP connections through a real kernel holding the compiled table (test/lab/), and the
// outcome must equal the table row AND explain's tracer on the same ruleset.
//
// Each section gets its own lab (namespaces, veths, agents); the sections run concurrently,
// the cases of a section one after the other (reload the ruleset, forget conntrack), the rows
// of a case concurrently. Measuring starts in beforeAll; each row's `it` waits for its own
// result, so a row is reported as soon as its section got to it.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, type LabSpec, parseDst } from '../lab/lab.js';
import { canUseKernel, KERNEL_SKIP_REASON, liveNetns, netnsOfThisProcess } from '../lab/netns.js';
import type { Observed } from '../lab/outcome.js';
import { compileObjects, probe } from '../support/builders.js';
import { type Case, type Row, type Section, SECTIONS } from '../support/reference-rows.js';

// Ports any row connects to or any DNAT may choose; every pod and the node listen on all of
// them (TCP and UDP), so a packet sent to the wrong place is answered, not silently lost.
const PORTS = [53, 80, 443, 3001, 5353, 8443];
// Tries per row: with 3 endpoints, the chance that one of them is never chosen is
// 3 * (2/3)^40 < 1e-6. All tries of a row run at once, so a dropped row costs one TIMEOUT_MS.
// Why 1.5 s: over veths the ICMP error for a SYN arrives while connect() still holds the
// socket lock (TcpExtLockDroppedIcmps counts every one). Measured here: IPv4 TCP still fails
// the connect within milliseconds, IPv6 TCP only records a soft error and reports
// ECONNREFUSED / EACCES after the SYN is retransmitted, 1 s later. The timeout must outlast
// that retransmit, or an IPv6 reject would read as a drop.
const TRIES = 40;
const TIMEOUT_MS = 1500;

const SCTP_SKIP = existsSync('/proc/net/sctp')
  ? 'the lab agent has no SCTP client: Node has no SCTP sockets'
  : 'kernel has no SCTP module';

// ---- where every address of a section lives -----------------------------------------------

const unique = <T>(xs: Iterable<T>): T[] => [...new Set(xs)];

function endpointAddresses(objects: unknown[]): string[] {
  return objects.flatMap((o) => {
    const obj = o as { kind?: string; endpoints?: { addresses: string[] }[] };
    return obj.kind === 'EndpointSlice' ? (obj.endpoints ?? []).flatMap((e) => e.addresses) : [];
  });
}

/**
 * The lab for a section: a pod for every endpoint of every case (not only those a row
 * expects, so a packet DNATed to a terminating or remote-only endpoint is seen), the node
 * IPs on the node, every other source in a client namespace, apart from sources that send
 * to their own address (rows 28/29), which need a namespace of their own.
 */
function labSpec(section: Section): LabSpec {
  const rows = section.cases.flatMap((c) => c.rows);
  const nodeIPs = unique(section.cases.flatMap((c) => c.env.nodeIPs ?? []));
  const pods = unique(section.cases.flatMap((c) => endpointAddresses(c.objects)));
  const sources = unique(rows.map((r) => r.src)).filter((s) => !nodeIPs.includes(s) && !pods.includes(s));
  const selfAddressed = sources.filter((s) => rows.some((r) => r.src === s && parseDst(r.dst).host === s));
  return { nodeIPs, pods, clients: sources.filter((s) => !selfAddressed.includes(s)), selfAddressed, ports: PORTS };
}

// ---- kernel results, measured in the background -------------------------------------------

interface Pending { promise: Promise<Observed>; resolve: (o: Observed) => void; reject: (e: unknown) => void }
function pending(): Pending {
  let resolve!: (o: Observed) => void, reject!: (e: unknown) => void;
  const promise = new Promise<Observed>((res, rej) => { resolve = res; reject = rej; });
  promise.catch(() => {}); // the row's `it` reports it; never an unhandled rejection
  return { promise, resolve, reject };
}

const isSctp = (row: Row): boolean => row.proto === 'sctp';
const kernel = new Map<Row, Pending>(SECTIONS.flatMap((s) => s.cases.flatMap((c) => c.rows.filter((r) => !isSctp(r)).map((r) => [r, pending()] as const))));

async function runSection(section: Section): Promise<void> {
  const rows = section.cases.flatMap((c) => c.rows.filter((r) => !isSctp(r)));
  try {
    const lab = await Lab.create(section.id.replace('.', ''), labSpec(section));
    try {
      for (const c of section.cases) {
        await lab.load(compileObjects(c.objects, c.env).ruleset);
        await lab.forgetConnections();
        await Promise.all(c.rows.filter((r) => !isSctp(r)).map(async (row) => {
          const proto = row.proto === 'udp' ? 'udp' : 'tcp';
          kernel.get(row)!.resolve(await lab.probe({ src: row.src, dst: row.dst, proto, count: TRIES, timeoutMs: TIMEOUT_MS }));
        }));
      }
    } finally {
      await lab.destroy();
    }
  } catch (e) {
    // Rows already resolved keep their result; the rest report why they have none.
    for (const row of rows) kernel.get(row)!.reject(e);
  }
}

// ---- the rows --------------------------------------------------------------------------------

/** The table row in the notation both the kernel and the tracer are read in. */
function tableOutcome(row: Row): Observed {
  const got = Array.isArray(row.want) ? [...row.want].sort() : row.want;
  // A packet nftproxy leaves alone ("" ) is not masqueraded: the table says "no".
  return { got, masq: row.masq ?? (row.want === '' ? false : undefined) };
}

function tracerOutcome(c: Case, row: Row): Observed {
  const { ruleset, cfg } = compileObjects(c.objects, c.env);
  const r = probe(ruleset, cfg, row.src, row.dst, row.proto ?? 'tcp');
  // The tracer names no masquerade for a packet it leaves alone; untouched means "no".
  return { got: r.got, masq: r.got === '' ? false : r.masq };
}

const label = (r: Row): string => `#${r.n} ${r.src} -> ${r.dst} ${r.proto ?? 'tcp'} => ${Array.isArray(r.want) ? r.want.join(', ') : r.want === '' ? '""' : r.want} (masq ${r.masq ?? '–'})`;

function rowTests(c: Case): void {
  for (const row of c.rows) {
    if (isSctp(row)) {
      it.skip(`${label(row)} [skipped: ${SCTP_SKIP}]`, () => {});
      continue;
    }
    it(label(row), async () => {
      const table = tableOutcome(row);
      const tracer = tracerOutcome(c, row);
      const observed = await kernel.get(row)!.promise;
      // One assertion, so a failure shows the table, the tracer and the kernel side by side.
      expect({ tracer, kernel: observed }).toEqual({ tracer: table, kernel: table });
    }, 90_000);
  }
}

describe.skipIf(!canUseKernel)(`reference scenarios with real packets${canUseKernel ? '' : ` [skipped: ${KERNEL_SKIP_REASON}]`}`, () => {
  let running: Promise<unknown> | undefined;
  beforeAll(() => { running = Promise.all(SECTIONS.map(runSection)); });
  // runSection removes its lab in finally; this only keeps vitest from leaving before that.
  afterAll(async () => { await running; }, 60_000);

  for (const section of SECTIONS) {
    describe(`${section.id} ${section.title}`, () => {
      for (const c of section.cases) {
        if (c.name) describe(c.name, () => rowTests(c));
        else rowTests(c);
      }
    });
  }

  it('removes every namespace it created', async () => {
    await running;
    expect(liveNetns()).toEqual([]);
    expect(await netnsOfThisProcess()).toEqual([]);
  }, 90_000);
});

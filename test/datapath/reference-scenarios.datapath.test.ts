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
import { Lab } from '../lab/lab.js';
import { canUseKernel, KERNEL_SKIP_REASON, liveNetns, netnsOfThisProcess } from '../lab/netns.js';
import type { Observed } from '../lab/outcome.js';
import { compileObjects, probe } from '../support/builders.js';
import { type Pending, labSpecFor, pending, tableOutcome } from '../support/datapath-rows.js';
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

// ---- kernel results, measured in the background -------------------------------------------

const isSctp = (row: Row): boolean => row.proto === 'sctp';
const kernel = new Map<Row, Pending<Observed>>(SECTIONS.flatMap((s) => s.cases.flatMap((c) => c.rows.filter((r) => !isSctp(r)).map((r) => [r, pending<Observed>()] as const))));

async function runSection(section: Section): Promise<void> {
  const rows = section.cases.flatMap((c) => c.rows.filter((r) => !isSctp(r)));
  try {
    const lab = await Lab.create(section.id.replace('.', ''), labSpecFor(section.cases, PORTS));
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

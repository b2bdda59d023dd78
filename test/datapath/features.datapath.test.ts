// Features beyond ../shared/reference-scenarios.md, with real packets: named target ports,
// multi-port services, session affinity, hairpin, IPv6, the masquerade matrix and topology
// hints. Every row is a flow sent as real TCP/UDP connections through a real kernel holding
// the compiled table (test/lab/), and its outcome must equal the row AND explain's tracer on
// the same ruleset, as in reference-scenarios.datapath.test.ts.
//
// The rows of sections 1, 2 and 4-7 are in test/support/feature-rows.ts (the BPF datapath
// test runs them too); section 3, session affinity, is this file's own. The expected outcomes
// are written by hand from kube-proxy's nftables mode (v1.34+), never computed from the tracer;
// [P] is kubernetes/kubernetes pkg/proxy/nftables/proxier.go @b0f823e6.
//
// Each section gets its own lab; sections run concurrently, the cases of a section one after
// the other (reload, forget conntrack), a bounded number of rows of a case at once. Measuring
// starts in beforeAll; each row's `it` waits for its own result.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../lab/lab.js';
import { canUseKernel, KERNEL_SKIP_REASON, liveNetns, netnsOfThisProcess } from '../lab/netns.js';
import type { Observed } from '../lab/outcome.js';
import { EXT, NODE, POD } from '../support/address-plan.js';
import { compileObjects, probe, service, slice } from '../support/builders.js';
import { type Pending, fmtWant, labSpecFor, pending, pool, sleep, tableOutcome, unique } from '../support/datapath-rows.js';
import { type Case, FEATURES_ENV, N, type Row, SECTIONS, type Section, Y, e80 } from '../support/feature-rows.js';

// Every port a row connects to or a DNAT may choose: every pod and the node listen on all of
// them (TCP and UDP), so a packet sent to the wrong place is answered and seen, not lost.
const PORTS = [53, 80, 443, 3001, 3002, 3003, 3006, 3053, 3080, 3443, 3999, 5353, 5354, 8080, 8081, 8443];
// As in the reference test: 40 tries miss one of 3 endpoints with probability < 1e-6; 1.5 s
// outlasts the 1 s SYN retransmit after which an IPv6 TCP reject is reported.
const TRIES = 40;
const TIMEOUT_MS = 1500;
// Rows of one case in flight at once (40 connections each). The masquerade matrix has 39 rows
// per ruleset: all at once would be 1,560 simultaneous connections, mostly to one pod.
const ROWS_IN_FLIGHT = 8;

// ================================================================================================
// 3. Session affinity (ClientIP), timeoutSeconds 2. kube-proxy ([P] writeServiceToEndpointRules
//    and the endpoint chains): a per-endpoint set `flags dynamic,timeout; timeout 2s`, a
//    `saddr @affinity-<ep> goto <ep chain>` rule per endpoint before the random choice, and
//    `update @affinity-<ep> { saddr }` in the endpoint chain: every *new* connection of a client
//    refreshes its 2 s. So a client sticks while its connections are less than 2 s apart, even
//    for longer than 2 s in all, and is balanced afresh after 2 s without one.
//    These are not single outcomes: the table (and the tracer, which follows every branch of a
//    first connection) says where a connection *may* land; the kernel must land every connection
//    of one client on one endpoint of that set.
// ================================================================================================
const AFFINITY_TIMEOUT_S = 2;
const S1 = '10.180.3.1', S2 = '10.180.3.2', S3 = '10.180.3.3';
const STICKY_ALL = e80(S1, S2, S3);
const affinityCase: Case = {
  name: 'ClientIP, timeoutSeconds 2, three endpoints',
  env: FEATURES_ENV,
  objects: [
    service('ns3', 'sticky', {
      type: 'NodePort', clusterIP: '172.30.3.1', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: AFFINITY_TIMEOUT_S } },
      ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }],
    }),
    slice('ns3', 'sticky', 'sticky-a', [{ name: 'p80', port: 80 }], [{ ip: S1, node: 'test-node' }, { ip: S2, node: 'node2' }, { ip: S3, node: 'node3' }]),
  ],
  rows: [],
};
// Clients of the independence check: 13 addresses, so that all of them picking the same endpoint
// by chance (a false failure) has probability 3 * (1/3)^13 = 1/3^12, about one run in 530,000
// (with 8 it was one in 2,187: a flake by design).
const PER_CLIENT = Array.from({ length: 13 }, (_, i) => `10.0.3.${41 + i}`);
const REFRESH = { src: '10.0.3.21', tries: 6, spacingMs: 500 };
// 13 tries, each after an idle time longer than the timeout: all on one endpoint by chance with
// probability 3 * (1/3)^13 = 1/3^12 (with 8 tries, 1/3^7).
const EXPIRY = { src: '10.0.3.31', tries: 13, idleMs: AFFINITY_TIMEOUT_S * 1000 + 600 };

interface StickyCheck { id: string; what: string; srcs: string[]; dst: string; masq: boolean }
const STICKY: Record<'sticks' | 'nodePort' | 'perClient' | 'refresh' | 'expiry', StickyCheck> = {
  sticks: { id: '3.1', what: 'one client, 20 new connections: all on one endpoint', srcs: [POD], dst: '172.30.3.1:80', masq: N },
  nodePort: { id: '3.2', what: 'from outside via the NodePort, 20 connections: all on one endpoint', srcs: [EXT], dst: `${NODE}:3001`, masq: Y },
  perClient: { id: '3.3', what: `${PER_CLIENT.length} client addresses, 10 connections each: each sticks to one endpoint of its own, not all to the same`, srcs: PER_CLIENT, dst: '172.30.3.1:80', masq: N },
  refresh: { id: '3.4', what: `${REFRESH.tries} connections ${REFRESH.spacingMs} ms apart (longer than the ${AFFINITY_TIMEOUT_S} s timeout in all): every new connection refreshes it, all on one endpoint`, srcs: [REFRESH.src], dst: '172.30.3.1:80', masq: N },
  expiry: { id: '3.5', what: `${EXPIRY.tries} connections, each after ${EXPIRY.idleMs} ms idle (past the timeout): balanced afresh, more than one endpoint`, srcs: [EXPIRY.src], dst: '172.30.3.1:80', masq: N },
};

/** The compiled ruleset, refusing objects the model skipped (a typo would silently test less). */
function compiled(c: Case): ReturnType<typeof compileObjects> {
  const r = compileObjects(c.objects, c.env);
  if (r.diagnostics.length > 0) throw new Error(`${c.name}: objects skipped: ${JSON.stringify(r.diagnostics)}`);
  return r;
}

// ---- kernel results, measured in the background -------------------------------------------------

const kernel = new Map<Row, Pending<Observed>>(SECTIONS.flatMap((s) => s.cases.flatMap((c) => c.rows.map((r) => [r, pending<Observed>()] as const))));

async function runSection(section: Section): Promise<void> {
  const rows = section.cases.flatMap((c) => c.rows);
  try {
    const lab = await Lab.create(section.id, labSpecFor(section.cases, PORTS));
    try {
      for (const c of section.cases) {
        await lab.load(compiled(c).ruleset);
        await lab.forgetConnections();
        await pool(c.rows, ROWS_IN_FLIGHT, async (row) => {
          kernel.get(row)!.resolve(await lab.probe({ src: row.src, dst: row.dst, proto: row.proto ?? 'tcp', count: TRIES, timeoutMs: TIMEOUT_MS }));
        });
      }
    } finally {
      await lab.destroy();
    }
  } catch (e) {
    // Rows already resolved keep their result; the rest report why they have none.
    for (const row of rows) kernel.get(row)!.reject(e);
  }
}

/** What the kernel did for one affinity check: the outcome of each client's tries, in order. */
interface StickyResult { perSource: Map<string, Observed[]>; gapsMs: number[] }
const stickyKernel = new Map<StickyCheck, Pending<StickyResult>>(Object.values(STICKY).map((c) => [c, pending<StickyResult>()] as const));

async function runAffinity(): Promise<void> {
  try {
    const lab = await Lab.create('f3', labSpecFor([affinityCase], PORTS, Object.values(STICKY).flatMap((c) => c.srcs)));
    const tcp = (src: string, dst: string, count: number) => lab.probe({ src, dst, proto: 'tcp', count, timeoutMs: TIMEOUT_MS });
    // The first connection alone, so that it has recorded the client before the others
    // arrive; then the rest at once.
    const burst = async (check: StickyCheck, rest: number): Promise<void> => {
      const perSource = new Map<string, Observed[]>();
      await Promise.all(check.srcs.map(async (src) => { perSource.set(src, [await tcp(src, check.dst, 1), await tcp(src, check.dst, rest)]); }));
      stickyKernel.get(check)!.resolve({ perSource, gapsMs: [] });
    };
    // One connection at a time, `pauseMs` between the end of one and the start of the next.
    // gapsMs: for `refresh` an upper bound on the time between two connections' first packets
    // (end of this try - start of the previous), for `expiry` a lower bound (start of this try
    // - end of the previous), so the test can tell whether the timing it relies on held.
    const spaced = async (check: StickyCheck, tries: number, pauseMs: number, bound: 'upper' | 'lower'): Promise<void> => {
      const src = check.srcs[0]!;
      const results: Observed[] = [], gapsMs: number[] = [];
      let prev: { start: number; end: number } | undefined;
      for (let i = 0; i < tries; i++) {
        if (prev) await sleep(pauseMs);
        const start = performance.now();
        results.push(await tcp(src, check.dst, 1));
        const end = performance.now();
        if (prev) gapsMs.push(Math.round(bound === 'upper' ? end - prev.start : start - prev.end));
        prev = { start, end };
      }
      stickyKernel.get(check)!.resolve({ perSource: new Map([[src, results]]), gapsMs });
    };
    try {
      await lab.load(compiled(affinityCase).ruleset);
      await lab.forgetConnections();
      await Promise.all([
        (async () => { await burst(STICKY.sticks, 19); await burst(STICKY.nodePort, 19); await burst(STICKY.perClient, 9); })(),
        spaced(STICKY.refresh, REFRESH.tries, REFRESH.spacingMs, 'upper'),
        spaced(STICKY.expiry, EXPIRY.tries, EXPIRY.idleMs, 'lower'),
      ]);
    } finally {
      await lab.destroy();
    }
  } catch (e) {
    for (const p of stickyKernel.values()) p.reject(e);
  }
}

// ---- the rows ------------------------------------------------------------------------------------

function tracerOutcome(c: Case, src: string, dst: string, proto: 'tcp' | 'udp' = 'tcp'): Observed {
  const { ruleset, cfg } = compiled(c);
  const r = probe(ruleset, cfg, src, dst, proto);
  // The tracer names no masquerade for a packet it leaves alone; untouched means "no".
  return { got: r.got, masq: r.got === '' ? false : r.masq };
}

const label = (r: Row): string =>
  `${r.id}${r.what ? ` ${r.what}:` : ''} ${r.src} -> ${r.dst}${r.proto === 'udp' ? ' udp' : ''} => ${fmtWant(r.want)}${r.masq === undefined ? '' : ` (masq ${r.masq ? 'yes' : 'no'})`}`;

function rowTests(c: Case): void {
  for (const row of c.rows) {
    it(label(row), async () => {
      const table = tableOutcome(row);
      const tracer = tracerOutcome(c, row.src, row.dst, row.proto);
      const observed = await kernel.get(row)!.promise;
      // One assertion, so a failure shows the table, the tracer and the kernel side by side.
      expect({ tracer, kernel: observed }).toEqual({ tracer: table, kernel: table });
    }, 90_000);
  }
}

/** Endpoints and masquerade seen over several outcomes of one client, or why they are not usable. */
function landings(outcomes: readonly Observed[]): { endpoints: string[]; masq: unknown[] } | string {
  const bad = outcomes.find((o) => !Array.isArray(o.got));
  if (bad) return `a try failed or was not proxied: ${JSON.stringify(bad)}`;
  return { endpoints: unique(outcomes.flatMap((o) => o.got as string[])).sort(), masq: unique(outcomes.map((o) => o.masq)) };
}

function affinityTests(): void {
  const table = tableOutcome({ want: STICKY_ALL, masq: N });
  const tableFor = (check: StickyCheck): Observed => ({ ...table, masq: check.masq });
  const stickLabel = (check: StickyCheck): string => `${check.id} ${check.what}: ${check.srcs.length > 1 ? `${check.srcs[0]}..${check.srcs.at(-1)}` : check.srcs[0]} -> ${check.dst} => one of ${STICKY_ALL.join(', ')} (masq ${check.masq ? 'yes' : 'no'})`;
  const tracerAgrees = (check: StickyCheck): void => {
    for (const src of check.srcs) expect(tracerOutcome(affinityCase, src, check.dst), `tracer, first connection from ${src}`).toEqual(tableFor(check));
  };
  /** Each client's connections all on one endpoint of the table, with the table's masquerade. */
  const eachSticks = (check: StickyCheck, r: StickyResult): string[] => {
    const chosen: string[] = [];
    for (const [src, outcomes] of r.perSource) {
      const seen = landings(outcomes);
      expect(typeof seen === 'string' ? seen : { endpoints: seen.endpoints.length, inTable: seen.endpoints.every((e) => STICKY_ALL.includes(e)), masq: seen.masq },
        `kernel, client ${src}: ${JSON.stringify(seen)}`).toEqual({ endpoints: 1, inTable: true, masq: [check.masq] });
      chosen.push((seen as { endpoints: string[] }).endpoints[0]!);
    }
    return chosen;
  };

  it(stickLabel(STICKY.sticks), async () => {
    tracerAgrees(STICKY.sticks);
    eachSticks(STICKY.sticks, await stickyKernel.get(STICKY.sticks)!.promise);
  }, 90_000);
  it(stickLabel(STICKY.nodePort), async () => {
    tracerAgrees(STICKY.nodePort);
    eachSticks(STICKY.nodePort, await stickyKernel.get(STICKY.nodePort)!.promise);
  }, 90_000);
  it(stickLabel(STICKY.perClient), async () => {
    tracerAgrees(STICKY.perClient);
    const chosen = eachSticks(STICKY.perClient, await stickyKernel.get(STICKY.perClient)!.promise);
    expect(unique(chosen).length, `endpoints chosen by the clients: ${chosen.join(', ')}`).toBeGreaterThan(1);
  }, 90_000);
  it(stickLabel(STICKY.refresh), async () => {
    tracerAgrees(STICKY.refresh);
    const r = await stickyKernel.get(STICKY.refresh)!.promise;
    // Only conclusive if no two connections were a timeout apart (a badly stalled machine).
    expect(Math.max(...r.gapsMs), `upper bounds on the gaps between connections (ms): ${r.gapsMs.join(', ')}`).toBeLessThan(AFFINITY_TIMEOUT_S * 1000);
    eachSticks(STICKY.refresh, r);
  }, 90_000);
  it(stickLabel(STICKY.expiry), async () => {
    tracerAgrees(STICKY.expiry);
    const r = await stickyKernel.get(STICKY.expiry)!.promise;
    expect(Math.min(...r.gapsMs), `lower bounds on the idle times (ms): ${r.gapsMs.join(', ')}`).toBeGreaterThan(AFFINITY_TIMEOUT_S * 1000);
    const seen = landings(r.perSource.get(EXPIRY.src)!);
    expect(typeof seen === 'string' ? seen : { inTable: seen.endpoints.every((e) => STICKY_ALL.includes(e)), balanced: seen.endpoints.length > 1, masq: seen.masq },
      `kernel: ${JSON.stringify(seen)}`).toEqual({ inTable: true, balanced: true, masq: [N] });
  }, 90_000);
}

describe.skipIf(!canUseKernel)(`features with real packets${canUseKernel ? '' : ` [skipped: ${KERNEL_SKIP_REASON}]`}`, () => {
  let running: Promise<unknown> | undefined;
  beforeAll(() => { running = Promise.all([...SECTIONS.map(runSection), runAffinity()]); });
  // The runners remove their labs in finally; this only keeps vitest from leaving before that.
  afterAll(async () => { await running; }, 90_000);

  const sectionTests = (s: Section): void => {
    describe(s.title, () => {
      for (const c of s.cases) describe(c.name, () => rowTests(c));
    });
  };
  sectionTests(SECTIONS[0]!);
  sectionTests(SECTIONS[1]!);
  describe('3. session affinity (ClientIP)', () => { describe(affinityCase.name, affinityTests); });
  for (const s of SECTIONS.slice(2)) sectionTests(s);

  it('removes every namespace it created', async () => {
    await running;
    expect(liveNetns()).toEqual([]);
    expect(await netnsOfThisProcess()).toEqual([]);
  }, 90_000);
});

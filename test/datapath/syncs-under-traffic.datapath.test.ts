// Syncs while real traffic flows (test/lab/: a real kernel in network namespaces). A client
// keeps opening fresh connections (or keeps sending on one UDP socket) while the ruleset
// changes under it, and every try is judged by when it began:
// - partial syncs (lab.applier.syncRuleset), TCP and UDP, ClusterIP from a pod and NodePort from
//   outside, IPv4 and IPv6: no try ever fails, and every try that began after a sync
//   resolved reaches exactly the endpoints of the new state (all of them, none other);
// - a restart: a fresh Applier's first sync (a full, atomic table replace), and the real
//   daemon stopped (its rules stay) and started again: no try fails, ever;
// - UDP conntrack hygiene with real flows: a removed endpoint keeps getting a connected
//   socket's datagrams until the product's cleanup runs (the negative control), then they
//   move to the surviving endpoint; the same done by `nftproxy run` on its own.
//
// Timing: every try records when it began (agent clock, ms since the epoch; the test
// process reads the same clock). A try that began after sync() resolved sent its first
// packet after the last transaction was committed: nf_tables switches the ruleset generation
// inside the commit, before the kernel acknowledges the batch, so no grace period is needed.
// Tries that began while a sync ran may see either state: they are only checked to land
// in old ∪ new (and to succeed).
import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Applier } from '../../src/apply/applier.js';
import { NetlinkConntrack } from '../../src/apply/conntrack.js';
import { parseFlows } from '../support/conntrack-listing.js';
import { ConntrackHygiene } from '../../src/daemon/conntrack-hygiene.js';
import type { Ruleset } from '../../src/ir/types.js';
import type { LoopRecord, Proto } from '../lab/agent-process.js';
import { Lab, type LabSpec, type TrafficLoop } from '../lab/lab.js';
import { canUseKernel, KERNEL_SKIP_REASON, liveNetns, netnsOfThisProcess } from '../lab/netns.js';
import { EXT as EXT4, EXT6, LAB_ENV, NODE as NODE4, NODE6, NODE_NAME, envFlags } from '../support/address-plan.js';
import { compileObjects, service, slice } from '../support/builders.js';
import { Daemon, type LogLine, synced } from '../support/daemon.js';
import { readKernelTables } from '../support/kernel-table.js';

// ---- the cluster ------------------------------------------------------------------------------

const POD4 = { A: '10.180.0.1', B: '10.180.0.2', C: '10.180.0.3', D: '10.180.0.4' };
const POD6 = { A: 'fd00:10::1', B: 'fd00:10::2', C: 'fd00:10::3', D: 'fd00:10::4' };
/** a pod client (inside the cluster CIDR) per family; the external clients are the plan's */
const CLIENT4 = '10.180.1.100';
const CLIENT6 = 'fd00:10::100';

const ENV = LAB_ENV;
/** The same configuration as `nftproxy run` flags. */
const DAEMON_FLAGS = envFlags(ENV);

const WEB = { vip: '172.30.0.10', port: 80, nodePort: 30080 };
const DNS = { vip: '172.30.0.11', port: 53, nodePort: 30053 };
const WEB6 = { vip: 'fd00:10:96::10', port: 80, nodePort: 30081 };
/** UDP ClusterIP that starts without endpoints (REJECT) */
const LATE = { vip: '172.30.0.12', port: 53 };
/** UDP service that does not exist at first; reached on its externalIP (outside the service CIDR) */
const EXT = { vip: '172.30.0.13', externalIP: '192.168.99.11', port: 53 };

/** Endpoints per service; a service left out has none (EXT: does not exist). */
interface State { web?: readonly string[]; dns?: readonly string[]; web6?: readonly string[]; late?: readonly string[]; ext?: readonly string[] }

function objects(s: State): unknown[] {
  const eps = (ips: readonly string[] | undefined) => (ips ?? []).map((ip) => ({ ip, node: NODE_NAME }));
  const tcp = { name: 'http', port: 80, protocol: 'TCP' as const };
  const udp = { name: 'dns', port: 53, protocol: 'UDP' as const };
  return [
    service('lab', 'web', { type: 'NodePort', clusterIP: WEB.vip, ports: [{ ...tcp, targetPort: 80, nodePort: WEB.nodePort }] }),
    slice('lab', 'web', 'web-1', [tcp], eps(s.web)),
    service('lab', 'dns', { type: 'NodePort', clusterIP: DNS.vip, ports: [{ ...udp, targetPort: 53, nodePort: DNS.nodePort }] }),
    slice('lab', 'dns', 'dns-1', [udp], eps(s.dns)),
    service('lab', 'web6', { type: 'NodePort', clusterIP: WEB6.vip, clusterIPs: [WEB6.vip], ipFamilies: ['IPv6'], ports: [{ ...tcp, targetPort: 80, nodePort: WEB6.nodePort }] }),
    slice('lab', 'web6', 'web6-1', [tcp], eps(s.web6), 'IPv6'),
    service('lab', 'late', { clusterIP: LATE.vip, ports: [{ ...udp, targetPort: 53 }] }),
    slice('lab', 'late', 'late-1', [udp], eps(s.late)),
    ...(s.ext ? [
      service('lab', 'ext', { clusterIP: EXT.vip, externalIPs: [EXT.externalIP], ports: [{ ...udp, targetPort: 53 }] }),
      slice('lab', 'ext', 'ext-1', [udp], eps(s.ext)),
    ] : []),
  ];
}

function compiled(s: State): Ruleset {
  const { ruleset, diagnostics } = compileObjects(objects(s), ENV);
  if (diagnostics.length) throw new Error(`test objects rejected: ${JSON.stringify(diagnostics)}`);
  return ruleset;
}

const LAB_SPEC: LabSpec = {
  nodeIPs: [NODE4, NODE6],
  pods: [...Object.values(POD4), ...Object.values(POD6)],
  clients: [CLIENT4, EXT4, CLIENT6, EXT6],
  selfAddressed: [],
  // Every pod and the node listen on all of these (TCP and UDP): a packet the node failed to
  // DNAT is answered by the node itself and shows up as "node", not as a vague error.
  ports: [53, 80, DNS.nodePort, WEB.nodePort, WEB6.nodePort],
};

// ---- traffic ----------------------------------------------------------------------------------

// Source ports are handed out once per file run, below the client's ephemeral range
// (32768-60999): no try ever reuses a source port, so every try of a "fresh" loop is a new
// conntrack flow (a reused UDP port would match its old flow and keep the old DNAT choice,
// which is test 4's subject, not test 1's).
let nextSport = 9_000;
function sports(n: number): [number, number] {
  const first = nextSport;
  nextSport += n;
  if (nextSport > 32_000) throw new Error('test bug: out of source ports');
  return [first, first + n - 1];
}
/** Per fresh loop; a try takes a few ms plus its interval, a scenario a few seconds. */
const FRESH_PORTS = 2000;
const FRESH_INTERVAL_MS = 5;
/** No answer in this lab takes longer; a try that times out is a failure. */
const TRY_TIMEOUT_MS = 1500;
/**
 * Tries each loop makes in every phase (after a change resolved, before the next began):
 * with 3 endpoints the chance that one of them is never chosen is 3 * (2/3)^40 < 1e-6.
 */
const MIN_TRIES = 40;
/** ... and at least this long, so each phase also spans real time. */
const PHASE_MS = 300;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Flow { readonly src: string; readonly dst: string; readonly proto: Proto; /** the targetPort every answer must carry */ readonly port: number }

/** A change of the kernel's rules while traffic flows. */
interface Change {
  /** the endpoints a new connection must reach once the change is done */
  readonly eps: readonly string[];
  /** does it; resolves with what to assert about it (the sync kind...) and, if the moment it
   * took effect is known better than "when this resolved", that moment (ms since the epoch) */
  readonly run: () => Promise<{ label: string; doneAt?: number }>;
}

interface Window { readonly start: number; readonly done: number }

/** Landing of one try: the pod's address (or "node"), with the port if it is not the expected one. */
const landing = (r: LoopRecord, port: number): string => (r.ok ? (r.port === port ? r.name : `${r.name}:${r.port}`) : `FAILED ${r.err}`);
const sortedSet = (xs: Iterable<string>): string[] => [...new Set(xs)].sort();
const iso = (t: number): string => new Date(t).toISOString();

/**
 * What a flow's tries saw: every failure; per phase (before the first change, then after
 * each change was done and before the next began) the set of endpoints reached; per change
 * window (tries that began while it ran) whatever landed outside old ∪ new.
 */
function judge(records: readonly LoopRecord[], port: number, initial: readonly string[], changes: readonly (Change & Window)[]) {
  const phaseEps = [initial, ...changes.map((c) => c.eps)];
  const phases = phaseEps.map((_, i) => {
    const from = i === 0 ? -Infinity : changes[i - 1]!.done;
    const until = i === changes.length ? Infinity : changes[i]!.start;
    return sortedSet(records.filter((r) => r.t0 > from && r.t0 < until).map((r) => landing(r, port)));
  });
  const during = changes.map((c, i) => {
    const allowed = new Set([...phaseEps[i]!, ...c.eps]);
    return sortedSet(records.filter((r) => r.t0 >= c.start && r.t0 <= c.done).map((r) => landing(r, port)).filter((l) => !allowed.has(l)));
  });
  return {
    failed: records.filter((r) => !r.ok).map((r) => `${iso(r.t0)} ${landing(r, port)}`),
    phases,
    during,
  };
}
const judged = (initial: readonly string[], changes: readonly Change[]) => ({
  failed: [],
  phases: [initial, ...changes.map((c) => c.eps)].map((e) => [...e].sort()),
  during: changes.map(() => []),
});

/** Waits until a phase has lasted PHASE_MS and every loop made MIN_TRIES in it. */
async function phase(loops: readonly TrafficLoop[], since: number): Promise<void> {
  await sleep(PHASE_MS);
  await Promise.all(loops.map((l) => l.waitFor(MIN_TRIES, since)));
}

/**
 * Fresh connections on every flow while `changes` run one after the other, each followed by
 * a phase; returns the changes' labels and each flow's judgement.
 */
async function underTraffic(lab: Lab, flows: readonly Flow[], initial: readonly string[], changes: readonly Change[], intervalMs = FRESH_INTERVAL_MS) {
  const loops = await Promise.all(flows.map((f) => lab.loop({ src: f.src, dst: f.dst, proto: f.proto, mode: 'fresh', sports: sports(FRESH_PORTS), intervalMs, timeoutMs: TRY_TIMEOUT_MS })));
  const windows: (Change & Window)[] = [];
  const labels: string[] = [];
  const run = async (): Promise<void> => {
    await phase(loops, 0);
    for (const c of changes) {
      const start = Date.now();
      const { label, doneAt } = await c.run();
      const done = doneAt ?? Date.now();
      windows.push({ ...c, start, done });
      labels.push(label);
      await phase(loops, done);
    }
  };
  // The loops stop whatever happens; a failure of the changes is reported after that.
  const ran = await run().then(() => undefined, (e: unknown) => e);
  const records = await Promise.all(loops.map((l) => l.stop()));
  if (ran !== undefined) throw ran;
  return { labels, flows: flows.map((f, i) => ({ flow: `${f.proto} ${f.src} -> ${f.dst}`, ...judge(records[i]!, f.port, initial, windows) })) };
}
const expectedFlows = (flows: readonly Flow[], initial: readonly string[], changes: readonly Change[]) =>
  flows.map((f) => ({ flow: `${f.proto} ${f.src} -> ${f.dst}`, ...judged(initial, changes) }));

const partialSync = (lab: Lab, state: State) => async () => ({ label: (await lab.applier.syncRuleset(compiled(state))).kind });

// ---- node-namespace helpers -------------------------------------------------------------------

const inNode = (lab: Lab) => async (cmd: string[], input?: string) => {
  const r = await execa('ip', ['netns', 'exec', lab.nodeNetns, ...cmd], { input, reject: false });
  return { stdout: String(r.stdout), stderr: String(r.stderr), exitCode: r.exitCode ?? -1 };
};
/** The product's conntrack table (netlink), opened in the node namespace; closed after each test. */
const openTables: NetlinkConntrack[] = [];
afterEach(() => { for (const t of openTables.splice(0)) t.close(); });
const conntrackInNode = (lab: Lab): NetlinkConntrack => {
  const t = new NetlinkConntrack(`/run/netns/${lab.nodeNetns}`);
  openTables.push(t);
  return t;
};

/** UDP flows the node tracks to dst:port, as "client:sport -> dst:port via replySrc". */
async function udpFlowsTo(lab: Lab, dst: string, port: number): Promise<string[]> {
  const r = await inNode(lab)(['conntrack', '-L', '-p', 'udp', '-f', 'ipv4', '--orig-dst', dst, '--orig-port-dst', String(port)]);
  if (r.exitCode !== 0) throw new Error(`conntrack -L: ${r.stderr}`);
  return parseFlows(r.stdout).map((f) => `${f.orig.src}:${f.orig.sport} -> ${f.orig.dst}:${f.orig.dport} via ${f.reply.src}`).sort();
}

const silent = pino({ level: 'silent' });

function startDaemon(lab: Lab, dir: string): Daemon {
  return new Daemon(lab.nodeNetns, ['--manifests', dir, ...DAEMON_FLAGS, '--min-sync-period', '100ms', '--log-level', 'debug']);
}
async function stopDaemon(d: Daemon): Promise<number> {
  d.kill('SIGTERM');
  const timer = setTimeout(() => d.kill('SIGKILL'), 5000);
  const code = await d.exited;
  clearTimeout(timer);
  return code;
}
const logTime = (l: LogLine): number => Date.parse(String(l.time));
const writeManifests = (dir: string, s: State): Promise<void> =>
  writeFile(join(dir, 'cluster.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects(s) }, null, 1));

// ---- the tests --------------------------------------------------------------------------------

describe.skipIf(!canUseKernel)(`syncs under real traffic${canUseKernel ? '' : ` [skipped: ${KERNEL_SKIP_REASON}]`}`, () => {
  let lab: Lab;
  let dir: string;
  const daemons: Daemon[] = [];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nftproxy-traffic-'));
    lab = await Lab.create('st', LAB_SPEC);
  }, 60_000);
  afterAll(async () => {
    for (const d of daemons) d.kill('SIGKILL');
    await Promise.all(daemons.map((d) => d.exited));
    await lab?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 30_000);

  /** A clean start: `state` fully loaded through the lab's applier, conntrack empty. */
  async function reset(state: State): Promise<void> {
    await lab.load(compiled(state));
    await lab.forgetConnections();
  }

  const { A, B, C, D } = POD4;
  const removeCaddDremoveA = (svc: 'web' | 'dns' | 'web6', p: typeof POD4): Change[] => [
    { eps: [p.A, p.B], run: partialSync(lab, { [svc]: [p.A, p.B] }) },
    { eps: [p.A, p.B, p.D], run: partialSync(lab, { [svc]: [p.A, p.B, p.D] }) },
    { eps: [p.B, p.D], run: partialSync(lab, { [svc]: [p.B, p.D] }) },
  ];

  // One row per service: its pods, a pod client to the ClusterIP and an external one to the NodePort.
  const partialRows = [
    { what: 'TCP: partial syncs (remove C, add D, remove A) while fresh connections flow', svc: 'web', pods: POD4, vip: `${WEB.vip}:${WEB.port}`, nodePort: `${NODE4}:${WEB.nodePort}`, clients: [CLIENT4, EXT4], proto: 'tcp', port: 80 },
    { what: 'UDP: partial syncs while fresh sockets send (each try a new conntrack flow)', svc: 'dns', pods: POD4, vip: `${DNS.vip}:${DNS.port}`, nodePort: `${NODE4}:${DNS.nodePort}`, clients: [CLIENT4, EXT4], proto: 'udp', port: 53 },
    { what: 'IPv6 TCP: partial syncs while fresh connections flow', svc: 'web6', pods: POD6, vip: `[${WEB6.vip}]:${WEB6.port}`, nodePort: `[${NODE6}]:${WEB6.nodePort}`, clients: [CLIENT6, EXT6], proto: 'tcp', port: 80 },
  ] as const;
  for (const { what, svc, pods: p, vip, nodePort, clients: [pod, ext], proto, port } of partialRows) it(`${what}, ClusterIP and NodePort`, async () => {
    await reset({ [svc]: [p.A, p.B, p.C] });
    const flows: Flow[] = [{ src: pod, dst: vip, proto, port }, { src: ext, dst: nodePort, proto, port }];
    const changes = removeCaddDremoveA(svc, p);
    const r = await underTraffic(lab, flows, [p.A, p.B, p.C], changes);
    expect(r).toEqual({ labels: ['partial', 'partial', 'partial'], flows: expectedFlows(flows, [p.A, p.B, p.C], changes) });
  }, 30_000);

  const webFlows: Flow[] = [
    { src: CLIENT4, dst: `${WEB.vip}:${WEB.port}`, proto: 'tcp', port: 80 },
    { src: EXT4, dst: `${NODE4}:${WEB.nodePort}`, proto: 'tcp', port: 80 },
  ];

  it('restart: a new Applier\'s first sync (full, atomic replace) of the same state, then of a changed one: no connection fails', async () => {
    await reset({ web: [A, B, C] });
    // What a restarted daemon holds: nothing about the kernel. Its first sync is full.
    const restarted = (state: State) => async () => ({ label: (await new Applier(lab.writer()).syncRuleset(compiled(state))).kind });
    const changes: Change[] = [
      { eps: [A, B, C], run: restarted({ web: [A, B, C] }) },
      { eps: [A, B, D], run: restarted({ web: [A, B, D] }) },
    ];
    // Back to back tries (no pause): a full sync takes some 30 ms, as many tries as possible
    // should begin while the old table is being swapped for the new one.
    const r = await underTraffic(lab, webFlows, [A, B, C], changes, 0);
    expect(r).toEqual({ labels: ['full', 'full'], flows: expectedFlows(webFlows, [A, B, C], changes) });
  }, 30_000);

  it('restart: `nftproxy run` stopped (rules stay, traffic flows) and started again on changed manifests: no connection fails', async () => {
    const state0: State = { web: [A, B, C] };
    const state1: State = { web: [A, B, D] };
    // The lab's own compile of state0, as the kernel holds it: the daemon must hold the same.
    await reset(state0);
    const want0 = await readKernelTables(inNode(lab));
    await writeManifests(dir, state0);
    let daemon = startDaemon(lab, dir);
    daemons.push(daemon);
    expect(await daemon.waitFor(synced, 15_000, 0)).toMatchObject({ reason: 'start', kind: 'full', services: 4 });
    expect(await readKernelTables(inNode(lab))).toEqual(want0);

    const changes: Change[] = [
      // SIGTERM: the daemon exits, its rules stay.
      { eps: [A, B, C], run: async () => ({ label: `exit ${await stopDaemon(daemon)}` }) },
      // Down, the manifests change; the new daemon's first sync (full) applies the change. It
      // took effect when that sync's nft committed: before the "synced" line was logged.
      {
        eps: [A, B, D],
        run: async () => {
          await writeManifests(dir, state1);
          daemon = startDaemon(lab, dir);
          daemons.push(daemon);
          const line = await daemon.waitFor(synced, 15_000, 0);
          return { label: `${String(line.reason)} ${String(line.kind)}`, doneAt: logTime(line) };
        },
      },
    ];
    const r = await underTraffic(lab, webFlows, [A, B, C], changes);
    expect(r).toEqual({ labels: ['exit 0', 'start full'], flows: expectedFlows(webFlows, [A, B, C], changes) });
    expect(await stopDaemon(daemon)).toBe(0);
    const held = await readKernelTables(inNode(lab));
    await reset(state1);
    expect(held).toEqual(await readKernelTables(inNode(lab)));
  }, 40_000);

  // ---- UDP conntrack hygiene: one connected socket, one conntrack flow ------------------------

  /** ONE connected UDP socket from a fixed source port, a datagram every 50 ms. */
  async function stickySocket(dst: string): Promise<{ loop: TrafficLoop; sport: number }> {
    const [sport] = sports(1);
    const loop = await lab.loop({ src: CLIENT4, dst, proto: 'udp', mode: 'socket', sports: [sport, sport], intervalMs: 50, timeoutMs: TRY_TIMEOUT_MS });
    return { loop, sport };
  }
  const STICKY_TRIES = 12;
  /** Landings of the tries that began in (from, until). */
  const seen = (records: readonly LoopRecord[], from: number, until: number, port = 53): string[] =>
    sortedSet(records.filter((r) => r.t0 > from && r.t0 < until).map((r) => landing(r, port)));
  /**
   * Tries that began while conntrack entries were being deleted may fail once: a reply of
   * the old endpoint still in flight when its entry goes finds no NAT to undo on its way
   * back and is dropped by the client's connected socket (the try times out). Only there is
   * a timeout allowed; anywhere else every try must be answered.
   */
  const unexpectedDuring = (records: readonly LoopRecord[], from: number, until: number, allowed: readonly string[]): string[] =>
    seen(records, from - 1, until + 1).filter((l) => !allowed.includes(l) && l !== 'FAILED timeout');
  const failuresOutside = (records: readonly LoopRecord[], from: number, until: number): string[] =>
    records.filter((r) => !r.ok && (r.t0 < from || r.t0 > until)).map((r) => `${iso(r.t0)} ${landing(r, 53)}`);
  /** One flow, one DNAT decision: the endpoint (A or B) every datagram so far went to, and the other one. */
  async function stuckTo(loop: TrafficLoop): Promise<{ gone: string; survivor: string }> {
    await loop.waitFor(STICKY_TRIES, 0);
    const first = seen(await loop.peek(0), 0, Infinity);
    expect(first.length === 1 && [A, B].includes(first[0]!), `one endpoint answers the socket: ${first.join(', ')}`).toBe(true);
    return { gone: first[0]!, survivor: first[0] === A ? B : A };
  }

  it('UDP conntrack: a removed endpoint keeps a connected socket\'s flow until cleanup runs (negative control); the product\'s cleanup moves it to the survivor', async () => {
    const state0: State = { dns: [A, B] };
    await reset(state0);
    const hygiene = new ConntrackHygiene(silent, conntrackInNode(lab));
    hygiene.afterSync('all', () => compiled(state0).servicePorts); // the first cleanup, as after a daemon's first sync: nothing stale yet
    const { loop, sport } = await stickySocket(`${DNS.vip}:${DNS.port}`);
    let records: LoopRecord[] = [];
    try {
      const { gone, survivor } = await stuckTo(loop);

      const state1: State = { dns: [survivor] };
      const syncStart = Date.now();
      const sync = await lab.applier.syncRuleset(compiled(state1));
      const synced = Date.now();
      await sleep(PHASE_MS);
      await loop.waitFor(STICKY_TRIES, synced);
      const flowsBefore = await udpFlowsTo(lab, DNS.vip, DNS.port);

      const cleanStart = Date.now();
      hygiene.afterSync('all', () => compiled(state1).servicePorts);
      const cleaned = Date.now();
      await loop.waitFor(STICKY_TRIES, cleaned);
      const flowsAfter = await udpFlowsTo(lab, DNS.vip, DNS.port);
      records = await loop.stop();

      const flow = (via: string) => `${CLIENT4}:${sport} -> ${DNS.vip}:${DNS.port} via ${via}`;
      expect({
        sync: sync.kind,
        before: seen(records, 0, syncStart),
        // The bug kube-proxy's cleanup exists for: the endpoint is gone from the rules, but
        // the socket's conntrack entry keeps the old DNAT, and the pod (still alive) answers.
        afterSyncNoCleanup: seen(records, synced, cleanStart),
        flowsBefore,
        deleted: hygiene.deletedTotal,
        afterCleanup: seen(records, cleaned, Infinity),
        flowsAfter,
        unexpected: [...unexpectedDuring(records, syncStart, synced, [gone]), ...unexpectedDuring(records, cleanStart, cleaned, [gone, survivor])],
        failed: failuresOutside(records, cleanStart, cleaned),
      }).toEqual({
        sync: 'partial',
        before: [gone],
        afterSyncNoCleanup: [gone],
        flowsBefore: [flow(gone)],
        deleted: 1,
        afterCleanup: [survivor],
        flowsAfter: [flow(survivor)],
        unexpected: [],
        failed: [],
      });
    } finally {
      if (!records.length) await loop.stop().catch(() => {});
    }
  }, 30_000);

  // What the kernel does with the datagrams of a service without endpoints: the node REJECTs
  // them in a filter chain (forward hook), which drops the packet before its conntrack entry
  // is confirmed (confirmation happens at postrouting/input): nothing stays in the table, so
  // the very next datagram after the sync is a new flow, DNATed to the first endpoint. No
  // cleanup is needed there. The case the cleanup's "reply source is not a serving endpoint"
  // rule exists for is traffic the node forwarded un-NATed: to an externalIP before its
  // service existed. That flow IS confirmed (with the externalIP as reply source) and keeps
  // going past the new DNAT rule until the cleanup deletes it.
  it('UDP conntrack: a service\'s first endpoint, after REJECT (no entry stays) and after un-NATed traffic to a future externalIP (stale until cleanup)', async () => {
    const state0: State = {};
    await reset(state0);
    const hygiene = new ConntrackHygiene(silent, conntrackInNode(lab));
    hygiene.afterSync('all', () => compiled(state0).servicePorts);
    const late = await stickySocket(`${LATE.vip}:${LATE.port}`);
    const ext = await stickySocket(`${EXT.externalIP}:${EXT.port}`);
    let records: LoopRecord[][] = [];
    try {
      await Promise.all([late.loop.waitFor(STICKY_TRIES, 0), ext.loop.waitFor(STICKY_TRIES, 0)]);
      const flowsBefore = { late: await udpFlowsTo(lab, LATE.vip, LATE.port), ext: await udpFlowsTo(lab, EXT.externalIP, EXT.port) };

      const state1: State = { late: [A], ext: [B] };
      const syncStart = Date.now();
      const sync = await lab.applier.syncRuleset(compiled(state1));
      const synced = Date.now();
      await sleep(PHASE_MS);
      await Promise.all([late.loop.waitFor(STICKY_TRIES, synced), ext.loop.waitFor(STICKY_TRIES, synced)]);
      const flowsSynced = { late: await udpFlowsTo(lab, LATE.vip, LATE.port), ext: await udpFlowsTo(lab, EXT.externalIP, EXT.port) };

      const cleanStart = Date.now();
      hygiene.afterSync('all', () => compiled(state1).servicePorts);
      const cleaned = Date.now();
      await Promise.all([late.loop.waitFor(STICKY_TRIES, cleaned), ext.loop.waitFor(STICKY_TRIES, cleaned)]);
      records = [await late.loop.stop(), await ext.loop.stop()];
      const [lateRecords, extRecords] = records as [LoopRecord[], LoopRecord[]];

      const phases = (rs: LoopRecord[]) => ({ before: seen(rs, 0, syncStart), afterSyncNoCleanup: seen(rs, synced, cleanStart), afterCleanup: seen(rs, cleaned, Infinity) });
      expect({
        sync: sync.kind,
        late: phases(lateRecords),
        ext: phases(extRecords),
        flowsBefore,
        flowsSynced,
        deleted: hygiene.deletedTotal,
        unexpected: [
          ...unexpectedDuring(lateRecords, syncStart, cleaned, ['FAILED refused', A]),
          ...unexpectedDuring(extRecords, syncStart, cleaned, ['FAILED unreachable', B]),
        ],
      }).toEqual({
        sync: 'partial',
        // REJECT: ICMP port unreachable, ECONNREFUSED on the connected socket...
        late: { before: ['FAILED refused'], afterSyncNoCleanup: [A], afterCleanup: [A] },
        // ...no entry left behind, so the first endpoint is reached right after the sync.
        // Un-NATed (the lab's upstream answers admin-prohibited): the entry stays, and
        // steers past the new DNAT rule until the cleanup deletes it.
        ext: { before: ['FAILED unreachable'], afterSyncNoCleanup: ['FAILED unreachable'], afterCleanup: [B] },
        flowsBefore: { late: [], ext: [`${CLIENT4}:${ext.sport} -> ${EXT.externalIP}:${EXT.port} via ${EXT.externalIP}`] },
        flowsSynced: { late: [`${CLIENT4}:${late.sport} -> ${LATE.vip}:${LATE.port} via ${A}`], ext: [`${CLIENT4}:${ext.sport} -> ${EXT.externalIP}:${EXT.port} via ${EXT.externalIP}`] },
        deleted: 1,
        unexpected: [],
      });
    } finally {
      if (!records.length) await Promise.all([late.loop.stop().catch(() => {}), ext.loop.stop().catch(() => {})]);
    }
  }, 30_000);

  it('UDP conntrack via `nftproxy run`: the daemon deletes the stale flow itself; datagrams move to the survivor within 2 s of the manifest change', async () => {
    const state0: State = { dns: [A, B] };
    await reset(state0);
    await writeManifests(dir, state0);
    const daemon = startDaemon(lab, dir);
    daemons.push(daemon);
    expect(await daemon.waitFor(synced, 15_000, 0)).toMatchObject({ reason: 'start', kind: 'full' });
    const { loop } = await stickySocket(`${DNS.vip}:${DNS.port}`);
    let records: LoopRecord[] = [];
    let exitCode: number;
    try {
      const { gone, survivor } = await stuckTo(loop);

      const mark = daemon.logs.length;
      const written = Date.now();
      await writeManifests(dir, { dns: [survivor] });
      const line = await daemon.waitFor(synced, 10_000, mark);
      // "synced" is logged after the sync's conntrack cleanup: from then on, only the survivor.
      const done = logTime(line);
      await loop.waitFor(STICKY_TRIES, done);
      records = await loop.stop();
      const cleanup = daemon.logs.slice(mark).find((l) => l.msg === 'stale UDP conntrack entries deleted');
      const firstSurvivor = records.find((r) => r.t0 > written && r.ok && r.name === survivor);
      expect({
        sync: [line.reason, line.kind],
        cleanup: cleanup && { deleted: cleanup.deleted, filters: cleanup.filters },
        before: seen(records, 0, written),
        after: seen(records, done, Infinity),
        unexpected: unexpectedDuring(records, written, done, [gone, survivor]),
        failed: failuresOutside(records, written, done),
        movedWithin2s: firstSurvivor ? firstSurvivor.t0 - written <= 2000 || `${firstSurvivor.t0 - written} ms` : 'never',
      }).toEqual({
        sync: ['change', 'partial'],
        cleanup: { deleted: 1, filters: 2 }, // the ClusterIP's flows and the NodePort's
        before: [gone],
        after: [survivor],
        unexpected: [],
        failed: [],
        movedWithin2s: true,
      });
    } finally {
      if (!records.length) await loop.stop().catch(() => {});
      exitCode = await stopDaemon(daemon);
    }
    expect(exitCode).toBe(0);
  }, 30_000);

  it('leaves no namespace behind', async () => {
    await lab.destroy();
    expect(liveNetns()).toEqual([]);
    expect(await netnsOfThisProcess()).toEqual([]);
  }, 30_000);
});

// The daemon, measured as it runs: `nftproxy run` in a fresh namespace, against manifests in
// files (`--manifests DIR`) or the project's fake API server (`--kubeconfig`, the fake
// listening in this process on a Unix socket, reached from the namespace through
// test/lab/unix-relay.mjs on 127.0.0.1:6443, as the suite's cluster lab does). Every figure
// comes from the daemon itself:
//
//  * cold start: its first "synced" line's eventToAckMs (the source's initial state in hand ->
//    the kernel's last ack), with the first sync's applyMs (Applier.sync: the writer's full sync)
//    and durationMs;
//  * partial syncs: one endpoint replaced (in a small file of its own / one EndpointSlice
//    updated), then endpoint-count changes (M -> M-1, a count no other service uses, and back):
//    eventToAckMs of each "synced" line (the change event -> the kernel's last ack, as the
//    daemon reports it), next to the bench's own clock from the write to the line;
//  * memory from /proc/PID/status: RSS after the first sync and after 20 partial syncs, the
//    peak (VmHWM) from start to each point, and the children it runs (conntrack), sampled.
//
// --min-sync-period 100ms, and each change is written 150 ms after the previous sync's line:
// no change waits for the rate limiter, so eventToAckMs is the sync's own cost.
import { cpSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DAEMON_FLAGS } from '../nftproxy.js';
import { Netns, deadline, sleep, statusKB } from '../sys.js';
import { fmtMs, fmtMB } from '../stats.js';
import { sizeLabel, type DaemonVariant } from '../plan.js';
import { NODE_IP, generate, toObjects, type SnapService } from '../workload.js';
import { stats } from './partial.js';
import type { Ctx, DaemonRun, DaemonSync } from '../results.js';
import type { FakeApiServer } from '../../../test/fake-apiserver/server.js';

const PACE_MS = 150;
/** services that change, each in a small file of its own (manifests) */
const CHANGING = 6;
const RSS_AFTER = 20;

type Line = Record<string, unknown> & { msg?: string; level?: number };

export async function daemonPhase(ctx: Ctx): Promise<void> {
  const { plan, progress } = ctx;
  progress.phase('daemon', 'Daemon (nftproxy run), figures from its own log', `${plan.daemon.map((v) => `${sizeLabel(v.size)} ${v.source}`).join(', ')}; budget ${fmtMs(plan.budget.daemon * 1000)}`);
  const t0 = performance.now();
  const runs: DaemonRun[] = [];
  // every variant is a required figure: none is skipped for the budget, which sizes the plan
  for (const v of plan.daemon) {
    try {
      runs.push(await oneVariant(ctx, v));
    } catch (e) {
      runs.push({ size: v.size, source: v.source, syncs: [], error: (e as Error).message.split('\n')[0]!.slice(0, 500) });
    }
  }
  ctx.results.daemon = { runs };
  ctx.results.notes.push(`Daemon: ${((performance.now() - t0) / 1000).toFixed(0)} s of a ${plan.budget.daemon} s budget.`);
}

/** The objects of the services that change, and how each change is made (a file written / the API updated). */
interface Source {
  flags: string[];
  write(k: number, s: SnapService): Promise<void>;
  close(): Promise<void>;
}

async function oneVariant(ctx: Ctx, v: DaemonVariant): Promise<DaemonRun> {
  const { plan, progress } = ctx;
  const label = `${sizeLabel(v.size)} ${v.source}`;
  const gen = generate(v.size.n, v.size.m, plan.seed);
  const services = [...gen.snapshot.services];
  // the changing services: spread over the list, never the first or the last
  const picks = Array.from({ length: CHANGING }, (_, k) => 1 + Math.floor((k * (services.length - 2)) / CHANGING));
  const ns = await Netns.create('dmn');
  // the node's address, as on a node: eTP=Local services' health check servers listen on it
  await ns.ip([`addr add ${NODE_IP}/32 dev lo`]);
  let source: Source | undefined;
  const run: DaemonRun = { size: v.size, source: v.source, syncs: [] };
  try {
    source = await progress.step(`${label}: ${v.source === 'api' ? 'fake API server with every object, relay into the namespace' : 'write manifests'}`, () => (v.source === 'api' ? apiSource(ctx, ns, services) : manifestSource(ctx, label, services, picks)), () => 'ready');
    const d = new DaemonProc(ctx, ns, [...source.flags, ...DAEMON_FLAGS, '--min-sync-period', '100ms']);
    try {
      const first = await progress.step(`${label}: start -> first sync acknowledged`, async () => {
        const l = await d.nextSynced(plan.loadTimeoutSec * 1000);
        run.startToSyncedMs = performance.now() - d.t0;
        run.coldStartMs = num(l.eventToAckMs);
        run.firstApplyMs = num(l.applyMs);
        run.firstSyncMs = num(l.durationMs);
        run.firstOps = num(l.ops);
        run.peakAtFirstMB = d.kb('VmHWM') / 1024;
        await sleep(plan.daemonSettleMs);
        run.rssAfterFirstMB = d.kb('VmRSS') / 1024;
        return l;
      }, (l) => `cold start (its log: initial state in hand -> kernel ack) ${fmtMs(num(l.eventToAckMs))}, writer's full sync ${fmtMs(num(l.applyMs))}, whole first sync ${fmtMs(num(l.durationMs))}; process start -> line ${fmtMs(run.startToSyncedMs)}; RSS ${fmtMB(run.rssAfterFirstMB)}, peak ${fmtMB(run.peakAtFirstMB)}`);
      void first;

      const eps = new Map<number, SnapService>(picks.map((i) => [i, services[i]!]));
      const change = async (kind: DaemonSync['kind'], i: number, after: SnapService): Promise<void> => {
        await sleep(PACE_MS);
        eps.set(i, after);
        const tw = performance.now();
        await source!.write(picks.indexOf(i), after);
        const l = await d.nextSynced(60_000);
        const sync: DaemonSync = { kind, eventToAckMs: num(l.eventToAckMs), applyMs: num(l.applyMs), durationMs: num(l.durationMs), ops: num(l.ops), transactions: num(l.transactions), writeToLineMs: performance.now() - tw };
        if (l.kind !== 'partial') run.note = `a change ran a ${String(l.kind)} sync (reason ${String(l.reason)})`;
        run.syncs.push(sync);
        if (run.syncs.length === RSS_AFTER) {
          await sleep(plan.daemonSettleMs);
          run.rssAfter20MB = d.kb('VmRSS') / 1024;
          run.peakAt20MB = d.kb('VmHWM') / 1024;
          run.childPeakMB = d.childPeakKB / 1024;
          run.children = d.childrenSeen;
          run.childNames = [...d.childNames].sort();
        }
      };
      let pod = 0;
      const freshIP = (): string => gen.alloc.pod();
      await progress.step(`${label}: ${v.endpointChanges} one-endpoint changes`, async () => {
        for (let c = 0; c < v.endpointChanges; c++) {
          const i = picks[c % (CHANGING - 1)]!;
          const s = eps.get(i)!;
          const j = pod++ % s.endpoints.length;
          await change('endpoint', i, { ...s, endpoints: s.endpoints.map((e, k) => (k === j ? { ip: freshIP(), node: e.node } : e)) });
        }
      }, () => summary(run, 'endpoint'));
      // the last changing service: M -> M-1 (a count no other service uses) and back
      const ci = picks[CHANGING - 1]!;
      let spare: SnapService['endpoints'][number] | undefined;
      await progress.step(`${label}: ${v.countChanges} endpoint-count changes`, async () => {
        for (let c = 0; c < v.countChanges; c++) {
          const s = eps.get(ci)!;
          if (!spare) { spare = s.endpoints[s.endpoints.length - 1]; await change('count', ci, { ...s, endpoints: s.endpoints.slice(0, -1) }); }
          else { const e = { ip: freshIP(), node: spare.node }; spare = undefined; await change('count', ci, { ...s, endpoints: [...s.endpoints, e] }); }
        }
      }, () => summary(run, 'count'));
      if (run.rssAfter20MB === undefined) {
        // fewer than 20 partial syncs (a dev run): say so with what there is
        run.rssAfter20MB = d.kb('VmRSS') / 1024;
        run.peakAt20MB = d.kb('VmHWM') / 1024;
        run.childPeakMB = d.childPeakKB / 1024;
        run.children = d.childrenSeen;
        run.childNames = [...d.childNames].sort();
        run.note = [run.note, `RSS "after 20" taken after ${run.syncs.length} partial syncs`].filter(Boolean).join('; ');
      }
      const pick = (k: DaemonSync['kind'], f: (s: DaemonSync) => number) => run.syncs.filter((s) => s.kind === k).map(f);
      if (pick('endpoint', (s) => s.eventToAckMs).length) {
        run.endpoint = stats(pick('endpoint', (s) => s.eventToAckMs));
        run.endpointApply = stats(pick('endpoint', (s) => s.applyMs));
        run.endpointWriteToLine = stats(pick('endpoint', (s) => s.writeToLineMs));
      }
      if (pick('count', (s) => s.eventToAckMs).length) {
        run.count = stats(pick('count', (s) => s.eventToAckMs));
        run.countApply = stats(pick('count', (s) => s.applyMs));
      }
      if (d.errors.length) run.note = [run.note, `errors logged: ${d.errors.slice(0, 2).join(' | ')}`].filter(Boolean).join('; ');
      progress.note(`${label}: RSS after the first sync ${fmtMB(run.rssAfterFirstMB)}, after ${RSS_AFTER} partial syncs ${fmtMB(run.rssAfter20MB)}; peak ${fmtMB(run.peakAt20MB)} (children seen: ${run.children ?? 0}, largest ${fmtMB(run.childPeakMB)})`);
    } finally {
      await d.stop();
    }
  } catch (e) {
    run.error = (e as Error).message.split('\n')[0]!.slice(0, 500);
  } finally {
    await source?.close();
    await ns.destroy();
  }
  return run;
}

const num = (x: unknown): number => (typeof x === 'number' ? x : NaN);
const summary = (r: DaemonRun, k: DaemonSync['kind']): string => {
  const xs = r.syncs.filter((s) => s.kind === k);
  if (!xs.length) return 'none';
  const s = stats(xs.map((x) => x.eventToAckMs)), w = stats(xs.map((x) => x.writeToLineMs)), a = stats(xs.map((x) => x.applyMs));
  return `event -> ack p50 ${fmtMs(s.p50)} / p99 ${fmtMs(s.p99)} (its Applier.sync p50 ${fmtMs(a.p50)}; write -> line, bench clock, p50 ${fmtMs(w.p50)})`;
};

/** The daemon process: its log lines, its memory, its children's. */
class DaemonProc {
  readonly t0 = performance.now();
  private readonly proc;
  private readonly synced: Line[] = [];
  private waiter: (() => void) | undefined;
  private readonly tail: string[] = [];
  readonly errors: string[] = [];
  private exited = false;
  childPeakKB = 0;
  private readonly children = new Set<number>();
  /** what they were (comm) */
  readonly childNames = new Set<string>();
  private readonly sampler: NodeJS.Timeout;

  constructor(ctx: Ctx, ns: Netns, args: string[]) {
    this.proc = ns.spawn([process.execPath, join(ctx.repo, 'bin', 'nftproxy.js'), 'run', ...args], {
      stderrLines: (line) => {
        this.tail.push(line); if (this.tail.length > 20) this.tail.shift();
        let l: Line;
        try { l = JSON.parse(line) as Line; } catch { return; }
        if ((l.level ?? 0) >= 50) this.errors.push(String(l.msg));
        if (l.msg === 'synced') { this.synced.push(l); this.waiter?.(); }
      },
    });
    void this.proc.then(() => { this.exited = true; this.waiter?.(); });
    // children (conntrack): short-lived, so sampled often (and some missed); their VmHWM while alive
    this.sampler = setInterval(() => this.sampleChildren(), 25);
    this.sampler.unref();
  }

  get pid(): number { return this.proc.pid!; }
  get childrenSeen(): number { return this.children.size; }

  kb(field: 'VmRSS' | 'VmHWM'): number {
    return statusKB(this.pid, field) ?? NaN;
  }

  private sampleChildren(): void {
    let tasks: string[];
    try { tasks = readdirSync(`/proc/${this.pid}/task`); } catch { return; }
    for (const t of tasks) {
      let kids: string;
      try { kids = readFileSync(`/proc/${this.pid}/task/${t}/children`, 'utf8'); } catch { continue; }
      for (const k of kids.split(/\s+/).filter(Boolean).map(Number)) {
        // between fork and exec a child is the daemon's image (comm "node", its pages shared):
        // only what it became counts
        let comm: string;
        try { comm = readFileSync(`/proc/${k}/comm`, 'utf8').trim(); } catch { continue; }
        if (comm === 'node') continue;
        this.childNames.add(comm);
        this.children.add(k);
        const hwm = statusKB(k, 'VmHWM');
        if (hwm !== undefined && hwm > this.childPeakKB) this.childPeakKB = hwm;
      }
    }
  }

  async nextSynced(timeoutMs: number): Promise<Line> {
    const t = deadline(timeoutMs);
    try {
      for (;;) {
        const l = this.synced.shift();
        if (l) return l;
        if (this.exited) throw new Error(`the daemon exited: ${this.tail.slice(-3).join(' | ')}`);
        const got = await Promise.race([new Promise<'line'>((r) => { this.waiter = () => r('line'); }), t.promise]);
        this.waiter = undefined;
        if (got === 'timeout') throw new Error(`no "synced" line within ${fmtMs(timeoutMs)}: ${this.tail.slice(-3).join(' | ')}`);
      }
    } finally {
      t.cancel();
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.sampler);
    try { process.kill(this.pid, 'SIGTERM'); } catch { /* gone */ }
    const grace = deadline(10_000);
    if ((await Promise.race([this.proc.then(() => 'exited' as const), grace.promise])) === 'timeout') { try { process.kill(this.pid, 'SIGKILL'); } catch { /* gone */ } }
    grace.cancel();
    await this.proc;
  }
}

/** Manifests: the cluster in JSON List files of 500 services, each changing service in a small file of its own. */
async function manifestSource(ctx: Ctx, label: string, services: readonly SnapService[], picks: readonly number[]): Promise<Source> {
  const dir = join(ctx.tmp, `manifests-${label.replace(/[^a-z0-9]+/gi, '-')}`);
  await mkdir(dir, { recursive: true });
  const own = new Set(picks);
  const bulk = services.filter((_, i) => !own.has(i));
  const per = 500;
  for (let i = 0; i < bulk.length; i += per) {
    await writeFile(join(dir, `services-${String(i / per).padStart(4, '0')}.json`), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: bulk.slice(i, i + per).flatMap(toObjects) }));
  }
  const file = (k: number): string => join(dir, `changing-${k}.json`);
  const write = (k: number, s: SnapService): Promise<void> => writeFile(file(k), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: toObjects(s) }));
  for (const [k, i] of picks.entries()) await write(k, services[i]!);
  return { flags: ['--manifests', dir], write, close: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * The fake API server (test/fake-apiserver) in this process holding every object, reached
 * from the namespace through the suite's Unix-socket relay: nothing listens in the root
 * namespace's network. A change is one EndpointSlice updated.
 */
async function apiSource(ctx: Ctx, ns: Netns, services: readonly SnapService[]): Promise<Source> {
  // the fake reads its TLS material next to its module: bench/dist/test/fixtures/tls
  const here = dirname(fileURLToPath(import.meta.url));
  const tls = join(here, '..', '..', '..', 'test', 'fixtures', 'tls');
  if (!existsSync(join(tls, 'ca.crt'))) cpSync(join(ctx.repo, 'test', 'fixtures', 'tls'), tls, { recursive: true });
  const { FakeApiServer } = await import('../../../test/fake-apiserver/server.js') as { FakeApiServer: new () => FakeApiServer };
  const fake = new FakeApiServer();
  const dir = join(ctx.tmp, `api-${ns.name}`);
  await mkdir(dir, { recursive: true });
  const sock = join(dir, 'api.sock');
  let relay: ReturnType<Netns['spawn']> | undefined;
  try {
    await fake.start();
    await fake.listenUnix(sock);
    for (const s of services) {
      const [svc, slice] = toObjects(s);
      fake.create('Service', svc);
      fake.create('EndpointSlice', slice);
    }
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(kubeconfig, fake.kubeconfig('default', 'https://127.0.0.1:6443'));
    let ready: () => void = () => undefined;
    const listening = new Promise<void>((r) => { ready = r; });
    relay = ns.spawn([process.execPath, join(ctx.repo, 'test', 'lab', 'unix-relay.mjs'), sock], { stdin: 'pipe', stdoutLines: (l) => { if (l.includes('listening')) ready(); } });
    const t = deadline(10_000);
    const got = await Promise.race([listening.then(() => 'ok' as const), t.promise]);
    t.cancel();
    if (got === 'timeout') throw new Error('the API relay did not start');
  } catch (e) {
    relay?.kill('SIGKILL');
    await fake.stop();
    throw e;
  }
  return {
    flags: ['--kubeconfig', join(dir, 'kubeconfig')],
    write: async (_k, s) => { fake.update('EndpointSlice', toObjects(s)[1]); },
    close: async () => {
      relay?.kill('SIGKILL');
      await relay?.catch(() => undefined);
      await fake.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

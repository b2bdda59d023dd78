// Full sync into a fresh namespace, runs interleaved, per size:
//
//  * nftproxy: the sync worker (sync-worker.js), a process of its own doing the daemon's path
//    (model, compile, kernel objects, Applier.sync full through the product's netlink writer).
//    Its figures: the writer's time (kernel objects in -> the kernel's last ack) and the
//    worker's peak RSS (VmHWM: everything a syncing process holds). The daemon itself is
//    measured in the daemon phase (its first sync and peak RSS: the issue-13 targets).
//  * nft-cli: the nft CLI loading the same kernel objects as text (tablesText, what
//    `nftproxy dump` prints), `nft -f` under /usr/bin/time: wall time, peak RSS, user/sys CPU.
//  * every peer layout: its load file, likewise.
//
// At the target size the first run of each loader with data-plane rows goes into its
// data-plane lab (kept); at every partial-sync size nftproxy's and the CLI's first runs go
// into namespaces kept for the partial-sync phase (the writer against the CLI, same changes).
//
// Budget: every load is predicted from the loader's own history at smaller sizes
// (t ∝ units^e, e fitted from the last two sizes, a default before). In this order, each step
// taken if its predicted cost fits what is left of the phase budget minus a reserve for the
// sizes still to come: priority-0 loaders (nftproxy, the CLI: always at least once), then the
// targets' references (upstream's 1.36+ layouts), both up to `runs`; then one run of every
// other loader; then their other runs. A load predicted past the per-load cap never runs.
import { join } from 'node:path';
import { rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { compileParts, modelOf, proxyConfig } from '../nftproxy.js';
import { kernelFamily } from '../../../src/render/kernel/family.js';
import { tablesText } from '../../../src/render/kernel/text.js';
import { createLab } from '../lab.js';
import { Netns, run, timedLoad } from '../sys.js';
import { median, fmtMs, fmtMB } from '../stats.js';
import { type Size, sameSize, sizeLabel } from '../plan.js';
import { counts, generate, type Snapshot } from '../workload.js';
import type { Ctx, FullSyncRow, LoadRun, Loader } from '../results.js';

const SYNC_WORKER = fileURLToPath(new URL('../sync-worker.js', import.meta.url));

/** Work units of a size: service ports plus (service port, endpoint) pairs. */
const unitsOf = (snap: Snapshot): number => snap.services.reduce((a, s) => a + s.ports.length * (1 + s.endpoints.length), 0);

interface Hist { units: number; ms: number }

export function predict(hist: Hist[], units: number, defaultExp: number): number | undefined {
  if (hist.length === 0) return undefined;
  const last = hist[hist.length - 1]!;
  let e = defaultExp;
  const prev = [...hist].reverse().find((h) => h.units !== last.units && h.units < last.units);
  if (prev && prev.ms > 0) e = Math.min(2.5, Math.max(0.7, Math.log(last.ms / prev.ms) / Math.log(last.units / prev.units)));
  return last.ms * (units / last.units) ** e;
}

/**
 * Runs per loader at one size. In this order, each step taken if its predicted cost fits what
 * is left: the critical loaders (priority 0: always at least once; priority 1) up to `runs`;
 * then one run of every other loader; then their other runs. An unknown prediction (no
 * history yet) always fits, but `learning` (a size before the target) grants it one run only,
 * to price the target's; a load predicted past the cap never runs.
 */
export function decideRuns(o: { order: { id: string; priority: number }[]; pred: ReadonlyMap<string, number | undefined>; capMs: number; runs: number; availableMs: number; learning?: boolean }): Map<string, number> {
  const out = new Map<string, number>();
  let committed = 0;
  const grant = (id: string, priority: number, runs: number): void => {
    const have = out.get(id) ?? 0;
    const p = o.pred.get(id);
    if (have >= runs || (p !== undefined && p > o.capMs)) return;
    // nothing known yet, before the target size: one run to learn its cost (priority 0 excepted)
    if (p === undefined && o.learning && priority > 0 && have >= 1) return;
    const cost = (p ?? 0) * (runs - have);
    if (p === undefined || (priority === 0 && have === 0) || cost <= o.availableMs - committed) {
      out.set(id, runs);
      committed += cost;
    }
  };
  const critical = o.order.filter((x) => x.priority <= 1);
  for (const x of critical) grant(x.id, x.priority, 1);
  for (const x of critical) grant(x.id, x.priority, o.runs);
  for (const x of o.order.filter((x) => x.priority > 1)) grant(x.id, x.priority, 1);
  for (const x of o.order.filter((x) => x.priority > 1)) grant(x.id, x.priority, o.runs);
  return out;
}

export function dataplaneAddrs(snap: Snapshot): string[] {
  const first = snap.services[0]!, last = snap.services[snap.services.length - 1]!;
  return [...first.endpoints, ...last.endpoints].map((e) => e.ip);
}

interface WorkerOut { modelMs: number; compileMs: number; objectsMs: number; syncMs: number; writerMs: number; ops: number; bytes: number; hwmMB: number; rssMB: number }

export async function fullSyncPhase(ctx: Ctx): Promise<void> {
  const { plan, progress, loaders } = ctx;
  const cfg = proxyConfig();
  const hist = new Map<string, Hist[]>(loaders.map((l) => [l.id, []]));
  const dead = new Map<string, string>();
  const t0 = performance.now();
  const remainingMs = (): number => plan.budget.fullSync * 1000 - (performance.now() - t0);
  const capMs = plan.loadTimeoutSec * 1000;
  // until two sizes are measured: upstream's nft layouts bind an anonymous map per service port
  // (the kernel's part grows about quadratically: 1.36+ at 10k × 10 spends 97% of its load in
  // the kernel), the minimal 1.36+ shape likewise with fewer objects, the shared-map proposal
  // keeps such maps only for the services it leaves alone
  const defaultExp = (l: Loader): number => (l.id === 'kp-nft-shared' ? 1.6 : l.id === 'kp-nft-numgen-min' ? 2 : l.id.startsWith('kp-nft') ? plan.superlinearExp : 1.2);
  const OVERHEAD_MS = 400; // namespace create / flush / delete around each load
  const isPartialSize = (s: Size): boolean => plan.partialSizes.some((x) => sameSize(x, s));
  const byPriority = [...loaders].sort((a, b) => a.priority - b.priority);
  const unitsAt = new Map<string, number>();
  const units = (s: Size): number => {
    const k = sizeLabel(s);
    if (!unitsAt.has(k)) unitsAt.set(k, unitsOf(generate(s.n, s.m, plan.seed).snapshot));
    return unitsAt.get(k)!;
  };

  progress.phase('full', 'Full sync into a fresh namespace', `${plan.sizes.map(sizeLabel).join(', ')}; ${plan.runs} runs each, interleaved; budget ${fmtMs(plan.budget.fullSync * 1000)}, per-load cap ${plan.loadTimeoutSec} s`);

  for (const [si, size] of plan.sizes.entries()) {
    const isTarget = sameSize(size, plan.target);
    const keep = isPartialSize(size);
    const gen = generate(size.n, size.m, plan.seed);
    const snap = gen.snapshot;
    const u = units(size);
    if (!ctx.results.workloads.some((w) => sameSize(w.size, size))) ctx.results.workloads.push({ size, counts: counts(snap) });
    const rows = new Map<string, FullSyncRow>(loaders.map((l) => [l.id, { loader: l.id, size, runs: [] }]));
    for (const r of rows.values()) ctx.results.fullSync.push(r);

    // Keep room for the sizes still to come that the targets need: the target (nftproxy and
    // the CLI `runs` times, every other loader once: its figure, its data-plane lab) and the
    // partial-sync sizes (nftproxy and the CLI once).
    let reserve = 0;
    for (const later of plan.sizes.slice(si + 1)) {
      const tgt = sameSize(later, plan.target);
      if (!tgt && !isPartialSize(later)) continue;
      for (const l of loaders) {
        if (dead.has(l.id)) continue;
        const times = tgt ? (l.priority === 0 ? plan.runs : 1) : l.priority === 0 ? 1 : 0;
        const p = predict(hist.get(l.id)!, units(later), defaultExp(l));
        if (times && p !== undefined && p <= capMs) reserve += (p + OVERHEAD_MS) * times;
      }
    }
    const pred = new Map<string, number | undefined>();
    for (const l of loaders) {
      const row = rows.get(l.id)!;
      if (dead.has(l.id)) { row.note = dead.get(l.id); continue; }
      const raw = predict(hist.get(l.id)!, u, defaultExp(l));
      const p = raw === undefined ? undefined : raw + OVERHEAD_MS;
      pred.set(l.id, p);
      if (p !== undefined) row.predictedMs = Math.round(p);
      if (p !== undefined && p > capMs) row.note = `skipped: predicted ${fmtMs(p)} per load > per-load cap ${plan.loadTimeoutSec} s`;
    }
    const runsFor = decideRuns({
      order: byPriority.filter((l) => !dead.has(l.id)).map((l) => ({ id: l.id, priority: l.priority })),
      pred, capMs, runs: plan.runs, availableMs: remainingMs() - reserve, learning: si < plan.sizes.findIndex((x) => sameSize(x, plan.target)),
    });
    for (const l of loaders) {
      const row = rows.get(l.id)!, runs = runsFor.get(l.id) ?? 0, p = pred.get(l.id);
      if (dead.has(l.id) || row.note) continue;
      if (runs === 0) row.note = `skipped: predicted ${fmtMs(p)} per load does not fit the remaining budget`;
      else if (runs < plan.runs) row.note = p === undefined ? `${runs} run: its first size, to price the next` : `${runs} run only: predicted ${fmtMs(p)} per load, budget`;
    }
    const filesHere = loaders.filter((l) => l.kind !== 'nftproxy' && (runsFor.get(l.id) ?? 0) > 0);
    progress.replan(1 + filesHere.length + [...runsFor.values()].reduce((a, b) => a + b, 0) - (loaders.length + loaders.length * plan.runs));

    // inputs: the model (the partial-sync phase starts from it), the CLI's text of nftproxy's
    // own kernel objects, every peer's load file
    const model = await progress.step(`${sizeLabel(size)}: build model (nftproxy's objects for the CLI and the partial syncs)`, async () => modelOf(snap), (m) => `${m.services.length} services`);
    if (isTarget) ctx.target = { gen, model, loaded: new Set() };
    if (keep) ctx.partialAt.set(sizeLabel(size), { gen, model });
    const files = new Map<string, string>();
    for (const l of filesHere) {
      const file = join(ctx.tmp, `${l.id}-${size.n}x${size.m}.in`);
      const st = await progress.step(`${sizeLabel(size)} ${l.id}: write input`, async () => {
        if (l.kind === 'cli') {
          const text = tablesText(compileParts(model, cfg).map(kernelFamily));
          await writeFile(file, text);
          let lines = 0;
          for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines++;
          return { lines, bytes: Buffer.byteLength(text) };
        }
        return l.layout!.writeFull(snap, file);
      }, (s) => `${s.lines.toLocaleString('en')} lines, ${fmtMB(s.bytes / 2 ** 20)}`);
      rows.get(l.id)!.lines = st.lines;
      rows.get(l.id)!.bytes = st.bytes;
      files.set(l.id, file);
    }
    for (const l of loaders) if (!runsFor.get(l.id)) progress.skip(`${sizeLabel(size)} ${l.id}`, rows.get(l.id)!.note ?? 'budget');

    const maxRuns = Math.max(0, ...runsFor.values());
    for (let r = 1; r <= maxRuns; r++) {
      const order = loaders.map((_, i) => loaders[(i + r - 1) % loaders.length]!);
      for (const l of order) {
        const runs = runsFor.get(l.id) ?? 0;
        if (r > runs || dead.has(l.id)) continue;
        const row = rows.get(l.id)!;
        // the first run at the target goes into the loader's data-plane lab; at a partial-sync
        // size nftproxy's and the CLI's into namespaces kept for that phase
        const intoLab = isTarget && r === 1 && l.dataplane;
        const keepNs = !intoLab && keep && r === 1 && l.kind !== 'peer';
        if (r > 1 && remainingMs() < 0) {
          row.note = `${r - 1} of ${runs} runs: the phase budget ran out`;
          progress.replan(-1);
          progress.skip(`${sizeLabel(size)} ${l.id} run ${r}/${runs}`, 'the phase budget ran out');
          continue;
        }
        // never overrun the phase budget by much: a load is killed at the cap or 30 s after
        // the budget is gone (a minute is always allowed)
        const timeoutMs = Math.round(Math.min(capMs, Math.max(60_000, remainingMs() + 30_000)));
        const label = `${sizeLabel(size)} ${l.id} run ${r}/${runs}${intoLab ? ' (into its data-plane lab)' : keepNs ? ' (kept for the partial syncs)' : ''}`;
        let result: LoadRun;
        try {
          result = await progress.step(label, async () => {
            let ns: Netns;
            if (intoLab) {
              const lab = await createLab(labTag(l.id), dataplaneAddrs(snap));
              ctx.labs.set(l.id, lab);
              ns = lab.node;
            } else ns = await Netns.create(keepNs ? (l.kind === 'cli' ? 'pc' : 'pn') : 'fs');
            let kept = intoLab || keepNs;
            try {
              const out = l.kind === 'nftproxy' ? await workerLoad(ctx, size, ns, timeoutMs) : await fileLoad(ns, l, files.get(l.id)!, timeoutMs);
              if (!out.ok) throw Object.assign(new Error(out.timedOut ? `killed after ${fmtMs(timeoutMs)} (${timeoutMs >= capMs ? 'per-load cap' : 'budget'})` : `loader failed: ${out.error?.split('\n')[0]}`), { run: out });
              if (out.worker) { row.lines = out.worker.ops; row.bytes = out.worker.bytes; }
              if (keepNs) {
                const st = ctx.partialAt.get(sizeLabel(size))!;
                if (l.kind === 'cli') st.cli = ns; else st.nftproxy = ns;
              }
              return out;
            } catch (e) {
              kept = false;
              throw e;
            } finally {
              if (!kept) { await ns.flushRules(); await ns.destroy(); }
            }
          }, (x) => `${fmtMs(x.ms)}${x.syncMs !== undefined ? ` (Applier.sync ${fmtMs(x.syncMs)})` : ''}, peak RSS ${fmtMB(x.rssMB)}${x.sysSec !== undefined ? `, CPU user ${x.userSec?.toFixed(1)} s / kernel ${x.sysSec.toFixed(1)} s` : ''}`);
          if (intoLab) ctx.target!.loaded.add(l.id);
        } catch (e) {
          result = (e as { run?: LoadRun }).run ?? { ms: NaN, rssMB: undefined, ok: false, timedOut: false, error: (e as Error).message.slice(0, 500) };
          dead.set(l.id, result.timedOut ? `skipped: killed at a smaller size (${sizeLabel(size)})` : `skipped: failed at ${sizeLabel(size)}`);
          row.note = result.timedOut ? `killed after ${fmtMs(timeoutMs)}: ${timeoutMs >= capMs ? 'per-load cap' : 'budget'}` : `failed: ${result.error}`;
          if (intoLab) { await ctx.labs.get(l.id)?.destroy(); ctx.labs.delete(l.id); }
          progress.replan(-(runs - r));
        }
        row.runs.push(result);
      }
    }
    for (const l of loaders) {
      const row = rows.get(l.id)!;
      const good = row.runs.filter((x) => x.ok);
      if (good.length) {
        row.medianMs = median(good.map((x) => x.ms));
        const rss = good.map((x) => x.rssMB).filter((x): x is number => x !== undefined);
        if (rss.length) row.medianRssMB = median(rss);
        // the budget prices a load by what it costs the run: for nftproxy the whole worker
        hist.get(l.id)!.push({ units: u, ms: median(good.map((x) => x.costMs ?? x.ms)) });
      }
    }
    for (const f of files.values()) await rm(f, { force: true });
  }
  ctx.results.notes.push(`Full sync: ${((performance.now() - t0) / 1000).toFixed(0)} s of a ${plan.budget.fullSync} s budget. Each load is predicted from the loader's own smaller sizes; a loader runs ${plan.runs} times when that fits, once when only that fits, else not (see the notes column).`);
}

/** nftproxy: the sync worker, a fresh process, writing into `ns`. */
async function workerLoad(ctx: Ctx, size: Size, ns: Netns, timeoutMs: number): Promise<LoadRun> {
  const t = performance.now();
  const r = await run([process.execPath, '--max-old-space-size=16384', SYNC_WORKER, String(size.n), String(size.m), String(ctx.plan.seed), `/run/netns/${ns.name}`], { timeoutMs });
  const costMs = performance.now() - t;
  if (r.exitCode !== 0) return { ms: NaN, rssMB: undefined, ok: false, timedOut: r.timedOut, error: r.stderr.trim().split('\n').slice(-3).join(' | ') || 'failed' };
  const w = JSON.parse(r.stdout) as WorkerOut;
  return { ms: w.writerMs, rssMB: w.hwmMB, ok: true, timedOut: false, syncMs: w.syncMs, writerMs: w.writerMs, costMs, worker: { modelMs: w.modelMs, compileMs: w.compileMs, objectsMs: w.objectsMs, ops: w.ops, bytes: w.bytes } };
}

/** The CLI or a peer: its load file, under /usr/bin/time. */
async function fileLoad(ns: Netns, l: Loader, file: string, timeoutMs: number): Promise<LoadRun> {
  const cmd = l.kind === 'cli' ? ['nft', '-f', file] : l.layout!.loadCmd(file);
  const load = await timedLoad(ns, cmd, { timeoutMs });
  return {
    ms: load.ms, rssMB: load.rssKB !== undefined ? load.rssKB / 1024 : undefined, ok: load.ok, timedOut: load.timedOut,
    ...(load.userSec !== undefined ? { userSec: load.userSec } : {}), ...(load.sysSec !== undefined ? { sysSec: load.sysSec } : {}),
    ...(load.ok ? {} : { error: load.stderr.slice(0, 500) || 'failed' }),
  };
}

export const labTag = (id: string): string => ({ nftproxy: 'np', 'kp-nft-numgen': 'e3', 'kp-nft-shared': 'e4', 'kp-nft-chains': 'e2', 'kp-iptables-legacy': 'il', 'kp-iptables-nft': 'in', direct: 'dir', dnat1: 'dn1' } as Record<string, string>)[id] ?? 'x';

export type { Size };

// Full sync into a fresh namespace: wall time and peak RSS of the loading process (nft or
// iptables-restore), for nftproxy (Applier.sync full, its own transaction) and each peer layout
// (its load file), runs interleaved. At the target size the first run of each loader goes into
// the node namespace of its data-plane lab, where the partial-sync and data-plane phases use it.
//
// Budget: every load is predicted from the loader's own history at smaller sizes
// (t ∝ units^e, e fitted from the last two sizes, default 2 for upstream's nft layouts whose
// cost grows about quadratically, 1.2 otherwise). A loader runs `runs` times if that fits in
// what is left of the phase budget (keeping a reserve for the target size), else once, else
// not at all; and never when one load is predicted past the per-load cap.
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { Applier, MeasuringWriter, compile, modelOf, proxyConfig } from '../nftproxy.js';
import { createLab } from '../lab.js';
import { Netns, timedLoad } from '../sys.js';
import { median, fmtMs, fmtMB } from '../stats.js';
import { type Size, sameSize, sizeLabel } from '../plan.js';
import { counts, generate, type Snapshot } from '../workload.js';
import type { Ctx, FullSyncRow, LoadRun, Loader } from '../results.js';

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
 * is left: the critical loaders (nftproxy, always at least once; the inline-numgen layout) up
 * to `runs`; then one run of every other loader; then their other runs. An unknown prediction
 * (no history yet) always fits; a load predicted past the cap never runs.
 */
export function decideRuns(o: { order: { id: string; critical: boolean }[]; pred: ReadonlyMap<string, number | undefined>; capMs: number; runs: number; availableMs: number }): Map<string, number> {
  const out = new Map<string, number>();
  let committed = 0;
  const grant = (id: string, runs: number): void => {
    const have = out.get(id) ?? 0;
    const p = o.pred.get(id);
    if (have >= runs || (p !== undefined && p > o.capMs)) return;
    const cost = (p ?? 0) * (runs - have);
    if (p === undefined || (id === 'nftproxy' && have === 0) || cost <= o.availableMs - committed) {
      out.set(id, runs);
      committed += cost;
    }
  };
  for (const x of o.order.filter((x) => x.critical)) { grant(x.id, 1); grant(x.id, o.runs); }
  for (const x of o.order.filter((x) => !x.critical)) grant(x.id, 1);
  for (const x of o.order.filter((x) => !x.critical)) grant(x.id, o.runs);
  return out;
}

export function dataplaneAddrs(snap: Snapshot): string[] {
  const first = snap.services[0]!, last = snap.services[snap.services.length - 1]!;
  return [...first.endpoints, ...last.endpoints].map((e) => e.ip);
}

export async function fullSyncPhase(ctx: Ctx): Promise<void> {
  const { plan, progress, loaders } = ctx;
  const cfg = proxyConfig();
  const hist = new Map<string, Hist[]>(loaders.map((l) => [l.id, []]));
  const dead = new Map<string, string>();
  const t0 = performance.now();
  const remainingMs = (): number => plan.budget.fullSync * 1000 - (performance.now() - t0);
  const capMs = plan.loadTimeoutSec * 1000;
  // upstream's nft layouts bind an anonymous map per service port (~quadratic at scale)
  const defaultExp = (l: Loader): number => (l.id.startsWith('kp-nft') ? plan.superlinearExp : 1.2);
  const OVERHEAD_MS = 400; // namespace create / flush / delete around each load
  const targetIdx = plan.sizes.findIndex((s) => sameSize(s, plan.target));
  const targetUnits = unitsOf(generate(plan.target.n, plan.target.m, plan.seed).snapshot);
  const priority = (id: string): number => (id === 'nftproxy' ? 0 : id === 'kp-nft-numgen' ? 1 : 2);
  const byPriority = [...loaders].sort((a, b) => priority(a.id) - priority(b.id));

  progress.phase('full', 'Full sync into a fresh namespace', `${plan.sizes.map(sizeLabel).join(', ')}; ${plan.runs} runs each, interleaved; budget ${fmtMs(plan.budget.fullSync * 1000)}, per-load cap ${plan.loadTimeoutSec} s`);

  for (const [si, size] of plan.sizes.entries()) {
    const isTarget = sameSize(size, plan.target);
    const gen = generate(size.n, size.m, plan.seed);
    const snap = gen.snapshot;
    const units = unitsOf(snap);
    if (!ctx.results.workloads.some((w) => sameSize(w.size, size))) ctx.results.workloads.push({ size, counts: counts(snap) });
    const rows = new Map<string, FullSyncRow>(loaders.map((l) => [l.id, { loader: l.id, size, runs: [] }]));
    for (const r of rows.values()) ctx.results.fullSync.push(r);

    // How many runs each loader gets here. Before the target size, keep a reserve for the
    // target size (3 runs of nftproxy, 1 of the inline-numgen layout, the targets' reference,
    // whose one load at 10k takes minutes, and 1 of each other loader). Decisions in this order, each taken if its predicted cost
    // fits what is left: nftproxy (always), the inline-numgen layout, both up to `runs`; then
    // one run of each other loader (the data-plane lab needs one at the target size); then
    // their other runs.
    let reserve = 0;
    if (si < targetIdx) {
      for (const l of loaders) {
        if (dead.has(l.id)) continue;
        const p = predict(hist.get(l.id)!, targetUnits, defaultExp(l));
        if (p !== undefined && p <= capMs) reserve += (p + OVERHEAD_MS) * (priority(l.id) === 0 ? plan.runs : 1);
      }
    }
    const pred = new Map<string, number | undefined>();
    for (const l of loaders) {
      const row = rows.get(l.id)!;
      if (dead.has(l.id)) { row.note = dead.get(l.id); continue; }
      const raw = predict(hist.get(l.id)!, units, defaultExp(l));
      const p = raw === undefined ? undefined : raw + OVERHEAD_MS;
      pred.set(l.id, p);
      if (p !== undefined) row.predictedMs = Math.round(p);
      if (p !== undefined && p > capMs) row.note = `skipped: predicted ${fmtMs(p)} per load > per-load cap ${plan.loadTimeoutSec} s`;
    }
    const runsFor = decideRuns({
      order: byPriority.map((l) => ({ id: l.id, critical: priority(l.id) <= 1 })).filter((x) => !dead.has(x.id)),
      pred, capMs, runs: plan.runs, availableMs: remainingMs() - reserve,
    });
    for (const l of loaders) {
      const row = rows.get(l.id)!, runs = runsFor.get(l.id) ?? 0, p = pred.get(l.id);
      if (dead.has(l.id) || row.note) continue;
      if (runs === 0) row.note = `skipped: predicted ${fmtMs(p)} per load does not fit the remaining budget`;
      else if (runs < plan.runs) row.note = `${runs} run only: predicted ${fmtMs(p)} per load, budget`;
    }
    const peersHere = loaders.filter((l) => l.layout && (runsFor.get(l.id) ?? 0) > 0);
    progress.replan(1 + peersHere.length + [...runsFor.values()].reduce((a, b) => a + b, 0) - (loaders.length + loaders.length * plan.runs));

    // inputs
    const np = await progress.step(`${sizeLabel(size)} nftproxy: build model + compile`, async () => {
      const model = modelOf(snap);
      return { model, ruleset: compile(model, cfg) };
    }, (r) => `${r.ruleset.servicePorts.length} service ports`);
    if (isTarget) ctx.target = { gen, model: np.model, loaded: new Set() };
    const files = new Map<string, string>();
    for (const l of peersHere) {
      const file = join(ctx.tmp, `${l.id}-${size.n}x${size.m}.in`);
      const st = await progress.step(`${sizeLabel(size)} ${l.id}: write input`, () => l.layout!.writeFull(snap, file), (s) => `${s.lines.toLocaleString('en')} lines, ${fmtMB(s.bytes / 2 ** 20)}`);
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
        // at the target size the first run goes into the data-plane lab (kept), so that the
        // later, measurement-only runs can be dropped when the budget is gone
        const intoLab = isTarget && r === 1;
        if (r > 1 && remainingMs() < 0) {
          row.note = `${r - 1} of ${runs} runs: the phase budget ran out`;
          progress.replan(-1);
          progress.skip(`${sizeLabel(size)} ${l.id} run ${r}/${runs}`, 'the phase budget ran out');
          continue;
        }
        // never overrun the phase budget by much: a load is killed at the cap or 30 s after
        // the budget is gone (a minute is always allowed)
        const timeoutMs = Math.round(Math.min(capMs, Math.max(60_000, remainingMs() + 30_000)));
        const label = `${sizeLabel(size)} ${l.id} run ${r}/${runs}${intoLab ? ' (into its data-plane lab)' : ''}`;
        let run: LoadRun;
        try {
          run = await progress.step(label, async () => {
            let ns: Netns;
            if (intoLab) {
              const lab = await createLab(labTag(l.id), dataplaneAddrs(snap));
              ctx.labs.set(l.id, lab);
              ns = lab.node;
            } else ns = await Netns.create('fs');
            try {
              if (!l.layout) {
                const writer = new MeasuringWriter(ns);
                const applier = new Applier(writer);
                const res = await applier.syncRuleset(np.ruleset, { full: true });
                row.lines = writer.lastOps;
                row.bytes = writer.lastBytes;
                if (intoLab) { ctx.target!.applier = applier; ctx.target!.runner = writer; } else await writer.close();
                return { ms: writer.lastMs, rssMB: writer.lastRssKB !== undefined ? writer.lastRssKB / 1024 : undefined, ok: true, timedOut: false, syncMs: res.durationMs } satisfies LoadRun;
              }
              const load = await timedLoad(ns, l.layout.loadCmd(files.get(l.id)!), { timeoutMs });
              const out: LoadRun = { ms: load.ms, rssMB: load.rssKB !== undefined ? load.rssKB / 1024 : undefined, ok: load.ok, timedOut: load.timedOut, ...(load.ok ? {} : { error: load.stderr.slice(0, 500) || 'failed' }) };
              if (!load.ok) throw Object.assign(new Error(load.timedOut ? `killed after ${fmtMs(timeoutMs)} (${timeoutMs >= capMs ? 'per-load cap' : 'budget'})` : `loader failed: ${load.stderr.split('\n')[0]}`), { run: out });
              return out;
            } finally {
              if (!intoLab) { await ns.flushRules(); await ns.destroy(); }
            }
          }, (x) => `${fmtMs(x.ms)}, peak RSS ${fmtMB(x.rssMB)}`);
          if (intoLab) ctx.target!.loaded.add(l.id);
        } catch (e) {
          run = (e as { run?: LoadRun }).run ?? { ms: NaN, rssMB: undefined, ok: false, timedOut: false, error: (e as Error).message.slice(0, 500) };
          dead.set(l.id, run.timedOut ? `skipped: killed at a smaller size (${sizeLabel(size)})` : `skipped: failed at ${sizeLabel(size)}`);
          row.note = run.timedOut ? `killed after ${fmtMs(timeoutMs)}: ${timeoutMs >= capMs ? 'per-load cap' : 'budget'}` : `failed: ${run.error}`;
          if (intoLab) { await ctx.labs.get(l.id)?.destroy(); ctx.labs.delete(l.id); }
          progress.replan(-(runs - r));
        }
        row.runs.push(run);
      }
    }
    for (const l of loaders) {
      const row = rows.get(l.id)!;
      const good = row.runs.filter((x) => x.ok);
      if (good.length) {
        row.medianMs = median(good.map((x) => x.ms));
        const rss = good.map((x) => x.rssMB).filter((x): x is number => x !== undefined);
        if (rss.length) row.medianRssMB = median(rss);
        hist.get(l.id)!.push({ units, ms: row.medianMs });
      }
    }
    for (const f of files.values()) await rm(f, { force: true });
  }
  ctx.results.notes.push(`Full sync: ${((performance.now() - t0) / 1000).toFixed(0)} s of a ${plan.budget.fullSync} s budget. Each load is predicted from the loader's own smaller sizes; a loader runs ${plan.runs} times when that fits, once when only that fits, else not (see the notes column).`);
}

export const labTag = (id: string): string => ({ nftproxy: 'np', 'kp-nft-numgen': 'e3', 'kp-nft-chains': 'e2', 'kp-iptables-legacy': 'il', 'kp-iptables-nft': 'in', direct: 'dir', dnat1: 'dn1' } as Record<string, string>)[id] ?? 'x';

export type { Size };

// Reconciling two models of upstream's 1.36+ layout. The bench's `kp-nft-numgen` (every
// feature: NodePort/LoadBalancer chains, session affinity's endpoint chains and dynamic sets,
// hairpin elements) loaded in minutes at 10k × 10, an independent model (a chain per service
// with one `dnat … numgen random mod N map { … }` rule, ClusterIP only) in ~14 s. Here the
// same services are loaded with each feature on or off (one `nft -f` each, in a fresh
// namespace, under /usr/bin/time: user-space vs kernel CPU), with a census of what each load
// holds (chains, rules, anonymous maps, named sets, elements): which features make the
// difference. The full-sync phase has both shapes (kp-nft-numgen, kp-nft-numgen-min) and the
// shared-map proposal at the target size; here, at the target, one more load: the minimal
// shape with one port per service, the independent model's exact shape.
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { ALL_FEATURES, NO_FEATURES, nftLayout, type Features } from '../peers/kp-nft.js';
import { Netns, timedLoad } from '../sys.js';
import { fmtMs, fmtMB } from '../stats.js';
import { sameSize, sizeLabel, type Size } from '../plan.js';
import { generate, type Snapshot } from '../workload.js';
import type { Ctx, LoadRun, ReconcileRow } from '../results.js';

interface Variant { id: string; features: Features; onePort?: boolean; what: string }

const VARIANTS: Variant[] = [
  { id: 'all', features: ALL_FEATURES, what: 'every feature (= kp-nft-numgen)' },
  { id: 'none', features: NO_FEATURES, what: 'none (= kp-nft-numgen-min): ClusterIP only, no affinity, no hairpin' },
  { id: 'none+affinity', features: { ...NO_FEATURES, affinity: true }, what: 'session affinity only' },
  { id: 'all-affinity', features: { ...ALL_FEATURES, affinity: false }, what: 'every feature but session affinity' },
  { id: 'none+external', features: { ...NO_FEATURES, external: true }, what: 'NodePort/LoadBalancer only' },
  { id: 'all-external', features: { ...ALL_FEATURES, external: false }, what: 'every feature but NodePort/LoadBalancer' },
  { id: 'all-hairpin', features: { ...ALL_FEATURES, hairpin: false }, what: 'every feature but hairpin elements' },
  { id: 'none, 1 port', features: NO_FEATURES, onePort: true, what: 'none, and one port per service (the independent model\'s shape)' },
];

const onePort = (snap: Snapshot): Snapshot => ({ ...snap, services: snap.services.map((s) => ({ ...s, ports: [s.ports[0]!] })) });

export async function reconcilePhase(ctx: Ctx): Promise<void> {
  const { plan, progress } = ctx;
  const size = plan.reconcileSize;
  progress.phase('reconcile', 'Upstream\'s 1.36+ layout: which features cost the load', `${sizeLabel(size)}, one load per variant (budget ${fmtMs(plan.budget.reconcile * 1000)}); and the independent model's shape at ${sizeLabel(plan.target)}`);
  const t0 = performance.now();
  const left = (): number => plan.budget.reconcile * 1000 - (performance.now() - t0);
  const snap = generate(size.n, size.m, plan.seed).snapshot;
  const rows: ReconcileRow[] = [];
  for (const v of VARIANTS) {
    if (left() < 0) { rows.push({ id: v.id, features: v.what, size, note: 'skipped: budget' }); progress.skip(v.id, 'budget'); continue; }
    rows.push(await oneLoad(ctx, v, size, v.onePort ? onePort(snap) : snap, Math.max(60_000, left() + 30_000)));
  }
  // at the target: the independent model's shape (its ~14 s figure), if the small size prices it in
  const small = rows.find((r) => r.id === 'none, 1 port')?.run;
  if (!sameSize(size, plan.target) && small?.ok) {
    const units = (s: Size): number => s.n * (1 + s.m);
    const predicted = small.ms * (units(plan.target) / units(size)) ** 2;
    const v = VARIANTS.find((x) => x.id === 'none, 1 port')!;
    if (predicted <= Math.max(left(), 60_000)) rows.push(await oneLoad(ctx, v, plan.target, onePort(ctx.target?.gen.snapshot ?? generate(plan.target.n, plan.target.m, plan.seed).snapshot), Math.min(plan.loadTimeoutSec * 1000, predicted * 4 + 30_000)));
    else rows.push({ id: v.id, features: v.what, size: plan.target, note: `skipped: predicted ${fmtMs(predicted)}, budget` });
  }
  ctx.results.reconcile = { size, rows };
}

async function oneLoad(ctx: Ctx, v: Variant, size: Size, snap: Snapshot, timeoutMs: number): Promise<ReconcileRow> {
  const layout = nftLayout('E3', v.features, { id: `kp-nft-numgen[${v.id}]`, label: v.what });
  const file = join(ctx.tmp, `reconcile-${v.id.replace(/[^a-z0-9]+/gi, '-')}-${size.n}x${size.m}.nft`);
  const census = layout.census!(snap);
  const row: ReconcileRow = { id: v.id, features: v.what, size, census };
  try {
    return await ctx.progress.step(`${sizeLabel(size)} ${v.id}`, async () => {
      const st = await layout.writeFull(snap, file);
      row.lines = st.lines;
      const ns = await Netns.create('rc');
      try {
        const l = await timedLoad(ns, ['nft', '-f', file], { timeoutMs });
        const run: LoadRun = { ms: l.ms, rssMB: l.rssKB !== undefined ? l.rssKB / 1024 : undefined, ok: l.ok, timedOut: l.timedOut, ...(l.userSec !== undefined ? { userSec: l.userSec } : {}), ...(l.sysSec !== undefined ? { sysSec: l.sysSec } : {}), ...(l.ok ? {} : { error: l.stderr.slice(0, 300) }) };
        row.run = run;
        if (!l.ok) row.note = l.timedOut ? `killed after ${fmtMs(timeoutMs)}` : `failed: ${l.stderr.split('\n')[0]}`;
        return row;
      } finally {
        await ns.flushRules();
        await ns.destroy();
        await rm(file, { force: true });
      }
    }, (r) => `${fmtMs(r.run?.ms)} (CPU user ${r.run?.userSec?.toFixed(1) ?? '?'} s, kernel ${r.run?.sysSec?.toFixed(1) ?? '?'} s), peak RSS ${fmtMB(r.run?.rssMB)}; ${census.anonMaps.toLocaleString('en')} anonymous maps, ${census.namedSets.toLocaleString('en')} named sets, ${census.rules.toLocaleString('en')} rules, ${census.elements.toLocaleString('en')} elements`);
  } catch (e) {
    row.note = `failed: ${(e as Error).message.split('\n')[0]}`;
    return row;
  }
}

// nftproxy alone: the whole-cluster compile on the daemon's path (build model, compileParts,
// kernel objects, the full sync's netlink batch encoded in memory), times and heap, each run
// in a fresh Node process (compile-worker.js) so that heap figures belong to the measured
// work only. The full-sync sizes plus plan.extraCompileSizes (50k × 2: nftproxy alone).
// Budgeted like the full sync: a size runs `runs` times if its predicted cost (from the
// smaller sizes) fits, else once, else not at all.
import { fileURLToPath } from 'node:url';
import { run } from '../sys.js';
import { median, fmtMs, fmtMB } from '../stats.js';
import { sameSize, sizeLabel } from '../plan.js';
import type { CompileRun, Ctx } from '../results.js';

const WORKER = fileURLToPath(new URL('../compile-worker.js', import.meta.url));

export async function compilePhase(ctx: Ctx): Promise<void> {
  const { plan, progress } = ctx;
  const sizes = [...plan.sizes, ...plan.extraCompileSizes];
  progress.phase('compile', 'nftproxy compile (the daemon\'s path, in memory)', `${sizes.map(sizeLabel).join(', ')}; ${plan.runs} runs each, a fresh process per run; budget ${fmtMs(plan.budget.compile * 1000)}`);
  const t0 = performance.now();
  const hist: { units: number; ms: number }[] = [];
  for (const size of sizes) {
    const units = size.n * (1 + size.m);
    const last = [...hist].sort((a, b) => Math.abs(a.units - units) - Math.abs(b.units - units))[0];
    const predicted = last ? last.ms * (units / last.units) ** 1.1 : undefined;
    const left = plan.budget.compile * 1000 - (performance.now() - t0);
    // the sizes the targets and tables need always get one run: the target, the partial-sync
    // sizes, the extra sizes (nftproxy alone)
    const extra = plan.extraCompileSizes.includes(size) || sameSize(size, plan.target) || plan.partialSizes.some((x) => sameSize(x, size));
    const runsHere = predicted === undefined || predicted * plan.runs <= left ? plan.runs : predicted <= left || extra ? 1 : 0;
    if (runsHere === 0) {
      progress.replan(-plan.runs);
      progress.skip(sizeLabel(size), `predicted ${fmtMs(predicted)} per run does not fit the remaining budget`);
      ctx.results.compile.push({ size, runs: [], note: `skipped: predicted ${fmtMs(predicted)} per run, budget` });
      continue;
    }
    progress.replan(runsHere - plan.runs);
    const runs: CompileRun[] = [];
    for (let r = 1; r <= runsHere; r++) {
      const t = performance.now();
      runs.push(await progress.step(`${sizeLabel(size)} run ${r}/${runsHere}`, async () => {
        const res = await run([process.execPath, '--expose-gc', '--max-old-space-size=16384', WORKER, String(size.n), String(size.m), String(plan.seed)], { timeoutMs: 600_000 });
        if (res.exitCode !== 0) throw new Error(`compile worker failed: ${res.stderr.trim().split('\n').slice(-3).join(' | ')}`);
        return JSON.parse(res.stdout) as CompileRun;
      }, (x) => `model ${fmtMs(x.buildMs)}, compile ${fmtMs(x.compileMs)}, kernel objects ${fmtMs(x.objectsMs)}, encode ${fmtMs(x.encodeMs)} (${fmtMB(x.batchMB)}), heap +${fmtMB(x.heapUsedDeltaMB)} (retained ${fmtMB(x.heapRetainedMB)}), peak RSS ${fmtMB(x.rssPeakMB)}`));
      if (r === 1) hist.push({ units, ms: performance.now() - t });
    }
    const med = (f: (c: CompileRun) => number): number => median(runs.map(f));
    ctx.results.compile.push({
      size, runs,
      ...(runsHere < plan.runs ? { note: `${runsHere} run only: predicted ${fmtMs(predicted)} per run, budget` } : {}),
      median: { buildMs: med((c) => c.buildMs), compileMs: med((c) => c.compileMs), objectsMs: med((c) => c.objectsMs), encodeMs: med((c) => c.encodeMs), heapUsedDeltaMB: med((c) => c.heapUsedDeltaMB), heapRetainedMB: med((c) => c.heapRetainedMB), rssPeakMB: med((c) => c.rssPeakMB), ops: runs[0]!.ops, batchMB: runs[0]!.batchMB },
    });
  }
}

// What a run measures and how much time it may spend. The full run fits 30 minutes by a
// budget per phase: the full-sync phase predicts each load from the smaller sizes and runs a
// slow peer fewer times, or not at all at a size that does not fit (and says so).

export interface Size { readonly n: number; readonly m: number }

export interface Plan {
  readonly quick: boolean;
  readonly seed: number;
  /** compile and full-sync sizes, in the order they run (the target size among them) */
  readonly sizes: readonly Size[];
  /** partial sync, daemon, data plane and the targets run at this size */
  readonly target: Size;
  readonly runs: number;
  /** endpoint changes for nftproxy (always); add / delete changes and every peer's changes
   * get as many as the partial budget allows, between partialMin and partialChanges */
  readonly partialChanges: number;
  readonly partialMin: number;
  readonly daemonRuns: number;
  readonly daemonSettleMs: number;
  readonly dataplane: { readonly seconds: number; readonly concurrency: number; readonly rounds: number; readonly warmupSeconds: number };
  /** seconds per phase (the data plane has a fixed cost) */
  readonly budget: { readonly compile: number; readonly fullSync: number; readonly partial: number; readonly daemon: number };
  /** one load taking longer than this is killed (and the peer skipped at larger sizes) */
  readonly loadTimeoutSec: number;
  /** the whole run; the data plane shortens its rounds to end by then */
  readonly totalSec: number;
  /** growth exponent assumed for upstream's nft layouts until two sizes are measured (their
   * load cost grows about quadratically at scale, less at small sizes) */
  readonly superlinearExp: number;
}

const K = 1000;

/**
 * QUICK or full. For development: BENCH_SIZES="200x10,500x10" and BENCH_TARGET="500x10"
 * replace the sizes, BENCH_BUDGET_SCALE scales every budget (and the whole-run deadline).
 */
export function makePlan(quick: boolean, env: NodeJS.ProcessEnv = process.env): Plan {
  const base = basePlan(quick, Number(env.BENCH_BUDGET_SCALE ?? '1') || 1);
  const parse = (s: string): Size => {
    const m = /^(\d+)x(\d+)$/.exec(s.trim());
    if (!m) throw new Error(`bad size ${s}: want NxM, e.g. 1000x10`);
    return { n: Number(m[1]), m: Number(m[2]) };
  };
  const sizes = env.BENCH_SIZES ? env.BENCH_SIZES.split(',').map(parse) : base.sizes;
  const target = env.BENCH_TARGET ? parse(env.BENCH_TARGET) : sizes.some((s) => sameSize(s, base.target)) ? base.target : sizes[sizes.length - 1]!;
  if (!sizes.some((s) => sameSize(s, target))) throw new Error('BENCH_TARGET must be one of BENCH_SIZES');
  return { ...base, sizes, target };
}

function basePlan(quick: boolean, scale: number): Plan {
  if (quick) {
    return {
      quick, seed: 42,
      sizes: [{ n: 200, m: 10 }, { n: 1 * K, m: 10 }],
      target: { n: 1 * K, m: 10 },
      runs: 3, partialChanges: 50, partialMin: 5,
      daemonRuns: 3, daemonSettleMs: 1000,
      dataplane: { seconds: 0.5, concurrency: 8, rounds: 3, warmupSeconds: 0.2 },
      budget: { compile: 10 * scale, fullSync: 38 * scale, partial: 15 * scale, daemon: 12 * scale },
      loadTimeoutSec: 60,
      totalSec: 120,
      superlinearExp: 1.5,
    };
  }
  return {
    quick, seed: 42,
    // M=10 first, ascending, ending at the target size; then M=50 as far as the budget goes.
    sizes: [{ n: 1 * K, m: 10 }, { n: 5 * K, m: 10 }, { n: 10 * K, m: 10 }, { n: 1 * K, m: 50 }, { n: 5 * K, m: 50 }, { n: 10 * K, m: 50 }],
    target: { n: 10 * K, m: 10 },
    runs: 3, partialChanges: 50, partialMin: 10,
    daemonRuns: 3, daemonSettleMs: 5000,
    dataplane: { seconds: 2, concurrency: 8, rounds: 5, warmupSeconds: 0.5 },
    // the full-sync budget fits one load of upstream's inline-numgen layout at 10k x 10 (~320 s
    // here: the full-sync target's reference) and still 3 runs of nftproxy there
    budget: { compile: 150 * scale, fullSync: 1000 * scale, partial: 240 * scale, daemon: 150 * scale },
    loadTimeoutSec: 420,
    totalSec: 29 * 60 * scale,
    // upstream's nft layouts from 1k to 5k (x10) in the 2026-11-24 run: numgen 0.97 s -> 55.9 s,
    // chains 3.76 s -> 199 s: e ≈ 2.5 (per-endpoint affinity sets and per-service anonymous
    // maps, both quadratic in the kernel); 2.4 keeps the first prediction slightly low
    superlinearExp: 2.4,
  };
}

export const sizeLabel = (s: Size): string => `${s.n >= 1000 && s.n % 1000 === 0 ? `${s.n / 1000}k` : s.n}×${s.m}`;
export const sameSize = (a: Size, b: Size): boolean => a.n === b.n && a.m === b.m;

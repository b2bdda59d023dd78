// `make bench` as a smoke check of the harness (no timing assertions; the figures belong to
// the bench): a tiny QUICK run, 60 services x 3 endpoints with short budgets, must finish,
// clean up, and write its four result files with every phase and target accounted for: every
// loader, the writer and the CLI through the same changes, the daemon on manifests and on the
// fake API server, both encoders' batches accepted by the kernel, the reconcile loads.
import { execa } from 'execa';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = new URL('../../', import.meta.url).pathname;
const root = process.getuid?.() === 0;

describe.skipIf(!root)(`make bench QUICK=1 (smoke, tiny sizes)${root ? '' : ' [skipped: needs root]'}`, () => {
  it('runs every phase, cleans up, writes results.json, summary.md and two SVGs', async () => {
    mkdirSync(join(REPO, 'bench', 'results'), { recursive: true }); // absent in a fresh clone
    const before = new Set(readdirSync(join(REPO, 'bench', 'results'), { withFileTypes: true }).map((d) => d.name));
    const proc = execa(process.execPath, [join(REPO, 'bench/dist/bench/src/main.js'), '--quick'], {
      cwd: REPO, reject: false, timeout: 240_000,
      env: { BENCH_SIZES: '60x3', BENCH_TARGET: '60x3', BENCH_BUDGET_SCALE: '0.1' },
    });
    const pid = proc.pid;
    const r = await proc;
    expect(r.exitCode, r.stderr.slice(-2000)).toBe(0);
    const made = readdirSync(join(REPO, 'bench', 'results')).filter((d) => !before.has(d));
    expect(made).toHaveLength(1);
    const dir = join(REPO, 'bench', 'results', made[0]!);
    expect(readdirSync(dir).sort()).toEqual(['conn-rate.svg', 'results.json', 'summary.md', 'sync-time.svg']);
    const res = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Record<string, unknown> & {
      targets: { name: string; status: string }[]; fullSync: { loader: string; runs: { ok: boolean }[] }[];
      partial: { rows: { loader: string; writer?: { endpoint?: { n: number } }; kinds: { endpoint?: { n: number }; count?: { n: number } }; error?: string }[] }[];
      daemon: { runs: { source: string; coldStartMs?: number; endpoint?: { n: number }; count?: { n: number }; rssAfter20MB?: number; error?: string }[] };
      encoder: { elements: number; kernelCheck?: { ts: number; libnftnl?: number } };
      reconcile: { rows: { run?: { ok: boolean } }[] };
    };
    // every loader loaded at least once, and every target has a verdict (MET / MISSED / NOT MEASURED)
    expect(new Set(res.fullSync.map((f) => f.loader))).toEqual(new Set(['nftproxy', 'nft-cli', 'kp-nft-numgen', 'kp-nft-numgen-min', 'kp-nft-shared', 'kp-nft-chains', 'kp-iptables-legacy', 'kp-iptables-nft']));
    for (const f of res.fullSync) expect(f.runs.some((x) => x.ok), f.loader).toBe(true);
    expect(res.targets.length).toBeGreaterThanOrEqual(20);
    // the writer against the CLI: the same changes through both, none refused
    const rows = res.partial[0]!.rows;
    for (const id of ['nftproxy', 'nft-cli']) {
      const row = rows.find((x) => x.loader === id)!;
      expect(row.error, id).toBeUndefined();
      expect(row.kinds.endpoint!.n, id).toBeGreaterThan(0);
      expect(row.kinds.count!.n, id).toBeGreaterThan(0);
    }
    expect(rows.find((x) => x.loader === 'nftproxy')!.writer!.endpoint!.n).toBeGreaterThan(0);
    // the daemon, manifests and API, measured from its own log
    expect(res.daemon.runs.map((x) => x.source).sort()).toEqual(['api', 'manifests']);
    for (const d of res.daemon.runs) {
      expect(d.error, d.source).toBeUndefined();
      expect(d.coldStartMs, d.source).toBeGreaterThan(0);
      expect(d.endpoint!.n, d.source).toBeGreaterThan(0);
      expect(d.rssAfter20MB, d.source).toBeGreaterThan(0);
    }
    // both encoders' batches accepted whole by the kernel
    expect(res.encoder.kernelCheck).toEqual({ ts: res.encoder.elements, libnftnl: res.encoder.elements });
    expect(res.reconcile.rows.some((x) => x.run?.ok)).toBe(true);
    for (const t of res.targets) expect(['MET', 'MISSED', 'NOT MEASURED']).toContain(t.status);
    expect(readFileSync(join(dir, 'summary.md'), 'utf8')).toContain('## Targets');
    for (const svg of ['conn-rate.svg', 'sync-time.svg']) expect(readFileSync(join(dir, svg), 'utf8')).toMatch(/^<svg[\s\S]*<\/svg>\s*$/);
    // nothing of the bench left behind
    const ns = (await execa('ip', ['netns', 'list'])).stdout;
    expect(pid).toBeGreaterThan(0);
    expect(ns).not.toMatch(new RegExp(`npx-bench-[a-z0-9]+-${pid}-`));
  }, 300_000);
});

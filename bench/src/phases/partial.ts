// Partial sync at the target size, in the tables the full-sync phase left in each lab:
// changes of three kinds (one endpoint replaced, one service added, one deleted), applied in
// turn to nftproxy and to every peer, interleaved.
//
//  * nftproxy, end to end: model change -> compile -> Applier.sync (diff + nft transaction).
//    The model edit itself (splicing one Service into the Model) is not timed.
//  * peers: the delta transaction upstream would run for the same change (generated before
//    the clock starts, then loaded with nft -f - / iptables-restore --noflush). Upstream's
//    separate stale-chain deletion transaction is timed on its own.
//
// Changes run kind by kind (first all endpoint changes, then adds, then deletes); every
// loader applies the first change of a kind, which prices it; then nftproxy gets
// plan.partialChanges endpoint changes (the target's p50/p99) and, for add and delete, what
// half of the remaining budget allows (at least plan.partialMin); each peer gets an equal part
// of the other half (at least the one change). A peer that stops early in a kind skips the
// rest of that kind's changes: its delta engine simply does not see them (the first and last
// services, which the data plane uses, are never changed).
import { compileParts, ModelEditor, proxyConfig } from '../nftproxy.js';
import { kernelFamily } from '../../../src/render/kernel/family.js';
import { LiveSnapshot, type ChangeKind } from '../workload.js';
import { quantile, fmtMs } from '../stats.js';
import type { Ctx, PartialRow, Stats } from '../results.js';
import type { DeltaEngine } from '../peers/layout.js';

const KINDS: ChangeKind[] = ['endpoint', 'add', 'delete'];

export function stats(xs: readonly number[]): Stats {
  return { n: xs.length, p50: quantile(xs, 0.5), p99: quantile(xs, 0.99), mean: xs.reduce((a, b) => a + b, 0) / (xs.length || 1), max: Math.max(...xs) };
}

export async function partialPhase(ctx: Ctx): Promise<void> {
  const { plan, progress } = ctx;
  const t = ctx.target;
  if (!t?.applier || !t.runner || !t.loaded.has('nftproxy')) {
    ctx.results.notes.push('Partial sync: skipped, nftproxy was not loaded at the target size.');
    return;
  }
  const K = plan.partialChanges;
  const cfg = proxyConfig();
  const live = new LiveSnapshot(t.gen);
  const editor = new ModelEditor(t.model);
  const runner = t.runner;
  const applier = t.applier;
  // Untimed: one full replace through the daemon's path, so the applier holds the
  // per-service record its partial syncs diff against (the full-sync phase used a ruleset).
  await applier.sync(compileParts(t.model, cfg).map(kernelFamily), { full: true });
  const t0 = performance.now();
  const leftMs = (): number => plan.budget.partial * 1000 - (performance.now() - t0);

  const peers = ctx.loaders.filter((l) => l.layout && t.loaded.has(l.id));
  progress.phase('partial', 'Partial sync', `${plan.target.n}×${plan.target.m}, in the tables the full sync left; nftproxy: ${K} endpoint changes, adds and deletes as the budget (${fmtMs(plan.budget.partial * 1000)}) allows; peers: ${peers.map((p) => p.id).join(', ') || 'none'}`);
  progress.allot('partial', 1);
  const engines = new Map<string, DeltaEngine>();
  await progress.step('prepare upstream delta engines', async () => {
    for (const p of peers) engines.set(p.id, p.layout!.deltas(t.gen.snapshot));
  }, () => `${engines.size} peers`);

  type Acc = { kinds: Record<ChangeKind, number[]>; compile: Record<ChangeKind, number[]>; nft: Record<ChangeKind, number[]>; lines: Record<ChangeKind, number[]>; stale: number[]; limit: Record<ChangeKind, number>; error?: string };
  const acc = (): Acc => ({ kinds: { endpoint: [], add: [], delete: [] }, compile: { endpoint: [], add: [], delete: [] }, nft: { endpoint: [], add: [], delete: [] }, lines: { endpoint: [], add: [], delete: [] }, stale: [], limit: { endpoint: K, add: K, delete: K } });
  const ids = ['nftproxy', ...peers.map((p) => p.id)];
  const data = new Map<string, Acc>(ids.map((id) => [id, acc()]));

  const applyOne = async (id: string, kind: ChangeKind, change: ReturnType<LiveSnapshot['apply']>, model: ReturnType<ModelEditor['apply']>, i: number): Promise<void> => {
    const a = data.get(id)!;
    if (id === 'nftproxy') {
      const c0 = performance.now();
      // the daemon's path: per-service compile memory + the incremental differ
      const parts = compileParts(model, cfg).map(kernelFamily);
      const c1 = performance.now();
      const res = await applier.sync(parts);
      const c2 = performance.now();
      if (res.kind !== 'partial') a.error = `change ${i + 1} (${kind}) ran a ${res.kind} sync`;
      a.kinds[kind].push(c2 - c0);
      a.compile[kind].push(c1 - c0);
      a.nft[kind].push(runner.lastMs);
      a.lines[kind].push(res.ops);
      return;
    }
    const layout = peers.find((p) => p.id === id)!.layout!;
    const lab = ctx.labs.get(id)!;
    const tx = await engines.get(id)!.change(change);
    // a peer's transaction may not eat the phase: killed (nothing applied: restore and nft
    // are atomic) when it runs past the budget; the peer then stops following the changes
    const timeoutMs = Math.max(30_000, leftMs() / 2);
    if (tx.pre) {
      const r = await lab.node.exec(['nft', '-f', '-'], { input: tx.pre, timeoutMs });
      if (r.exitCode !== 0) { a.error = r.timedOut ? `stale-chain delete killed after ${fmtMs(timeoutMs)} (budget)` : `stale-chain delete failed: ${r.stderr.split('\n')[0]}`; return; }
      a.stale.push(r.ms);
    }
    const r = await lab.node.exec(layout.deltaCmd(), { input: tx.text, timeoutMs });
    if (r.exitCode !== 0) { a.error = r.timedOut ? `${kind} delta killed after ${fmtMs(timeoutMs)} (budget)` : `${kind} delta failed: ${r.stderr.split('\n').slice(0, 2).join(' ')}`; return; }
    a.kinds[kind].push(r.ms);
    a.lines[kind].push(tx.lines);
  };

  for (const [ki, kind] of KINDS.entries()) {
    const doChange = async (i: number): Promise<void> => {
      const change = live.apply(kind);
      const model = editor.apply(change);
      const rot = i % ids.length;
      for (const id of [...ids.slice(rot), ...ids.slice(0, rot)]) {
        const a = data.get(id)!;
        if (a.error || i >= a.limit[kind]) continue;
        await applyOne(id, kind, change, model, i);
      }
    };
    progress.replan(1);
    await progress.step(`${kind}: first change, every loader`, () => doChange(0), () => ids.map((id) => `${id} ${fmtMs(data.get(id)!.kinds[kind][0])}`).join(', '));
    // price the rest of this kind
    const perKind = Math.max(0, leftMs()) / (KINDS.length - ki);
    const np = data.get('nftproxy')!;
    const cNp = np.kinds[kind][0] ?? 1;
    np.limit[kind] = kind === 'endpoint' ? K : Math.max(plan.partialMin, Math.min(K, Math.floor(perKind / 2 / cNp)));
    const total = np.limit[kind];
    for (const p of peers) {
      const a = data.get(p.id)!;
      const c = (a.kinds[kind][0] ?? 0) + (kind === 'endpoint' ? 0 : a.stale[a.stale.length - 1] ?? 0);
      a.limit[kind] = c > 0 ? Math.max(1, Math.min(total, Math.floor(perKind / 2 / Math.max(1, peers.length) / c))) : total;
    }
    progress.note(`${kind}: ${total} changes for nftproxy; ${peers.map((p) => `${p.id} ${data.get(p.id)!.limit[kind]}`).join(', ')}`);
    progress.replan(Math.ceil((total - 1) / 10));
    for (let from = 1; from < total; from += 10) {
      const end = Math.min(total, from + 10);
      await progress.step(`${kind}: changes ${from + 1}-${end} of ${total}`, async () => {
        for (let j = from; j < end; j++) await doChange(j);
      }, () => ids.filter((id) => data.get(id)!.kinds[kind].length).map((id) => {
        const a = data.get(id)!;
        return a.error ? `${id} error` : `${id} p50 ${fmtMs(quantile(a.kinds[kind], 0.5))}`;
      }).join(', '));
    }
  }

  const rows: PartialRow[] = [];
  for (const [id, a] of data) {
    const row: PartialRow = { loader: id, kinds: {}, linesP50: {} };
    for (const k of KINDS) {
      if (a.kinds[k].length) { row.kinds[k] = stats(a.kinds[k]); row.linesP50![k] = quantile(a.lines[k], 0.5); }
    }
    if (id === 'nftproxy') {
      row.compile = {}; row.nft = {};
      for (const k of KINDS) { if (a.compile[k].length) row.compile[k] = stats(a.compile[k]); if (a.nft[k].length) row.nft[k] = stats(a.nft[k]); }
    }
    if (a.stale.length) row.staleDelete = stats(a.stale);
    const short = KINDS.filter((k) => (row.kinds[k]?.n ?? 0) < K);
    if (short.length) row.note = `fewer changes (budget): ${KINDS.map((k) => `${k} ${row.kinds[k]?.n ?? 0}`).join(', ')}`;
    if (a.error) row.error = a.error;
    rows.push(row);
  }
  ctx.results.partial = { size: plan.target, changesPerKind: K, rows };
  // what nftproxy's lab now holds (the data plane's BPF maps are filled for the same ruleset)
  if (!data.get('nftproxy')!.error) t.syncedModel = editor.current;
  ctx.results.notes.push(`Partial sync: ${((performance.now() - t0) / 1000).toFixed(0)} s of a ${plan.budget.partial} s budget. Upstream's per-sync listing of chains and sets (nft list) is not counted, only its transactions.`);
}

// Partial sync at each partial-sync size (10k × 10 and 10k × 50), in the tables the full-sync
// phase left: changes of four kinds (one endpoint replaced; the endpoint count changed, M ->
// M-1 into a count no other service uses and back; one service added; one deleted).
//
//  * nftproxy, in this process, the daemon's path: model change (untimed) -> the incremental
//    compiler and kernel objects for the changed service (IncrementalCompiler.update,
//    kernelFamilyUpdate, as the Proxier runs them) -> Applier.sync (the differ, then up to
//    three ordered transactions through the product's netlink writer). Timed: end to end, the compile, and the writer's own part (its commit
//    calls: transactions in -> the kernel's last ack); compile + diff is the rest.
//  * nft-cli: the very transactions nftproxy's writer committed, rendered as nft commands
//    (opsText, the product's text writer) and piped to `nft -f -`, one process per ordered
//    transaction, in a namespace that holds the same table (the CLI's full load): what the
//    same change costs through the CLI.
//  * peers (at the target size only): the delta transaction upstream would run for the same
//    change (generated before the clock starts, then loaded with nft -f - / iptables-restore
//    --noflush); upstream's separate stale-chain deletion transaction is timed on its own.
//
// The daemon's own partial syncs (event -> kernel ack, from its log) are the daemon phase's.
//
// Changes run kind by kind; every loader applies the first change of a kind, which prices
// it; then nftproxy (and the CLI after it) gets plan.partialChanges endpoint changes (the
// targets' p50 / p99) and plan.partialCountChanges count changes, and for add and delete what half of the remaining
// budget allows (at least plan.partialMin); each peer an equal part of the other half (at
// least the one change). A peer that stops early in a kind skips the rest of that kind: its
// delta engine simply does not see them (the first and last services, which the data plane
// uses, are never changed).
import { MeasuringWriter, ModelEditor, proxyConfig } from '../nftproxy.js';
import { Applier } from '../../../src/apply/applier.js';
import { IncrementalCompiler } from '../../../src/compile/incremental-compile.js';
import { kernelFamilyUpdate, type KFamily } from '../../../src/render/kernel/family.js';
import { opsText } from '../../../src/render/kernel/text.js';
import { NetlinkWriter } from '../../../src/apply/netlink/writer.js';
import type { Op } from '../../../src/render/kernel/ops.js';
import { LiveSnapshot, type Change, type ChangeKind } from '../workload.js';
import { quantile, fmtMs } from '../stats.js';
import { sameSize, sizeLabel, type Size } from '../plan.js';
import type { Netns } from '../sys.js';
import type { Ctx, PartialRow, PartialState, Stats } from '../results.js';
import type { DeltaEngine } from '../peers/layout.js';
import type { Model } from '../../../src/model/types.js';

const KINDS: ChangeKind[] = ['endpoint', 'count', 'add', 'delete'];

export function stats(xs: readonly number[]): Stats {
  return { n: xs.length, p50: quantile(xs, 0.5), p99: quantile(xs, 0.99), mean: xs.reduce((a, b) => a + b, 0) / (xs.length || 1), max: Math.max(...xs) };
}

export async function partialPhase(ctx: Ctx): Promise<void> {
  const { plan, progress } = ctx;
  progress.phase('partial', 'Partial sync', `${plan.partialSizes.map(sizeLabel).join(', ')}, in the tables the full sync left; nftproxy's writer against the nft CLI with the same transactions; peers at ${sizeLabel(plan.target)}`);
  const t0 = performance.now();
  for (const [i, size] of plan.partialSizes.entries()) {
    const st = ctx.partialAt.get(sizeLabel(size));
    const isTarget = sameSize(size, plan.target);
    const ns = isTarget ? ctx.labs.get('nftproxy')?.node : st?.nftproxy;
    if (!st || !ns || !st.cli) {
      ctx.results.notes.push(`Partial sync at ${sizeLabel(size)}: skipped, ${!st || !ns ? 'nftproxy' : 'the CLI'} was not loaded there (see full sync).`);
      continue;
    }
    // the target (with the peers) gets 70% of what is left, the other sizes share the rest
    const left = plan.budget.partial * 1000 - (performance.now() - t0);
    const share = plan.partialSizes.length === 1 ? left : isTarget ? left * 0.7 : left / (plan.partialSizes.length - i);
    await partialAt(ctx, size, st, ns, st.cli, isTarget, share);
    // the kernel frees a big table slowly: the CLI's copy goes now (nftproxy's lab stays for the data plane)
    if (!isTarget) { await st.nftproxy?.flushRules(); await st.nftproxy?.destroy(); }
    await st.cli.flushRules();
    await st.cli.destroy();
  }
  ctx.results.notes.push(`Partial sync: ${((performance.now() - t0) / 1000).toFixed(0)} s of a ${plan.budget.partial} s budget. Upstream's per-sync listing of chains and sets (nft list) is not counted, only its transactions.`);
}

const refOf = (c: Change): string => { const k = (c.after ?? c.before)!; return `${k.ns}/${k.name}`; };

type Acc = {
  kinds: Record<ChangeKind, number[]>; compile: Record<ChangeKind, number[]>; writer: Record<ChangeKind, number[]>; tx: Record<ChangeKind, number[]>;
  lines: Record<ChangeKind, number[]>; stale: number[]; limit: Record<ChangeKind, number>;
  countTo: { e2e: number[]; writer: number[] }; countBack: { e2e: number[]; writer: number[] }; error?: string;
  /** the transactions that made spare groups between changes (writer ms; untimed in the rows) */
  spares: number[];
};
const perKind = (): Record<ChangeKind, number[]> => ({ endpoint: [], count: [], add: [], delete: [] });

async function partialAt(ctx: Ctx, size: Size, st: PartialState, ns: Netns, cli: Netns, isTarget: boolean, budgetMs: number): Promise<void> {
  const { plan, progress } = ctx;
  const K = plan.partialChanges, COUNT_CHANGES = plan.partialCountChanges;
  const cfg = proxyConfig();
  const live = new LiveSnapshot(st.gen);
  const editor = new ModelEditor(st.model);
  const writer = new MeasuringWriter(ns, true);
  /** reads rule handles in the CLI's table (cliText) */
  const cliReader = new NetlinkWriter({ netns: `/run/netns/${cli.name}` });
  const applier = new Applier(writer);
  const compiler = new IncrementalCompiler();
  const serviceOf = (ref: string) => editor.service(ref);
  let kernel: KFamily[] = [];
  const t0 = performance.now();
  const leftMs = (): number => budgetMs - (performance.now() - t0);
  // Untimed: one full replace through the daemon's path, so the applier holds the record its
  // partial syncs diff against; the CLI's namespace holds the same objects (its full load).
  await progress.step(`${sizeLabel(size)}: nftproxy's applier takes over its table (untimed full sync)`, () => {
    const comp = compiler.update(st.model, cfg, 'all', serviceOf);
    kernel = comp.parts.map((p) => kernelFamilyUpdate(undefined, p, 'all'));
    return applier.sync(kernel, { full: true });
  }, (r) => `${r.ops.toLocaleString('en')} ops`);

  const peers = isTarget ? ctx.loaders.filter((l) => l.kind === 'peer' && l.partial && ctx.target?.loaded.has(l.id)) : [];
  const engines = new Map<string, DeltaEngine>();
  if (peers.length) {
    await progress.step('prepare upstream delta engines', async () => {
      for (const p of peers) engines.set(p.id, p.layout!.deltas(st.gen.snapshot));
    }, () => `${engines.size} peers`);
  }
  const acc = (): Acc => ({ kinds: perKind(), compile: perKind(), writer: perKind(), tx: perKind(), lines: perKind(), stale: [], limit: { endpoint: K, count: COUNT_CHANGES, add: K, delete: K }, countTo: { e2e: [], writer: [] }, countBack: { e2e: [], writer: [] }, spares: [] });
  const ids = ['nftproxy', 'nft-cli', ...peers.map((p) => p.id)];
  const data = new Map<string, Acc>(ids.map((id) => [id, acc()]));

  /** the text of the transactions the CLI did not replay (timed) yet */
  const cliBehind: string[] = [];
  /**
   * A transaction as nft commands for the CLI's table. A rule is deleted by handle: read from
   * the CLI's table over netlink, untimed, as upstream's listing is (the CLI's own way, `nft -a
   * list chain`, fills nft's cache with the whole table: 4-6 s at 10k x 10). What is behind is
   * replayed first, so the rule is there.
   */
  const cliText = async (tx: readonly Op[]): Promise<string> => {
    if (!tx.some((op) => op.op === 'delete-rule')) return opsText(tx);
    await catchUp();
    const ops = cliReader.withRuleHandles(tx);
    if (!ops.ok) throw new Error(`the CLI's table: ${ops.error.message}`);
    return opsText(ops.value);
  };
  const catchUp = async (): Promise<void> => {
    if (!cliBehind.length) return;
    const r = await cli.exec(['nft', '-f', '-'], { input: cliBehind.join(''), timeoutMs: 120_000 });
    cliBehind.length = 0;
    if (r.exitCode !== 0) throw new Error(`catching up the CLI's table failed: ${r.stderr.trim().split('\n').slice(0, 2).join(' ')}`);
  };
  const nftproxyOne = async (kind: ChangeKind, change: Change, model: Model, i: number): Promise<void> => {
    const a = data.get('nftproxy')!, c = data.get('nft-cli')!;
    // The spare groups the previous change left wanted (render/kernel/spares.ts), made as the
    // daemon makes them: after that change's ack, before the next change. Not in the change's
    // figures (the daemon's are from its event to its ack); the CLI's table follows, untimed.
    writer.reset();
    if (await applier.makeSpares()) {
      a.spares.push(writer.totalMs);
      if (!c.error) for (const cm of writer.commits) cliBehind.push(await cliText(cm.tx!));
    }
    writer.reset();
    const c0 = performance.now();
    // the daemon's path: the changed service compiled again, its kernel objects, the differ, the writer
    const comp = compiler.update(model, cfg, new Set([refOf(change)]), serviceOf);
    kernel = comp.parts.map((p, k) => kernelFamilyUpdate(kernel[k], p, comp.changed));
    const c1 = performance.now();
    const res = await applier.sync(kernel);
    const c2 = performance.now();
    if (res.kind !== 'partial') a.error = `change ${i + 1} (${kind}) ran a ${res.kind} sync`;
    const w = writer.totalMs;
    a.kinds[kind].push(c2 - c0);
    a.compile[kind].push(c1 - c0);
    a.writer[kind].push(w);
    a.tx[kind].push(writer.commits.length);
    a.lines[kind].push(res.ops);
    if (change.count === 'to-new') { a.countTo.e2e.push(c2 - c0); a.countTo.writer.push(w); }
    if (change.count === 'back') { a.countBack.e2e.push(c2 - c0); a.countBack.writer.push(w); }
    // the same transactions through the CLI, one process each, in order (each acknowledged before the next)
    if (c.error) return;
    try {
      if (i >= c.limit[kind]) {
        // not timed (budget), but the CLI's table must follow: applied before the next timed one
        for (const cm of writer.commits) cliBehind.push(await cliText(cm.tx!));
        return;
      }
      await catchUp();
    } catch (e) {
      c.error = String(e instanceof Error ? e.message : e);
      return;
    }
    let ms = 0;
    for (const cm of writer.commits) {
      let text: string;
      try { text = await cliText(cm.tx!); } catch (e) { c.error = `change ${i + 1} (${kind}): ${String(e instanceof Error ? e.message : e)}`; return; }
      const r = await cli.exec(['nft', '-f', '-'], { input: text, timeoutMs: 60_000 });
      if (r.exitCode !== 0) { c.error = `change ${i + 1} (${kind}): nft -f refused the text of nftproxy's transaction: ${r.stderr.trim().split('\n').slice(0, 2).join(' ')}`; return; }
      ms += r.ms;
    }
    c.kinds[kind].push(ms);
    c.tx[kind].push(writer.commits.length);
    if (change.count === 'to-new') c.countTo.e2e.push(ms);
    if (change.count === 'back') c.countBack.e2e.push(ms);
  };

  const peerOne = async (id: string, kind: ChangeKind, change: Change): Promise<void> => {
    const a = data.get(id)!;
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
      const order = ['nftproxy', ...peers.map((p) => p.id)];
      const rot = i % order.length;
      for (const id of [...order.slice(rot), ...order.slice(0, rot)]) {
        const a = data.get(id)!;
        if (a.error || i >= a.limit[kind]) continue;
        if (id === 'nftproxy') await nftproxyOne(kind, change, model, i); else await peerOne(id, kind, change);
      }
    };
    progress.replan(1);
    await progress.step(`${sizeLabel(size)} ${kind}: first change, every loader`, () => doChange(0), () => ids.map((id) => `${id} ${fmtMs(data.get(id)!.kinds[kind][0])}`).join(', '));
    // price the rest of this kind
    const perKindMs = Math.max(0, leftMs()) / (KINDS.length - ki);
    const np = data.get('nftproxy')!;
    const cNp = (np.kinds[kind][0] ?? 1) + (data.get('nft-cli')!.kinds[kind][0] ?? 0);
    np.limit[kind] = kind === 'endpoint' ? K : kind === 'count' ? COUNT_CHANGES : Math.max(plan.partialMin, Math.min(K, Math.floor(perKindMs / 2 / cNp)));
    const total = np.limit[kind];
    // the CLI replays what fits a third of this kind's share (at least 10, or all there are)
    const cli = data.get('nft-cli')!;
    const cCli = cli.kinds[kind][0];
    cli.limit[kind] = cCli ? Math.min(total, Math.max(Math.min(10, total), Math.floor(perKindMs / 3 / cCli))) : total;
    for (const p of peers) {
      const a = data.get(p.id)!;
      const c = (a.kinds[kind][0] ?? 0) + (kind === 'endpoint' ? 0 : a.stale[a.stale.length - 1] ?? 0);
      a.limit[kind] = c > 0 ? Math.max(1, Math.min(total, Math.floor(perKindMs / 2 / Math.max(1, peers.length) / c))) : total;
    }
    progress.note(`${kind}: ${total} changes for nftproxy, ${cli.limit[kind]} for the CLI; ${peers.map((p) => `${p.id} ${data.get(p.id)!.limit[kind]}`).join(', ') || 'no peers'}`);
    progress.replan(Math.ceil((total - 1) / 10));
    for (let from = 1; from < total; from += 10) {
      const end = Math.min(total, from + 10);
      await progress.step(`${sizeLabel(size)} ${kind}: changes ${from + 1}-${end} of ${total}`, async () => {
        for (let j = from; j < end; j++) await doChange(j);
      }, () => ids.filter((id) => data.get(id)!.kinds[kind].length).map((id) => {
        const a = data.get(id)!;
        return a.error ? `${id} error` : `${id} p50 ${fmtMs(quantile(a.kinds[kind], 0.5))}${id === 'nftproxy' ? ` (writer ${fmtMs(quantile(a.writer[kind], 0.5))})` : ''}`;
      }).join(', '));
    }
  }

  const rows: PartialRow[] = [];
  for (const [id, a] of data) {
    const row: PartialRow = { loader: id, kinds: {}, linesP50: {} };
    for (const k of KINDS) {
      if (a.kinds[k].length) { row.kinds[k] = stats(a.kinds[k]); if (a.lines[k].length) row.linesP50![k] = quantile(a.lines[k], 0.5); }
    }
    if (id === 'nftproxy' || id === 'nft-cli') {
      row.txP50 = {};
      for (const k of KINDS) if (a.tx[k].length) row.txP50[k] = quantile(a.tx[k], 0.5);
      row.countSplit = {
        ...(a.countTo.e2e.length ? { toNew: stats(a.countTo.e2e) } : {}), ...(a.countBack.e2e.length ? { back: stats(a.countBack.e2e) } : {}),
        ...(a.countTo.writer.length ? { writerToNew: stats(a.countTo.writer) } : {}), ...(a.countBack.writer.length ? { writerBack: stats(a.countBack.writer) } : {}),
      };
    }
    if (id === 'nftproxy') {
      row.compile = {}; row.writer = {}; row.compileDiff = {};
      for (const k of KINDS) {
        if (!a.compile[k].length) continue;
        row.compile[k] = stats(a.compile[k]);
        row.writer[k] = stats(a.writer[k]);
        row.compileDiff[k] = stats(a.kinds[k].map((e2e, j) => e2e - a.writer[k][j]!));
      }
    }
    if (a.stale.length) row.staleDelete = stats(a.stale);
    const want = (k: ChangeKind): number => (k === 'count' ? COUNT_CHANGES : K);
    const short = KINDS.filter((k) => (row.kinds[k]?.n ?? 0) < want(k) && (k === 'endpoint' || k === 'count' || id !== 'nftproxy'));
    if (short.length) row.note = `fewer changes (budget): ${KINDS.map((k) => `${k} ${row.kinds[k]?.n ?? 0}`).join(', ')}`;
    if (a.error) row.error = a.error;
    rows.push(row);
  }
  const sp = data.get('nftproxy')!.spares;
  if (sp.length) ctx.results.notes.push(`${sizeLabel(size)}: nftproxy made spare endpoint-count groups ${sp.length} times between changes (after a change's ack, as the daemon does; not in the change's figures): writer p50 ${fmtMs(quantile(sp, 0.5))}, max ${fmtMs(Math.max(...sp))}.`);
  ctx.results.partial.push({ size, changesPerKind: K, rows });
  // what nftproxy's lab now holds (the data plane's BPF maps are filled for the same ruleset)
  if (isTarget && ctx.target && !data.get('nftproxy')!.error) ctx.target.syncedModel = editor.current;
  await writer.close();
  await cliReader.close();
}

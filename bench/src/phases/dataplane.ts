// Data plane at the target size: new-TCP-connection rate and latency of short requests from
// the client namespace, through the node namespace holding each ruleset, to the backend
// server in the pod namespace. Targets: the pod IP directly (no netfilter at all: the floor),
// one hand-written DNAT rule, and the first and the last service under nftproxy and under
// each peer layout that was loaded at this size. Rounds interleave every target; conntrack in
// the node namespace is flushed before each measurement.
import { createLab, type Lab } from '../lab.js';
import { labTag, dataplaneAddrs } from './full-sync.js';
import { median, fmtMs } from '../stats.js';
import type { Ctx, ConnRound, DataplaneRow } from '../results.js';

interface Target { row: DataplaneRow; lab: Lab; ip: string; port: number }

export async function dataplanePhase(ctx: Ctx): Promise<void> {
  const { plan, progress } = ctx;
  const t = ctx.target;
  const dp = plan.dataplane;
  if (!t || !ctx.bins) { ctx.results.notes.push('Data plane: skipped (no target snapshot or no client/server binaries).'); return; }
  const snap = t.gen.snapshot;
  const first = snap.services[0]!, last = snap.services[snap.services.length - 1]!;
  const skipped: { loader: string; why: string }[] = [{ loader: 'bpf', why: 'not built yet' }];
  for (const l of ctx.loaders) if (!t.loaded.has(l.id)) skipped.push({ loader: l.id, why: `not loaded at ${plan.target.n}×${plan.target.m} (see full sync)` });

  progress.phase('dataplane', 'Data plane', `${plan.target.n}×${plan.target.m} loaded; ${dp.rounds} rounds × ${dp.seconds} s per target, ${dp.concurrency} connections in flight; server: bench/c/httpd.c (epoll), client: bench/c/connbench.c`);
  const loaded = ctx.loaders.filter((l) => t.loaded.has(l.id));

  const direct = await progress.step('lab: direct (no rules)', () => createLab(labTag('direct'), dataplaneAddrs(snap)), () => 'ok');
  ctx.labs.set('direct', direct);
  const dnat1 = await progress.step('lab: one DNAT rule', async () => {
    const lab = await createLab(labTag('dnat1'), dataplaneAddrs(snap));
    ctx.labs.set('dnat1', lab);
    const ep = first.endpoints[0]!;
    await lab.node.mustExec(['nft', '-f', '-'], { input: `table ip bench-dnat {\n\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tip daddr ${first.clusterIP} tcp dport 80 dnat to ${ep.ip}:8080\n\t}\n}\n` });
    return lab;
  }, () => `ip daddr ${first.clusterIP} tcp dport 80 dnat to ${first.endpoints[0]!.ip}:8080`);

  const targets: Target[] = [];
  const mk = (id: string, loader: string, which: DataplaneRow['which'], lab: Lab, ip: string, port: number): void => {
    targets.push({ row: { id, loader, which, dst: `${ip}:${port}`, rounds: [] }, lab, ip, port });
  };
  mk('direct', 'direct', 'direct', direct, first.endpoints[0]!.ip, 8080);
  mk('dnat1', 'dnat1', 'dnat1', dnat1, first.clusterIP, 80);
  for (const l of loaded) {
    const lab = ctx.labs.get(l.id)!;
    mk(`${l.id}/first`, l.id, 'first', lab, first.clusterIP, 80);
    mk(`${l.id}/last`, l.id, 'last', lab, last.clusterIP, 80);
  }

  const labs = [...new Set(targets.map((x) => x.lab))];
  await progress.step('start backend servers and warm up', async () => {
    for (const lab of labs) lab.pod.spawn([ctx.bins!.httpd, '8080']);
    await new Promise((r) => setTimeout(r, 300));
    for (const x of targets) {
      const r = await measure(x, dp.warmupSeconds, dp.concurrency, ctx.bins!.connbench);
      if (r.conns === 0) throw new Error(`${x.row.id} -> ${x.row.dst}: no connection completed (${r.firstError ?? 'no error'})`);
    }
  }, () => `${labs.length} labs, ${targets.length} targets reachable`);

  // end by the run's deadline: fewer rounds (at least 3), then shorter ones (at least 0.5 s)
  let rounds = dp.rounds, seconds = dp.seconds;
  const avail = plan.totalSec - process.uptime() - 20;
  const perRound = (s: number): number => targets.length * (s + 0.3);
  if (perRound(seconds) * rounds > avail) {
    rounds = Math.max(3, Math.min(dp.rounds, Math.floor(avail / perRound(seconds))));
    if (perRound(seconds) * rounds > avail) seconds = Math.max(0.5, avail / rounds / targets.length - 0.3);
    if (rounds !== dp.rounds || seconds !== dp.seconds) progress.note(`shortened to end by the run's deadline: ${rounds} rounds of ${seconds.toFixed(1)} s`);
    progress.replan(rounds - dp.rounds);
  }
  for (let round = 0; round < rounds; round++) {
    await progress.step(`round ${round + 1}/${rounds}`, async () => {
      const rot = (round * 3) % targets.length;
      for (const x of [...targets.slice(rot), ...targets.slice(0, rot)]) {
        await x.lab.node.exec(['conntrack', '-F']);
        x.row.rounds.push(await measure(x, seconds, dp.concurrency, ctx.bins!.connbench));
      }
    }, () => targets.map((x) => `${x.row.id} ${Math.round(x.row.rounds[x.row.rounds.length - 1]!.rate)}/s`).join(', '));
  }

  for (const x of targets) {
    const r = x.row;
    r.rate = median(r.rounds.map((q) => q.rate));
    r.p50us = median(r.rounds.map((q) => q.p50us));
    r.p99us = median(r.rounds.map((q) => q.p99us));
    const errs = r.rounds.reduce((a, q) => a + q.errors, 0);
    if (errs) r.note = `${errs} failed connections (${r.rounds.find((q) => q.firstError)?.firstError ?? ''})`;
  }
  // Ratios are paired by round (each round measures every target once, close in time), then
  // the median over rounds: slow drift of a shared machine cancels out better than in a
  // ratio of medians.
  const byId = (id: string): DataplaneRow | undefined => targets.find((x) => x.row.id === id)?.row;
  const dRow = byId('direct'), nRow = byId('dnat1');
  const paired = (row: DataplaneRow, base: DataplaneRow | undefined): number | undefined =>
    base ? median(row.rounds.map((q, i) => q.rate / (base.rounds[i]?.rate ?? NaN)).filter(Number.isFinite)) : undefined;
  for (const x of targets) {
    x.row.vsDirect = paired(x.row, dRow);
    x.row.vsDnat1 = paired(x.row, nRow);
  }
  const dRate = dRow?.rate, nRate = nRow?.rate;
  ctx.results.dataplane = { size: plan.target, seconds, concurrency: dp.concurrency, rounds, server: 'bench/c/httpd.c (single-threaded epoll, HTTP/1.0, closes first); nginx not used: installing it starts a server in the root namespace', rows: targets.map((x) => x.row), skipped };
  progress.note(`direct ${Math.round(dRate ?? 0)}/s, one DNAT rule ${Math.round(nRate ?? 0)}/s; p99 latency direct ${fmtMs((targets[0]!.row.p99us ?? 0) / 1000)}`);
}

async function measure(x: Target, seconds: number, concurrency: number, bin: string): Promise<ConnRound> {
  const r = await x.lab.client.exec([bin, x.ip, String(x.port), String(seconds), String(concurrency)], { timeoutMs: (seconds + 30) * 1000 });
  if (r.exitCode !== 0) throw new Error(`connbench failed: ${r.stderr.trim()}`);
  const j = JSON.parse(r.stdout) as { conns: number; errors: number; rate: number; p50_us: number; p99_us: number; first_error: string };
  return { rate: j.rate, p50us: j.p50_us, p99us: j.p99_us, errors: j.errors, conns: j.conns, ...(j.first_error ? { firstError: j.first_error } : {}) };
}


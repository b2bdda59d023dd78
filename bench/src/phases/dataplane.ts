// Data plane at the target size: new-TCP-connection rate and latency of short requests from
// the client namespace, through the node namespace holding each ruleset, to the backend
// server in the pod namespace. Targets: the pod IP directly (no netfilter at all: the floor),
// one hand-written DNAT rule, and the first and the last service under nftproxy and under
// each peer layout that was loaded at this size; and the pod IP again through nftproxy's table
// (`nftproxy/pod`: what a connection that is no service's pays for it, all its dispatch
// lookups missing). Rounds interleave every target; conntrack in
// the node namespace is flushed before each measurement.
//
// BPF hot path on (`bpf/first`, `bpf/last`): nftproxy's lab as it is (its ruleset in the node
// namespace), plus the socket load balancer attached to a bench cgroup and filled for the same
// ruleset (bench/src/bpf.ts); the client runs in the client namespace AND that cgroup, so its
// connect() to the ClusterIP goes to a backend pod directly: no DNAT in the node namespace
// (checked: no conntrack flow to the ClusterIP), hence it can beat the single DNAT rule.
import { CLIENT, CLIENT_BPF, CLIENT_POD, createLab, type Lab } from '../lab.js';
import { labTag, dataplaneAddrs } from './full-sync.js';
import { median, fmtMs } from '../stats.js';
import { compileParts, proxyConfig } from '../nftproxy.js';
import { servicePortsOf } from '../../../src/compile/compile.js';
import { type BpfLab, bpfObject, bpfSkipReason, createBpfLab } from '../bpf.js';
import { run } from '../sys.js';
import type { BpfInfo, Ctx, ConnRound, DataplaneRow } from '../results.js';

/** wrap: argv running the client elsewhere than plainly in lab.client (the BPF rows: + the cgroup) */
interface Target { row: DataplaneRow; lab: Lab; ip: string; port: number; wrap?: (cmd: readonly string[]) => string[]; src?: string }

export async function dataplanePhase(ctx: Ctx): Promise<void> {
  const { plan, progress } = ctx;
  const t = ctx.target;
  const dp = plan.dataplane;
  if (!t || !ctx.bins) { ctx.results.notes.push('Data plane: skipped (no target snapshot or no client/server binaries).'); return; }
  const snap = t.gen.snapshot;
  const first = snap.services[0]!, last = snap.services[snap.services.length - 1]!;
  const skipped: { loader: string; why: string }[] = [];
  for (const l of ctx.loaders) if (l.dataplane && !t.loaded.has(l.id)) skipped.push({ loader: l.id, why: `not loaded at ${plan.target.n}×${plan.target.m} (see full sync)` });

  progress.phase('dataplane', 'Data plane', `${plan.target.n}×${plan.target.m} loaded; ${dp.rounds} rounds × ${dp.seconds} s per target, ${dp.concurrency} connections in flight; server: bench/c/httpd.c (epoll), client: bench/c/connbench.c`);
  const loaded = ctx.loaders.filter((l) => t.loaded.has(l.id));
  let bpf: BpfState | undefined;

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
  const mk = (id: string, loader: string, which: DataplaneRow['which'], lab: Lab, ip: string, port: number, wrap?: Target['wrap']): void => {
    targets.push({ row: { id, loader, which, dst: `${ip}:${port}`, rounds: [] }, lab, ip, port, ...(wrap ? { wrap } : {}) });
  };
  mk('direct', 'direct', 'direct', direct, first.endpoints[0]!.ip, 8080);
  mk('dnat1', 'dnat1', 'dnat1', dnat1, first.clusterIP, 80);
  for (const l of loaded) {
    const lab = ctx.labs.get(l.id)!;
    mk(`${l.id}/first`, l.id, 'first', lab, first.clusterIP, 80);
    mk(`${l.id}/last`, l.id, 'last', lab, last.clusterIP, 80);
    // what a connection that is no service's pays for the table on its path (nat chains: the
    // dispatch lookups that all miss), against `direct`, the same pod with no rules at all
    if (l.id === 'nftproxy') {
      mk(`${l.id}/pod`, l.id, 'pod', lab, first.endpoints[0]!.ip, 8080);
      // its own source address: it reaches nftproxy/first's server sockets by another address (lab.ts, CLIENT_POD)
      targets[targets.length - 1]!.src = CLIENT_POD;
    }
    if (l.id === 'nftproxy') bpf = await bpfTargets(ctx, lab, first.clusterIP, last.clusterIP, mk, skipped);
  }
  if (!loaded.some((l) => l.id === 'nftproxy')) skipped.push({ loader: 'bpf', why: `nftproxy's ruleset was not loaded at ${plan.target.n}×${plan.target.m} (see full sync)` });
  try {
    await measureAll(ctx, targets, bpf, skipped);
  } finally {
    // always: detach + unpin + close, unmount the bpffs, remove the cgroup (SIGINT: sys.ts cleanup)
    if (bpf) {
      const b = bpf.lab;
      try {
        await progress.step('BPF hot path: detach, unpin, unmount the bpffs, remove the cgroup', () => b.destroy(), () => `${b.cgroup} removed`);
      } catch (e) {
        ctx.results.notes.push(`BPF cleanup: ${(e as Error).message.split('\n')[0]}`);
      }
    }
  }
}

interface BpfState { lab: BpfLab; info: BpfInfo }

/** Sets up the BPF hot path and adds its two targets; on failure (or no support) a "skipped" row. */
async function bpfTargets(ctx: Ctx, lab: Lab, firstIP: string, lastIP: string, mk: (id: string, loader: string, which: DataplaneRow['which'], lab: Lab, ip: string, port: number, wrap?: Target['wrap']) => void, skipped: { loader: string; why: string }[]): Promise<BpfState | undefined> {
  const t = ctx.target!;
  const why = bpfSkipReason(ctx.repo);
  if (why) { skipped.push({ loader: 'bpf', why }); ctx.progress.skip('BPF hot path', why); return undefined; }
  ctx.progress.replan(2);
  let state: BpfState;
  try {
    state = await ctx.progress.step('BPF hot path: bench cgroup + private bpffs, sock_lb attached to the cgroup, maps filled (BpfApplier)', async () => {
      const cfg = proxyConfig();
      const ports = servicePortsOf(compileParts(t.syncedModel ?? t.model, cfg));
      const t0 = performance.now();
      const b = await createBpfLab({ repo: ctx.repo, ports, cfg });
      const info: BpfInfo = { object: bpfObject(ctx.repo), cgroup: b.cgroup, pinDir: b.pinDir, entries: b.services.length, writes: b.writes, attached: [...b.report.attached], loadMs: performance.now() - t0, check: [] };
      return { lab: b, info };
    }, (s) => `${s.info.cgroup}; ${s.info.entries} ClusterIP entries, ${s.info.writes} map writes, ${s.info.attached.length} hooks (${fmtMs(s.info.loadMs)})`);
  } catch (e) {
    ctx.progress.replan(-1);
    skipped.push({ loader: 'bpf', why: `setup failed: ${(e as Error).message.split('\n')[0]}` });
    return undefined;
  }
  const b = state.lab;
  const wrap = (cmd: readonly string[]): string[] => b.wrap(lab.client, cmd);
  for (const [which, ip] of [['first', firstIP], ['last', lastIP]] as const) {
    if (b.has(ip, 80, 'tcp')) mk(`bpf/${which}`, 'bpf', which, lab, ip, 80, wrap);
    else skipped.push({ loader: `bpf/${which}`, why: `no BPF entry for ${ip}:80/tcp` });
  }
  return state;
}

async function measureAll(ctx: Ctx, targets: Target[], bpf: BpfState | undefined, skipped: { loader: string; why: string }[]): Promise<void> {
  const { plan, progress } = ctx;
  const dp = plan.dataplane;

  const labs = [...new Set(targets.map((x) => x.lab))];
  await progress.step('start backend servers and warm up', async () => {
    for (const lab of labs) lab.pod.spawn([ctx.bins!.httpd, '8080']);
    await new Promise((r) => setTimeout(r, 300));
    for (const x of targets) {
      const r = await measure(x, dp.warmupSeconds, dp.concurrency, ctx.bins!.connbench);
      if (r.conns === 0) throw new Error(`${x.row.id} -> ${x.row.dst}: no connection completed (${r.firstError ?? 'no error'})`);
    }
  }, () => `${labs.length} labs, ${targets.length} targets reachable`);

  if (bpf) {
    // The BPF rows must not be nft's DNAT in disguise: after a conntrack flush, a short run
    // must leave flows from the client in the node namespace, none to the ClusterIP.
    const bt = targets.filter((x) => x.wrap);
    try {
      await progress.step('BPF hot path: connect() bypasses the DNAT (conntrack in the node namespace)', async () => {
        for (const x of bt) {
          await x.lab.node.exec(['conntrack', '-F']);
          await measure(x, dp.warmupSeconds, dp.concurrency, ctx.bins!.connbench);
          const count = async (args: string[]): Promise<number> => {
            const r = await x.lab.node.exec(['conntrack', '-L', '-p', 'tcp', ...args]);
            if (r.exitCode !== 0) throw new Error(`conntrack -L failed: ${r.stderr.trim()}`);
            return r.stdout.split('\n').filter((l) => l.trim()).length;
          };
          const c = { id: x.row.id, toClusterIP: await count(['--orig-dst', x.ip]), fromClient: await count(['--orig-src', CLIENT_BPF]) };
          bpf!.info.check.push(c);
          if (c.fromClient === 0) throw new Error(`${x.row.id}: no conntrack flow from the client at all: the check proves nothing`);
          if (c.toClusterIP > 0) throw new Error(`${x.row.id}: ${c.toClusterIP} of ${c.fromClient} flows went to the ClusterIP ${x.ip} (nft DNAT): the socket LB did not rewrite connect()`);
          x.row.note = 'socket LB in the client\'s cgroup: connect() goes to the pod, no DNAT';
        }
      }, () => bpf!.info.check.map((c) => `${c.id}: ${c.toClusterIP} of ${c.fromClient} flows to the ClusterIP`).join(', '));
    } catch (e) {
      // not what the rows claim to measure: no BPF rows, say why
      for (const x of bt) targets.splice(targets.indexOf(x), 1);
      skipped.push({ loader: 'bpf', why: `check failed: ${(e as Error).message.split('\n')[0]}` });
    }
  }

  // end by the run's deadline: fewer rounds (at least 2), then shorter ones (at least 0.3 s)
  let rounds = dp.rounds, seconds = dp.seconds;
  const avail = plan.totalSec - process.uptime() - 20;
  const perRound = (s: number): number => targets.length * (s + 0.3);
  if (perRound(seconds) * rounds > avail) {
    rounds = Math.max(2, Math.min(dp.rounds, Math.floor(avail / perRound(seconds))));
    if (perRound(seconds) * rounds > avail) seconds = Math.max(0.3, avail / rounds / targets.length - 0.3);
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
    if (errs) r.note = `${r.note ? `${r.note}; ` : ''}${errs} failed connections (${r.rounds.find((q) => q.firstError)?.firstError ?? ''})`;
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
  ctx.results.dataplane = { size: plan.target, seconds, concurrency: dp.concurrency, rounds, server: 'bench/c/httpd.c (single-threaded epoll, HTTP/1.0, closes first); nginx not used: installing it starts a server in the root namespace', rows: targets.map((x) => x.row), skipped, ...(bpf ? { bpf: bpf.info } : {}) };
  progress.note(`direct ${Math.round(dRate ?? 0)}/s, one DNAT rule ${Math.round(nRate ?? 0)}/s; p99 latency direct ${fmtMs((targets[0]!.row.p99us ?? 0) / 1000)}`);
  const bRows = targets.filter((x) => x.wrap).map((x) => x.row);
  if (bRows.length) progress.note(`BPF hot path: ${bRows.map((r) => `${r.id} ${Math.round(r.rate ?? 0)}/s = ${((r.vsDnat1 ?? NaN) * 100).toFixed(1)}% of one DNAT rule`).join(', ')}`);
}

async function measure(x: Target, seconds: number, concurrency: number, bin: string): Promise<ConnRound> {
  const cmd = [bin, x.ip, String(x.port), String(seconds), String(concurrency), x.src ?? (x.wrap ? CLIENT_BPF : CLIENT)];
  const timeoutMs = (seconds + 30) * 1000;
  // the BPF client is tracked: killed by pid at cleanup (SIGINT), before its cgroup is removed
  const r = x.wrap ? await run(x.wrap(cmd), { timeoutMs, track: true }) : await x.lab.client.exec(cmd, { timeoutMs });
  if (r.exitCode !== 0) throw new Error(`connbench failed: ${r.stderr.trim()}`);
  const j = JSON.parse(r.stdout) as { conns: number; errors: number; rate: number; p50_us: number; p99_us: number; first_error: string };
  return { rate: j.rate, p50us: j.p50_us, p99us: j.p99_us, errors: j.errors, conns: j.conns, ...(j.first_error ? { firstError: j.first_error } : {}) };
}


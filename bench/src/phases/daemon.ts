// The daemon: `nftproxy run --manifests DIR` in a fresh namespace, from process start to its
// first "synced" log line (JSON on stderr, debug level for the breakdown), then its resident
// memory once settled. Budgeted: the first run prices the others.
import { readFileSync } from 'node:fs';
import { mkdir, writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DAEMON_FLAGS } from '../nftproxy.js';
import { Netns, deadline, rssOf, sleep } from '../sys.js';
import { median, fmtMs, fmtMB } from '../stats.js';
import { generate, toObjects } from '../workload.js';
import type { Ctx, DaemonRun } from '../results.js';

export async function daemonPhase(ctx: Ctx): Promise<void> {
  const { plan, progress } = ctx;
  const size = plan.target;
  progress.phase('daemon', 'Daemon cold start', `nftproxy run --manifests (${size.n}×${size.m}) into a fresh namespace, up to ${plan.daemonRuns} runs (budget ${fmtMs(plan.budget.daemon * 1000)}); steady RSS ${plan.daemonSettleMs / 1000} s after the first sync`);
  const t0 = performance.now();
  const dir = join(ctx.tmp, 'manifests');
  await progress.step('write manifests', async () => {
    await mkdir(dir, { recursive: true });
    const snap = generate(size.n, size.m, plan.seed).snapshot;
    const per = 500;
    for (let i = 0; i < snap.services.length; i += per) {
      const items = snap.services.slice(i, i + per).flatMap(toObjects);
      await writeFile(join(dir, `services-${String(i / per).padStart(3, '0')}.json`), JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
    }
    return Math.ceil(snap.services.length / per);
  }, (n) => `${n} JSON files (kind: List)`);

  const bin = join(ctx.repo, 'bin', 'nftproxy.js');
  const runs: DaemonRun[] = [];
  let error: string | undefined;
  let planned = plan.daemonRuns;
  for (let r = 1; r <= planned; r++) {
    const tRun = performance.now();
    try {
      runs.push(await progress.step(`cold start ${r}/${planned}`, () => oneRun(ctx, bin, dir), (x) => `first sync after ${fmtMs(x.coldStartMs)} (source read ${fmtMs(x.sourceReadyMs)}; its log: sync ${fmtMs(x.syncLogMs)} of which nft ${fmtMs(x.applyMs)}, UDP conntrack cleanup ${fmtMs(x.conntrackMs)}), steady RSS ${fmtMB(x.steadyRssMB)}, peak ${fmtMB(x.peakRssMB)}`));
    } catch (e) {
      error = (e as Error).message;
      break;
    }
    if (r === 1) {
      const cost = performance.now() - tRun;
      const left = plan.budget.daemon * 1000 - (performance.now() - t0);
      const fit = Math.min(plan.daemonRuns, 1 + Math.max(0, Math.floor(left / cost)));
      if (fit < planned) { planned = fit; progress.note(`${fit} run${fit > 1 ? 's' : ''} only: one takes ${fmtMs(cost)}, budget`); }
      progress.replan(planned - plan.daemonRuns);
    }
  }
  await rm(dir, { recursive: true, force: true });
  const rss = runs.map((r) => r.steadyRssMB).filter((x): x is number => x !== undefined);
  const peak = runs.map((r) => r.peakRssMB).filter((x): x is number => x !== undefined);
  ctx.results.daemon = {
    size, runs,
    ...(runs.length ? { median: { coldStartMs: median(runs.map((r) => r.coldStartMs)), steadyRssMB: rss.length ? median(rss) : undefined, peakRssMB: peak.length ? median(peak) : undefined } } : {}),
    ...(runs.length < plan.daemonRuns && !error ? { note: `${runs.length} run${runs.length > 1 ? 's' : ''} (budget)` } : {}),
    ...(error ? { error } : {}),
  };
}

async function oneRun(ctx: Ctx, bin: string, dir: string): Promise<DaemonRun> {
  const { plan } = ctx;
  const ns = await Netns.create('dmn');
  try {
    let synced: ((l: Record<string, unknown>) => void) | undefined;
    const first = new Promise<Record<string, unknown>>((resolve) => { synced = resolve; });
    const tail: string[] = [];
    let tSynced = 0, tSyncStarted = 0, conntrackMs: number | undefined;
    const t0 = performance.now();
    const proc = ns.spawn([process.execPath, bin, 'run', '--manifests', dir, ...DAEMON_FLAGS, '--log-level', 'debug'], {
      stderrLines: (line) => {
        tail.push(line); if (tail.length > 20) tail.shift();
        try {
          const l = JSON.parse(line) as Record<string, unknown>;
          if (l.msg === 'sync started' && !tSyncStarted) tSyncStarted = performance.now();
          if (typeof l.msg === 'string' && l.msg.includes('conntrack') && typeof l.durationMs === 'number' && conntrackMs === undefined) conntrackMs = l.durationMs;
          if (l.msg === 'synced' && !tSynced) { tSynced = performance.now(); synced!(l); }
        } catch { /* not JSON */ }
      },
    });
    const exited = proc.then(() => 'exited' as const);
    const timeout = deadline(plan.loadTimeoutSec * 1000);
    const got = await Promise.race([first, exited, timeout.promise]);
    timeout.cancel();
    if (got === 'exited' || got === 'timeout') throw new Error(`daemon ${got === 'timeout' ? `not synced after ${plan.loadTimeoutSec} s` : 'exited'} before its first sync: ${tail.slice(-3).join(' | ')}`);
    const coldStartMs = tSynced - t0;
    await sleep(plan.daemonSettleMs);
    const samples: number[] = [];
    for (let i = 0; i < 4; i++) { const kb = rssOf(proc.pid!); if (kb) samples.push(kb / 1024); await sleep(250); }
    const hwm = hwmOf(proc.pid!);
    try { process.kill(proc.pid!, 'SIGTERM'); } catch { /* gone */ }
    const grace = deadline(10_000);
    if ((await Promise.race([proc.then(() => 'exited' as const), grace.promise])) === 'timeout') { try { process.kill(proc.pid!, 'SIGKILL'); } catch { /* gone */ } }
    grace.cancel();
    return {
      coldStartMs, sourceReadyMs: tSyncStarted ? tSyncStarted - t0 : undefined, syncLogMs: Number(got.durationMs), applyMs: Number(got.applyMs), conntrackMs,
      steadyRssMB: samples.length ? median(samples) : undefined, peakRssMB: hwm,
    };
  } finally {
    await ns.destroy();
  }
}

function hwmOf(pid: number): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch { return undefined; }
}

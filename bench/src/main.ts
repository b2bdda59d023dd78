// `make bench` / `make bench QUICK=1`: nftproxy against upstream kube-proxy's layouts on this
// machine. Everything runs as root inside network namespaces the harness creates and removes.
// Results: bench/results/<timestamp>/{results.json, summary.md, sync-time.svg, conn-rate.svg}.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makePlan, sizeLabel } from './plan.js';
import { Progress } from './progress.js';
import { cleanupAll, cleanupSync, removeOrphans } from './sys.js';
import { kpNftChains, kpNftNumgen, kpNftNumgenMin, kpNftShared } from './peers/kp-nft.js';
import { kpIptablesLegacy, kpIptablesNft } from './peers/kp-iptables.js';
import { toolsPhase } from './phases/tools.js';
import { compilePhase } from './phases/compile.js';
import { fullSyncPhase } from './phases/full-sync.js';
import { partialPhase } from './phases/partial.js';
import { daemonPhase } from './phases/daemon.js';
import { encoderPhase } from './phases/encoder.js';
import { reconcilePhase } from './phases/reconcile.js';
import { dataplanePhase } from './phases/dataplane.js';
import { removeBpfOrphans } from './bpf.js';
import { computeTargets, writeReport } from './report.js';
import { generate } from './workload.js';
import type { Ctx, Loader, Results } from './results.js';

// bench/dist/bench/src/main.js -> repository root
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

/**
 * Before anything is created: refuse with one clear line and exit 2 when the bench cannot run.
 * (Optional tools — /usr/bin/time, cc, iptables — are installed in the Tools phase, each on its
 * own announced line; nothing is installed silently.)
 */
function preflight(): string | undefined {
  if (process.getuid?.() !== 0) return 'the bench runs as root (it creates network namespaces): sudo make bench';
  const onPath = (c: string): boolean => (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((d) => existsSync(join(d, c)));
  for (const [c, pkg] of [['nft', 'nftables'], ['ip', 'iproute2'], ['conntrack', 'conntrack'], ['nsenter', 'util-linux']] as const) {
    if (!onPath(c)) return `${c} is missing (Debian package ${pkg}; make deps installs it)`;
  }
  if (!existsSync(join(REPO, 'dist', 'src', 'cli', 'main.js'))) return 'dist/ is missing: run make build (make bench does)';
  return undefined;
}

async function main(): Promise<number> {
  const refused = preflight();
  if (refused) {
    process.stderr.write(`bench: ${refused}\n`);
    return 2;
  }
  const quick = process.argv.includes('--quick') || ['1', 'true', 'yes'].includes(String(process.env.QUICK ?? '').toLowerCase());
  const plan = makePlan(quick);
  const progress = new Progress();
  const started = new Date();
  const stamp = started.toISOString().replace(/[:]/g, '-').replace(/\..*$/, '');
  const outDir = join(REPO, 'bench', 'results', stamp + (quick ? '-quick' : ''));
  const tmp = await mkdtemp(join(tmpdir(), 'npx-bench-'));

  // BENCH_PEERS (development): a comma-separated subset of the peers, or "none"
  const peerFilter = process.env.BENCH_PEERS?.split(',').map((x) => x.trim());
  const peers: Loader[] = [
    { id: kpNftNumgen.id, label: kpNftNumgen.label, kind: 'peer', layout: kpNftNumgen, priority: 1, dataplane: true, partial: true },
    // one run each is enough (the reconcile and the proposal's cost): after the targets' references
    { id: kpNftNumgenMin.id, label: kpNftNumgenMin.label, kind: 'peer', layout: kpNftNumgenMin, priority: 2, dataplane: false, partial: false },
    { id: kpNftShared.id, label: kpNftShared.label, kind: 'peer', layout: kpNftShared, priority: 2, dataplane: true, partial: true },
    { id: kpNftChains.id, label: kpNftChains.label, kind: 'peer', layout: kpNftChains, priority: 2, dataplane: true, partial: true },
    { id: kpIptablesLegacy.id, label: kpIptablesLegacy.label, kind: 'peer', layout: kpIptablesLegacy, priority: 2, dataplane: true, partial: true },
    { id: kpIptablesNft.id, label: kpIptablesNft.label, kind: 'peer', layout: kpIptablesNft, priority: 2, dataplane: true, partial: true },
  ];
  const loaders: Loader[] = [
    { id: 'nftproxy', label: 'nftproxy: the product\'s netlink writer (a sync worker process)', kind: 'nftproxy', priority: 0, dataplane: true, partial: false },
    { id: 'nft-cli', label: 'the nft CLI loading nftproxy\'s own objects (nft -f of their text)', kind: 'cli', priority: 0, dataplane: false, partial: false },
    ...peers.filter((l) => !peerFilter || peerFilter.includes(l.id)),
  ];
  const results: Results = {
    meta: { startedAt: started.toISOString(), quick, host: {}, plan, loaders: [] },
    workloads: [], samples: {}, compile: [], fullSync: [], partial: [], targets: [], notes: [],
  };
  const ctx: Ctx = { plan, progress, tmp, repo: REPO, results, loaders, labs: new Map(), partialAt: new Map() };

  let interrupted = false;
  const onSignal = (sig: string): void => {
    if (interrupted) return;
    interrupted = true;
    process.stdout.write(`\n${sig}: removing the bench namespaces (and the BPF cgroup, bpffs, programs)…\n`);
    void cleanupAll().finally(() => rm(tmp, { recursive: true, force: true })).finally(() => process.exit(130));
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('exit', cleanupSync);

  process.stdout.write(`nftproxy bench${quick ? ' (QUICK)' : ''}: sizes ${plan.sizes.map(sizeLabel).join(', ')}; partial sync at ${plan.partialSizes.map(sizeLabel).join(', ')}; daemon at ${plan.daemon.map((v) => `${sizeLabel(v.size)} (${v.source})`).join(', ')}; peers and data plane at ${sizeLabel(plan.target)}\n`);
  process.stdout.write(`results -> ${outDir}\n`);
  const orphans = await removeOrphans();
  if (orphans.length) process.stdout.write(`removed ${orphans.length} namespaces left by an earlier bench run that died: ${orphans.join(', ')}\n`);
  const bpfOrphans = removeBpfOrphans();
  if (bpfOrphans.length) process.stdout.write(`removed BPF leftovers (bpffs mounts, cgroups) of an earlier bench run that died: ${bpfOrphans.join(', ')}\n`);

  // the task list, with each phase's expected steps (phases re-plan as they learn more)
  const nPeers = loaders.filter((l) => l.kind === 'peer').length;
  progress.allot('tools', 5);
  progress.allot('encoder', 1);
  progress.allot('compile', (plan.sizes.length + plan.extraCompileSizes.length) * plan.runs);
  progress.allot('full', plan.sizes.length * (1 + loaders.length + loaders.length * plan.runs));
  progress.allot('reconcile', 9);
  progress.allot('partial', plan.partialSizes.length * (1 + 4 + Math.ceil((plan.partialChanges - 1) / 10) + 2 + 2 * Math.ceil((plan.partialMin - 1) / 10)));
  progress.allot('daemon', plan.daemon.length * 4);
  progress.allot('dataplane', 3 + plan.dataplane.rounds);
  progress.allot('cleanup', 1);
  progress.printPlan({
    tools: 'tools: nft, iptables-restore, /usr/bin/time, cc; build the C client and server',
    encoder: `encoder: nftproxy's TypeScript encoder vs libnftnl on a ${plan.encoder.elements.toLocaleString('en')}-element batch`,
    compile: `nftproxy compile (model, compile, kernel objects, encode) at ${[...plan.sizes, ...plan.extraCompileSizes].map(sizeLabel).join(', ')}`,
    full: `full sync into fresh namespaces: nftproxy (its writer), the nft CLI with the same objects, and ${nPeers} peer layouts, interleaved`,
    reconcile: `upstream's 1.36+ layout, feature by feature, at ${sizeLabel(plan.reconcileSize)}`,
    partial: `partial sync at ${plan.partialSizes.map(sizeLabel).join(', ')}: endpoint replaced, endpoint count changed, service added, service deleted; nftproxy's writer vs the CLI`,
    daemon: `the daemon (nftproxy run), from its own log: ${plan.daemon.map((v) => `${sizeLabel(v.size)} ${v.source}`).join(', ')}`,
    dataplane: `data plane at ${sizeLabel(plan.target)}: direct, one DNAT rule, first/last service per layout and with the BPF hot path on`,
    cleanup: 'remove namespaces and temporary files',
  });

  results.notes.push('iptables layouts: the full load into the empty namespace is a plain iptables-restore (kube-proxy passes --noflush, which makes iptables-nft 1.8.9 grow about quadratically: 11.4 s instead of 1.5 s at 500 services); partial syncs use --noflush as kube-proxy does.');
  if (quick) results.notes.push('QUICK run: small sizes and short data-plane rounds; the targets are defined at 10k×10 and only indicative here.');
  let failed: Error | undefined;
  try {
    await toolsPhase(ctx);
    results.meta.loaders = loaders.map((l) => ({ id: l.id, label: l.label }));
    {
      // a rule sample of one service for each layout (a NodePort service, eTP=Cluster, with
      // the fewest ports, 3 endpoints), kept in results.json
      const svcs = generate(50, 3, plan.seed).snapshot.services.filter((x) => x.type === 'NodePort' && !x.etpLocal && !x.affinity);
      const s = [...svcs].sort((a, b) => a.ports.length - b.ports.length)[0] ?? generate(50, 3, plan.seed).snapshot.services[1]!;
      for (const l of loaders) if (l.layout) results.samples[l.id] = l.layout.sample(s);
    }
    await encoderPhase(ctx);
    await compilePhase(ctx);
    await fullSyncPhase(ctx);
    await reconcilePhase(ctx);
    await partialPhase(ctx);
    await daemonPhase(ctx);
    await dataplanePhase(ctx);
  } catch (e) {
    failed = e as Error;
    results.notes.push(`The run stopped early: ${failed.message.split('\n')[0]}`);
  } finally {
    progress.phase('cleanup', 'Cleanup');
    await progress.step('remove namespaces, BPF leftovers and temporary files', async () => {
      await cleanupAll();
      await rm(tmp, { recursive: true, force: true });
    });
    progress.endPhase();
  }

  results.meta.wallSec = process.uptime();
  results.meta.host.loadavgAtEnd = (await import('node:fs')).readFileSync('/proc/loadavg', 'utf8').trim();
  results.targets = computeTargets(results);
  await mkdir(outDir, { recursive: true });
  const md = await writeReport(outDir, results);
  process.stdout.write(`\n${md}\n\nwritten: ${outDir}/{results.json,summary.md,sync-time.svg,conn-rate.svg}\n`);
  if (failed) { process.stderr.write(`bench failed: ${failed.stack ?? failed.message}\n`); return 1; }
  return 0;
}

process.exitCode = await main();

// `nftproxy run --manifests DIR`: the daemon on a local source. Checks nft, syncs at start
// (a full, atomic replace of any table a previous run left), then on every change, and
// leaves the rules in place when stopped: `nftproxy cleanup` removes them.
import { Applier } from '../apply/applier.js';
import { checkNftVersion, nftRunner } from '../apply/nft-runner.js';
import { ConntrackHygiene } from '../daemon/conntrack-hygiene.js';
import { createLogger, type LogLevel } from '../daemon/log.js';
import { type AfterSync, Proxier } from '../daemon/proxier.js';
import { SyncRunner } from '../daemon/sync-runner.js';
import { ManifestWatcher } from '../sources/manifest-watcher.js';
import { type ConfigFlags, loadBaseConfig } from './config.js';
import { parseDuration } from './duration.js';
import { UsageError } from './load-inputs.js';

export interface RunOptions extends ConfigFlags {
  manifests: string;
  minSyncPeriod: string;
  syncPeriod: string;
  logLevel: LogLevel;
}

export interface RunHooks {
  afterSync?: AfterSync;
  /** resolves when the daemon should stop; default: SIGTERM or SIGINT */
  stopSignal?: Promise<string>;
}

export async function runDaemon(opts: RunOptions, hooks: RunHooks = {}): Promise<number> {
  const minSync = parseDuration(opts.minSyncPeriod);
  if (minSync === undefined) throw new UsageError(`--min-sync-period ${opts.minSyncPeriod} is not a duration (e.g. 1s, 500ms)`);
  const period = parseDuration(opts.syncPeriod);
  if (period === undefined || period <= 0) throw new UsageError(`--sync-period ${opts.syncPeriod} is not a positive duration (e.g. 1h, 30m)`);
  const base = await loadBaseConfig(opts);
  if (!base.ok) throw new UsageError(base.error);

  const log = createLogger(opts.logLevel);
  const nft = nftRunner();
  const version = await checkNftVersion(nft);
  if (!version.ok) {
    log.fatal({ error: version.message }, 'cannot start');
    process.stderr.write(`nftproxy: ${version.message}\n`);
    return 3;
  }

  let runner: SyncRunner | undefined;
  const watcher = new ManifestWatcher(opts.manifests, () => runner?.request(), {
    info: (msg, f) => log.info(f ?? {}, msg),
    error: (msg, f) => log.error(f ?? {}, msg),
  });
  try {
    await watcher.start();
  } catch (e) {
    throw new UsageError(`--manifests: ${(e as Error).message}`);
  }
  const conntrack = new ConntrackHygiene(log);
  const proxier = new Proxier({ applier: new Applier(nft), source: watcher, base: base.value, log, afterSync: hooks.afterSync ?? ((next) => conntrack.afterSync(next)) });
  runner = new SyncRunner((reason) => proxier.sync(reason), { minIntervalMs: minSync, periodMs: period });
  log.info({ nft: version.version, manifests: opts.manifests, node: base.value.nodeName, minSyncPeriodMs: minSync, syncPeriodMs: period }, 'starting');
  runner.start();

  const signal = await (hooks.stopSignal ?? new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  }));
  log.info({ signal }, 'stopping; the rules stay in place (nftproxy cleanup removes them)');
  watcher.stop();
  await runner.stop();
  return 0;
}

// `nftproxy run`: the daemon. With --manifests DIR it follows a directory of manifests;
// otherwise it watches the Kubernetes API (in-cluster config, or --kubeconfig). It opens its
// netlink socket, syncs at start (a full, atomic replace of any table a previous run left),
// then on every change, and leaves the rules in place when stopped: `nftproxy cleanup`
// removes them. It never runs `nft`.
import { NetlinkWriter } from '../apply/netlink/writer.js';
import { NetlinkError, NfSocket } from '../apply/netlink/socket.js';
import { type Bind, Daemon } from '../daemon/daemon.js';
import type { DaemonSource } from '../sources/object-source.js';
import { createLogger, type LogLevel } from '../daemon/log.js';
import { parseBindAddress } from '../daemon/health.js';
import { ManifestWatcher } from '../sources/manifest-watcher.js';
import { type BpfMode, BpfUnavailable, BpfUsageError } from '../daemon/bpf-path.js';
import { type ConfigFlags, type DaemonFlags, loadRunConfig } from './config.js';
import { hostIPFamilies } from './host-families.js';
import { parseDuration } from './duration.js';
import { UsageError } from './load-inputs.js';
import type { Logger } from 'pino';

export interface RunOptions extends ConfigFlags, DaemonFlags {
  manifests?: string;
  hostnameOverride?: string;
  logLevel: LogLevel;
  conntrack: boolean;
  bpf: BpfMode;
  bpfCgroup?: string;
  bpfPinDir?: string;
  bpfNetnsDir?: string;
  /** the inspection socket; '' turns it off */
  socket: string;
}

export interface RunHooks {
  /** resolves when the daemon should stop; default: SIGTERM or SIGINT */
  stopSignal?: Promise<string>;
  /** the Kubernetes source, for `run` without --manifests (injected by main) */
  kubernetesSource?: (o: { kubeconfig: string | undefined; nodeName: string; log: Logger; onChange: () => void }) => DaemonSource;
}

const bindOrOff = (text: string, what: string): Bind | undefined => {
  if (text.trim() === '') return undefined; // kube-proxy: an empty address disables the server
  try {
    return parseBindAddress(text, what);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
};

export async function runDaemon(opts: RunOptions, hooks: RunHooks = {}): Promise<number> {
  const node = opts.node ?? opts.hostnameOverride ?? (process.env.NODE_NAME || undefined);
  const cfg = await loadRunConfig({ ...opts, node });
  if (!cfg.ok) throw new UsageError(cfg.error);
  const { daemon: d } = cfg.value;
  // Which families run is a fact about this host, decided here and once: the compiler is pure.
  const fams = cfg.value.base.ipFamilies ? { ipFamilies: cfg.value.base.ipFamilies, why: '--ip-families' } : await hostIPFamilies();
  const base = { ...cfg.value.base, ipFamilies: fams.ipFamilies };
  const minSync = parseDuration(d.minSyncPeriod);
  if (minSync === undefined) throw new UsageError(`--min-sync-period ${d.minSyncPeriod} is not a duration (e.g. 1s, 500ms)`);
  const period = parseDuration(d.syncPeriod);
  if (period === undefined || period <= 0) throw new UsageError(`--sync-period ${d.syncPeriod} is not a positive duration (e.g. 1h, 30m)`);
  const healthzBind = bindOrOff(d.healthzBindAddress, '--healthz-bind-address');
  const metricsBind = bindOrOff(d.metricsBindAddress, '--metrics-bind-address');

  const log = createLogger(opts.logLevel);
  // The kernel interface nftproxy needs, checked before anything else starts.
  try {
    const s = NfSocket.open();
    try { s.generation(); } finally { s.close(); }
  } catch (e) {
    const message = e instanceof NetlinkError ? e.message : String(e);
    log.fatal({ error: message }, 'cannot start');
    process.stderr.write(`nftproxy: ${message}\n`);
    return 3;
  }
  const writer = new NetlinkWriter();

  const makeSource = (onChange: () => void): DaemonSource => {
    if (opts.manifests) {
      const w = new ManifestWatcher(opts.manifests, onChange, { info: (msg, f) => log.info(f ?? {}, msg), error: (msg, f) => log.error(f ?? {}, msg) });
      return { start: () => w.start(), stop: () => w.stop(), snapshot: () => w.snapshot(), changesSince: (v) => w.changesSince(v) };
    }
    if (!hooks.kubernetesSource) throw new UsageError('--manifests DIR is required (no Kubernetes source in this build)');
    return hooks.kubernetesSource({ kubeconfig: d.kubeconfig, nodeName: base.nodeName, log, onChange });
  };
  const source = opts.manifests ? { manifests: opts.manifests } : { kubeconfig: d.kubeconfig ?? 'in-cluster' };
  const daemon = new Daemon({ base, writer, log, minSyncMs: minSync, syncPeriodMs: period, healthzBind, metricsBind, conntrack: opts.conntrack, makeSource,
    ...(opts.socket.trim() ? { socket: opts.socket } : {}), describe: { source, minSyncPeriodMs: minSync, syncPeriodMs: period },
    bpf: { mode: opts.bpf, ...(opts.bpfCgroup ? { cgroup: opts.bpfCgroup } : {}), ...(opts.bpfPinDir ? { pinDir: opts.bpfPinDir } : {}), ...(opts.bpfNetnsDir ? { netnsDir: opts.bpfNetnsDir } : {}) } });
  log.info({ kernel: 'netlink', source, socket: opts.socket || null, node: base.nodeName, ipFamilies: base.ipFamilies, ipFamiliesWhy: fams.why, minSyncPeriodMs: minSync, syncPeriodMs: period, healthz: d.healthzBindAddress, metrics: d.metricsBindAddress }, 'starting');

  const stop = hooks.stopSignal ?? new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  try {
    await Promise.race([daemon.start(), stop]);
  } catch (e) {
    await daemon.stop(); // servers already listening would keep the process alive
    if (e instanceof BpfUnavailable) { process.stderr.write(`nftproxy: ${e.message}\n`); return 4; }
    if (e instanceof BpfUsageError) throw new UsageError(e.message);
    if (String((e as Error).message).includes('EADDRINUSE')) throw new UsageError(`cannot listen: ${(e as Error).message}`);
    if (opts.manifests && e instanceof Error && !(e instanceof UsageError)) throw new UsageError(`--manifests: ${e.message}`);
    throw e;
  }
  const signal = await stop;
  log.info({ signal }, 'stopping; the rules stay in place (nftproxy cleanup removes them)');
  await daemon.stop();
  return 0;
}

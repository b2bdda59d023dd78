// The node agent, whatever the source: health and metrics servers, the source's initial
// state (never a sync before it is complete: an empty first sync would blackhole the node),
// then syncs on every change through the bounded-frequency runner. Stopping leaves the rules.
import type { Server } from 'node:http';
import { createServer } from 'node:http';
import type { Logger } from 'pino';
import { Applier } from '../apply/applier.js';
import type { NetlinkWriter } from '../apply/netlink/writer.js';
import type { ForeignChange } from '../apply/netlink/monitor.js';
import { TABLE_NAME } from '../ir/types.js';
import { SET } from '../compile/base-chains.js';
import type { BaseConfig } from '../model/config.js';
import { ConntrackHygiene } from './conntrack-hygiene.js';
import { healthAnswer, healthServer, listen } from './health.js';
import { ProxyMetrics } from './metrics.js';
import { Proxier } from './proxier.js';
import type { DaemonSource } from '../sources/object-source.js';
import { ServiceHealthServers } from './service-health.js';
import { SyncRunner } from './sync-runner.js';
import { type BpfMode, type BpfPath, startBpf } from './bpf-path.js';

export interface Bind { readonly host: string; readonly port: number }

export interface DaemonOptions {
  readonly base: BaseConfig;
  /** the kernel writer (netlink); the daemon also watches its tables through it */
  readonly writer: NetlinkWriter;
  readonly log: Logger;
  readonly minSyncMs: number;
  readonly syncPeriodMs: number;
  /** undefined: no server */
  readonly healthzBind: Bind | undefined;
  readonly metricsBind: Bind | undefined;
  readonly conntrack: boolean;
  readonly bpf: { readonly mode: BpfMode; readonly cgroup?: string; readonly pinDir?: string; readonly netnsDir?: string };
  readonly makeSource: (onChange: () => void) => DaemonSource;
}

export class Daemon {
  readonly metrics = new ProxyMetrics();
  private readonly servers: Server[] = [];
  private source: DaemonSource | undefined;
  private runner: SyncRunner | undefined;
  private serviceHealth: ServiceHealthServers | undefined;
  private bpf: BpfPath | undefined;
  private drift: { seen: string[]; timer: NodeJS.Immediate | undefined } = { seen: [], timer: undefined };
  proxier: Proxier | undefined;

  constructor(private readonly o: DaemonOptions) {}

  /** kube-proxy: an update waiting longer than twice the sync period makes the proxy unhealthy. */
  get healthTimeoutMs(): number {
    return 2 * this.o.syncPeriodMs;
  }

  async start(): Promise<void> {
    const { log } = this.o;
    const state = {
      queuedSince: () => this.runner?.queuedSince,
      lastUpdated: () => this.proxier?.lastSuccess,
      node: () => this.proxier?.node,
    };
    if (this.o.healthzBind) {
      const s = healthServer(state, this.healthTimeoutMs, (kind, code) => (kind === 'healthz' ? this.metrics.healthz : this.metrics.livez).inc({ code: String(code) }));
      await listen(s, this.o.healthzBind);
      this.servers.push(s);
    }
    if (this.o.metricsBind) {
      const s = createServer((req, res) => {
        if ((req.url ?? '').split('?')[0] !== '/metrics') { res.writeHead(404).end(); return; }
        this.metrics.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': this.metrics.registry.contentType }).end(text),
          (e: unknown) => res.writeHead(500).end(String(e)),
        );
      });
      await listen(s, this.o.metricsBind);
      this.servers.push(s);
    }
    this.serviceHealth = new ServiceHealthServers(log, () => healthAnswer('livez', state, this.healthTimeoutMs).code === 200);

    // Before the first sync: a restart adopts the pinned programs and maps, which keep
    // serving what they held until the first sync reconciles them.
    this.bpf = await startBpf(this.o.bpf.mode, { ...this.o.bpf, log });
    this.metrics.bpfActive.set(this.bpf ? 1 : 0);

    this.source = this.o.makeSource(() => {
      this.metrics.onQueued();
      this.runner?.request();
    });
    log.info('waiting for the source\'s initial state before the first sync');
    await this.source.start();
    const conntrack = this.o.conntrack ? new ConntrackHygiene(log) : undefined;
    this.proxier = new Proxier({
      applier: new Applier(this.o.writer), source: this.source, base: this.o.base, log,
      metrics: this.metrics, serviceHealth: this.serviceHealth,
      afterSync: async (next, config) => {
        if (this.bpf) {
          const r = this.bpf.sync(next, config);
          if (r.writes) log.debug(r, 'BPF maps updated');
          this.metrics.bpfServices.set(r.entries);
          this.metrics.bpfRefused.set(r.refused.length);
          this.metrics.bpfSocketsDestroyed.inc(r.destroyed);
        }
        if (conntrack) {
          const before = conntrack.deletedTotal;
          await conntrack.afterSync(next);
          this.metrics.conntrackDeleted.inc(conntrack.deletedTotal - before);
        }
      },
    });
    let restarts = 0;
    this.runner = new SyncRunner(async (reason, queuedAt) => {
      const now = this.source?.status?.().restarts ?? 0;
      if (now > restarts) this.metrics.sourceRestarts.inc(now - restarts);
      restarts = now;
      return this.proxier!.sync(reason, queuedAt);
    }, { minIntervalMs: this.o.minSyncMs, periodMs: this.o.syncPeriodMs });
    // Drift: another process changing our tables gets them replaced within --min-sync-period.
    this.o.writer.watch({ table: TABLE_NAME, dynamicSets: new Set([SET.affinity]), onChange: (c) => this.onForeignChange(c) });
    this.metrics.onQueued();
    this.runner.start();
  }

  // A `nft flush chain` is one notification per rule: they are counted one by one, logged
  // together (the first few kinds), and make one full sync.
  private onForeignChange(c: ForeignChange): void {
    this.metrics.foreignChanges.inc({ family: c.family ?? 'unknown' });
    if (this.drift.seen.length < 8 && !this.drift.seen.includes(c.what)) this.drift.seen.push(c.what);
    if (this.drift.timer) return;
    this.drift.timer = setImmediate(() => {
      this.o.log.warn({ changes: this.drift.seen, portid: c.portid }, 'another process changed nftproxy\'s tables: replacing them (full sync)');
      this.drift = { seen: [], timer: undefined };
      this.runner?.requestFull('drift');
    });
  }

  async stop(): Promise<void> {
    await this.source?.stop();
    await this.runner?.stop();
    if (this.drift.timer) clearImmediate(this.drift.timer);
    await this.o.writer.close();
    await this.serviceHealth?.stop();
    this.bpf?.close(); // pinned: the programs stay attached, as the nft rules stay
    await Promise.all(this.servers.map((s) => new Promise((r) => { s.closeAllConnections?.(); s.close(r); })));
  }
}

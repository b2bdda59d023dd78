// The node agent, whatever the source: health and metrics servers, the source's initial
// state (never a sync before it is complete: an empty first sync would blackhole the node),
// then syncs on every change through the bounded-frequency runner. Stopping leaves the rules.
import type { Server } from 'node:http';
import { createServer } from 'node:http';
import type { Logger } from 'pino';
import { Applier } from '../apply/applier.js';
import { NetlinkConntrack } from '../apply/conntrack.js';
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
import { type InspectServer, InspectSocketError, serveInspect } from './inspect-server.js';

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
  /** the inspection socket (inspect-server.ts); undefined: none */
  readonly socket?: string;
  /** for the socket's summary: what the daemon runs on */
  readonly describe?: Record<string, unknown>;
}

export class Daemon {
  readonly metrics = new ProxyMetrics();
  private readonly servers: Server[] = [];
  private source: DaemonSource | undefined;
  private runner: SyncRunner | undefined;
  private serviceHealth: ServiceHealthServers | undefined;
  private bpf: BpfPath | undefined;
  private conntrackTable: NetlinkConntrack | undefined;
  private drift: { seen: string[]; kinds: Map<string, number>; timer: NodeJS.Immediate | undefined } = { seen: [], kinds: new Map(), timer: undefined };
  private inspect: InspectServer | undefined;
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
    if (this.o.socket) await this.serveInspect(this.o.socket);

    this.source = this.o.makeSource(() => {
      this.metrics.onQueued();
      this.runner?.request();
    });
    log.info('waiting for the source\'s initial state before the first sync');
    await this.source.start();
    this.conntrackTable = this.o.conntrack ? new NetlinkConntrack() : undefined;
    const conntrack = this.conntrackTable ? new ConntrackHygiene(log, this.conntrackTable) : undefined;
    this.proxier = new Proxier({
      applier: new Applier(this.o.writer), source: this.source, base: this.o.base, log,
      metrics: this.metrics, serviceHealth: this.serviceHealth,
      afterSync: async (ports, config) => {
        if (this.bpf) {
          // the BPF maps are reconciled whole (O(service ports)); only while BPF is on
          const r = this.bpf.sync(ports.all(), config);
          if (r.writes) log.debug(r, 'BPF maps updated');
          this.metrics.bpfServices.set(r.entries);
          this.metrics.bpfRefused.set(r.refused.length);
          this.metrics.bpfSocketsDestroyed.inc(r.destroyed);
        }
        if (conntrack) {
          const before = conntrack.deletedTotal;
          conntrack.afterSync(ports.changes, ports.all);
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

  // Before the source's first view, so an operator can ask why the daemon has not synced yet.
  // A socket another daemon answers on stops the start (two daemons must not program one
  // node); any other problem leaves the daemon without it, logged: proxying matters more.
  private async serveInspect(path: string): Promise<void> {
    const started = new Date().toISOString();
    try {
      this.inspect = await serveInspect(path, {
        applied: () => this.proxier?.lastApplied,
        summary: () => ({
          pid: process.pid, startedAt: started, node: this.o.base.nodeName, ipFamilies: this.o.base.ipFamilies, ...this.o.describe,
          synced: this.proxier?.lastApplied !== undefined,
          lastSuccess: this.proxier?.lastSuccess ? new Date(this.proxier.lastSuccess).toISOString() : null,
          lastSync: this.proxier?.lastReport ?? null,
          queuedSince: this.runner?.queuedSince ? new Date(this.runner.queuedSince).toISOString() : null,
          source: this.source?.status?.() ?? null,
          bpf: this.bpf !== undefined,
        }),
      }, this.o.log);
    } catch (e) {
      if (e instanceof InspectSocketError && e.code === 'IN_USE') throw e;
      this.o.log.error({ socket: path, error: (e as Error).message }, 'no inspection socket: dump, explain, verify and trace on this node need -f or --kubeconfig');
    }
  }

  // A `nft flush chain` is one notification per rule, a deleted table one per object: they
  // are counted one by one, logged together (how many of each kind, a few names), and make
  // one full sync.
  private onForeignChange(c: ForeignChange): void {
    this.metrics.foreignChanges.inc({ family: c.family ?? 'unknown' });
    const d = this.drift;
    d.kinds.set(c.verb, (d.kinds.get(c.verb) ?? 0) + 1);
    if (d.seen.length < 8 && !d.seen.includes(c.what)) d.seen.push(c.what);
    if (d.timer) return;
    d.timer = setImmediate(() => {
      this.o.log.warn({ changes: Object.fromEntries(d.kinds), examples: d.seen, portid: c.portid }, 'another process changed nftproxy\'s tables: replacing them (full sync)');
      this.drift = { seen: [], kinds: new Map(), timer: undefined };
      this.runner?.requestFull('drift');
    });
  }

  async stop(): Promise<void> {
    await this.source?.stop();
    await this.runner?.stop();
    if (this.drift.timer) clearImmediate(this.drift.timer);
    await this.o.writer.close();
    this.conntrackTable?.close();
    await this.serviceHealth?.stop();
    this.bpf?.close(); // pinned: the programs stay attached, as the nft rules stay
    await Promise.all(this.servers.map((s) => new Promise((r) => { s.closeAllConnections?.(); s.close(r); })));
    await this.inspect?.close();
  }
}

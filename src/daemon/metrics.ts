// Prometheus metrics under the names kube-proxy exports (so existing dashboards keep
// working), plus nftproxy's own. One registry per daemon, served on --metrics-bind-address.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ServicePortInfo } from '../ir/types.js';
import type { Diagnostic } from '../model/diagnostic.js';
import type { SyncReport } from './proxier.js';

// kube-proxy: prometheus.ExponentialBuckets(0.001, 2, 15)
const SYNC_BUCKETS = Array.from({ length: 15 }, (_, i) => 0.001 * 2 ** i);
const PROGRAMMING_BUCKETS = [0.25, 0.5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 45, 60, 120, 180, 240, 300];

export class ProxyMetrics {
  readonly registry = new Registry();
  private readonly r = [this.registry];

  readonly syncDuration = new Histogram({ name: 'kubeproxy_sync_proxy_rules_duration_seconds', help: 'SyncProxyRules latency in seconds', buckets: SYNC_BUCKETS, registers: this.r });
  readonly fullSyncDuration = new Histogram({ name: 'kubeproxy_sync_full_proxy_rules_duration_seconds', help: 'SyncProxyRules latency in seconds for full resyncs', buckets: SYNC_BUCKETS, registers: this.r });
  readonly partialSyncDuration = new Histogram({ name: 'kubeproxy_sync_partial_proxy_rules_duration_seconds', help: 'SyncProxyRules latency in seconds for partial resyncs', buckets: SYNC_BUCKETS, registers: this.r });
  readonly lastSync = new Gauge({ name: 'kubeproxy_sync_proxy_rules_last_timestamp_seconds', help: 'The last time proxy rules were successfully synced', registers: this.r });
  readonly lastQueued = new Gauge({ name: 'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds', help: 'The last time a sync of proxy rules was queued', registers: this.r });
  readonly networkProgramming = new Histogram({ name: 'kubeproxy_network_programming_duration_seconds', help: 'In Cluster Network Programming Latency in seconds (from the EndpointSlice last-change-trigger-time annotation)', buckets: PROGRAMMING_BUCKETS, registers: this.r });
  readonly noLocalEndpoints = new Gauge({ name: 'kubeproxy_sync_proxy_rules_no_local_endpoints_total', help: 'Number of service ports with a Local traffic policy and no local endpoints', labelNames: ['traffic_policy'], registers: this.r });
  readonly endpointChanges = new Counter({ name: 'kubeproxy_sync_proxy_rules_endpoint_changes_total', help: 'Cumulative EndpointSlice changes', registers: this.r });
  readonly serviceChanges = new Counter({ name: 'kubeproxy_sync_proxy_rules_service_changes_total', help: 'Cumulative Service changes', registers: this.r });
  readonly endpointChangesPending = new Gauge({ name: 'kubeproxy_sync_proxy_rules_endpoint_changes_pending', help: 'Pending EndpointSlice changes', registers: this.r });
  readonly serviceChangesPending = new Gauge({ name: 'kubeproxy_sync_proxy_rules_service_changes_pending', help: 'Pending Service changes', registers: this.r });
  readonly syncFailures = new Counter({ name: 'kubeproxy_sync_proxy_rules_nftables_sync_failures_total', help: 'Failed nftables syncs', registers: this.r });
  readonly healthz = new Counter({ name: 'kubeproxy_proxy_healthz_total', help: 'Proxy healthz requests by response code', labelNames: ['code'], registers: this.r });
  readonly livez = new Counter({ name: 'kubeproxy_proxy_livez_total', help: 'Proxy livez requests by response code', labelNames: ['code'], registers: this.r });
  readonly conntrackDeleted = new Counter({ name: 'kubeproxy_conntrack_reconciler_deleted_entries_total', help: 'Stale UDP conntrack entries deleted', registers: this.r });

  // nftproxy's own
  readonly syncOps = new Histogram({ name: 'nftproxy_sync_ops', help: 'nft operations (commands and elements) per applied transaction', labelNames: ['kind'], buckets: [0, 1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000, 100000, 500000], registers: this.r });
  readonly skipped = new Gauge({ name: 'nftproxy_skipped_objects', help: 'Objects skipped in the last sync, by kind and reason code', labelNames: ['kind', 'reason'], registers: this.r });
  readonly objects = new Gauge({ name: 'nftproxy_objects', help: 'Objects seen by the last sync, by kind', labelNames: ['kind'], registers: this.r });
  readonly quarantined = new Gauge({ name: 'nftproxy_quarantined_services', help: 'Services left out because nft rejected their rules', registers: this.r });
  readonly foreignChanges = new Counter({ name: 'nftproxy_foreign_changes_total', help: 'Changes another process made to nftproxy\'s tables (each one triggers a full sync)', labelNames: ['family'], registers: this.r });
  readonly sourceRestarts = new Counter({ name: 'nftproxy_source_restarts_total', help: 'Watches of the API server restarted after an error', registers: this.r });
  // The BPF hot path (--bpf): whether it is on, what its maps hold, what they refused.
  readonly bpfActive = new Gauge({ name: 'nftproxy_bpf_active', help: '1 when the BPF socket load balancer is attached and fed by this process', registers: this.r });
  readonly bpfServices = new Gauge({ name: 'nftproxy_bpf_services', help: 'ClusterIP:port entries in the BPF maps', registers: this.r });
  readonly bpfRefused = new Gauge({ name: 'nftproxy_bpf_refused_services', help: 'Services the BPF maps refused at the last sync (the nftables rules serve them)', registers: this.r });
  readonly bpfSocketsDestroyed = new Counter({ name: 'nftproxy_bpf_udp_sockets_destroyed_total', help: 'Connected UDP sockets destroyed because their backend left', registers: this.r });

  constructor(withProcessMetrics = true) {
    if (withProcessMetrics) collectDefaultMetrics({ register: this.registry });
  }

  onSync(r: SyncReport): void {
    if (!r.ok) {
      this.syncFailures.inc();
      return;
    }
    const s = r.durationMs / 1000;
    this.syncDuration.observe(s);
    (r.kind === 'full' ? this.fullSyncDuration : this.partialSyncDuration).observe(s);
    this.lastSync.set(Date.now() / 1000);
    this.syncOps.observe({ kind: r.kind }, r.ops);
    this.quarantined.set(r.quarantined);
    this.endpointChangesPending.set(0);
    this.serviceChangesPending.set(0);
  }

  onQueued(): void {
    this.lastQueued.set(Date.now() / 1000);
  }

  onNoLocalEndpoints(n: { readonly internal: number; readonly external: number }): void {
    this.noLocalEndpoints.set({ traffic_policy: 'internal' }, n.internal);
    this.noLocalEndpoints.set({ traffic_policy: 'external' }, n.external);
  }

  onModel(counts: { services: number; endpointSlices: number; nodes: number }, diagnostics: readonly Diagnostic[]): void {
    this.objects.set({ kind: 'Service' }, counts.services);
    this.objects.set({ kind: 'EndpointSlice' }, counts.endpointSlices);
    this.objects.set({ kind: 'Node' }, counts.nodes);
    this.skipped.reset();
    for (const d of diagnostics) this.skipped.inc({ kind: d.kind, reason: d.code });
  }

  onChanges(c: { services: number; endpointSlices: number }): void {
    this.serviceChanges.inc(c.services);
    this.endpointChanges.inc(c.endpointSlices);
  }
}

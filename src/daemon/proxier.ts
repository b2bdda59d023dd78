// One sync: source snapshot -> model -> compile -> apply -> conntrack cleanup, logged.
// The same for every source (manifests now, the Kubernetes API later).
import type { Logger } from 'pino';
import { ApplyError, type Applier, type SyncResult } from '../apply/applier.js';
import { kernelFamily } from '../render/kernel/family.js';
import { type BaseConfig, type ProxyConfig, resolveConfig } from '../model/config.js';
import { compileParts, servicePortsOf } from '../compile/compile.js';
import type { ServicePortInfo } from '../ir/types.js';
import { buildModel } from '../model/build-model.js';
import type { ObjectSource } from '../sources/object-source.js';
import { formatDiagnostic } from '../model/diagnostic.js';
import { Quarantine } from './quarantine.js';
import { ChangeTracker } from './change-tracker.js';
import { AffinityGenerations } from './affinity-generations.js';
import type { ProxyMetrics } from './metrics.js';
import { type ServiceHealthServers, healthHostsOf, serviceHealthOf } from './service-health.js';
import type { Node } from '../model/types.js';
import { type SyncReason, isFullReason } from './sync-runner.js';

/** After a successful sync: what was applied and the configuration it was compiled with (conntrack cleanup, BPF). */
export type AfterSync = (next: readonly ServicePortInfo[], config: ProxyConfig) => Promise<void>;

export interface SyncReport {
  readonly reason: SyncReason;
  readonly ok: boolean;
  readonly kind: 'full' | 'partial';
  readonly ops: number;
  readonly durationMs: number;
  readonly services: number;
  readonly servicePorts: number;
  readonly endpoints: number;
  readonly skipped: number;
  readonly quarantined: number;
}

export interface ProxierOptions {
  readonly applier: Applier;
  readonly source: ObjectSource;
  readonly base: BaseConfig;
  readonly log: Logger;
  readonly proxyName?: string;
  readonly afterSync?: AfterSync;
  readonly onReport?: (r: SyncReport) => void;
  readonly metrics?: ProxyMetrics;
  readonly serviceHealth?: ServiceHealthServers;
}

export class Proxier {
  private readonly quarantine = new Quarantine();
  private loggedDiagnostics = new Set<string>();
  private loggedConfigNotes = new Set<string>();
  private readonly changes = new ChangeTracker();
  private readonly affinity = new AffinityGenerations();
  lastReport: SyncReport | undefined;
  /** when the last sync succeeded (epoch ms) */
  lastSuccess: number | undefined;
  /** this node's object as of the last sync (health: is the node leaving?) */
  node: Node | undefined;

  constructor(private readonly o: ProxierOptions) {}

  /** `queuedAt`: performance.now() of the oldest change this sync includes (its log line's eventToAckMs) */
  async sync(reason: SyncReason, queuedAt?: number): Promise<boolean> {
    const start = performance.now();
    const objects = this.o.source.snapshot();
    const built = buildModel(objects, this.o.proxyName ?? 'nftproxy');
    this.logDiagnostics(built.diagnostics.map(formatDiagnostic));
    const q = this.quarantine.apply(built.model, objects);
    for (const r of q.released) this.o.log.info({ service: r }, 'service changed: leaving quarantine');
    const { config, notes } = resolveConfig(this.o.base, q.model, this.o.proxyName ?? 'nftproxy');
    this.logConfigNotes(notes);
    this.node = built.model.nodes.get(this.o.base.nodeName);
    this.o.metrics?.onModel({ services: built.model.services.length, endpointSlices: [...built.model.slices.values()].reduce((n, s) => n + s.length, 0), nodes: built.model.nodes.size }, built.diagnostics);
    const parts = compileParts(q.model, config, this.affinity.generationOf);
    // Right after compiling, failed sync or not: an affinity endpoint missing now must come
    // back under a new key whatever the kernel got.
    this.affinity.settle(parts, performance.now());
    const servicePorts = servicePortsOf(parts);
    const full = isFullReason(reason) || !this.o.applier.knowsKernelState;
    const counts = {
      services: q.model.services.length,
      servicePorts: servicePorts.length,
      endpoints: new Set(servicePorts.flatMap((p) => p.servingEndpoints)).size,
      skipped: built.diagnostics.length,
      quarantined: q.held.length,
    };
    let result: SyncResult;
    this.o.log.debug({ reason, full }, 'sync started');
    let ackedAt: number;
    try {
      result = await this.o.applier.sync(parts.map(kernelFamily), { full });
      ackedAt = performance.now();
    } catch (e) {
      const durationMs = performance.now() - start;
      if (e instanceof ApplyError) {
        const culprits = [...new Set(e.culprits.map((id) => servicePorts.find((p) => p.id === id)?.service).filter((s): s is string => s !== undefined))];
        if (culprits.length) this.quarantine.add(objects, culprits, e.error.message);
        this.o.log.error({ reason, kind: e.kind, code: e.error.code, error: e.error.message, quarantined: culprits, durationMs: round(durationMs) }, culprits.length ? 'the kernel refused the sync; quarantining the services that caused it and retrying' : 'the kernel refused the sync; retrying with backoff (a full sync)');
      } else {
        this.o.log.error({ reason, error: String(e), durationMs: round(durationMs) }, 'sync failed; retrying with backoff');
      }
      this.report({ reason, ok: false, kind: full ? 'full' : 'partial', ops: 0, durationMs, ...counts });
      return false;
    }
    if (this.o.afterSync) {
      try {
        await this.o.afterSync(servicePorts, config);
      } catch (e) {
        this.o.log.warn({ error: String(e) }, 'post-sync cleanup failed');
      }
    }
    const durationMs = performance.now() - start;
    if (result.ops > 0 || result.kind === 'full') {
      // eventToAckMs: from the change (for a start sync: the source's initial state in hand) to the kernel's last ack
      this.o.log.info({ reason, kind: result.kind, ops: result.ops, transactions: result.transactions, durationMs: round(durationMs), applyMs: round(result.durationMs), ...(queuedAt !== undefined ? { eventToAckMs: round(ackedAt - queuedAt) } : {}), ...counts, ...(result.carriedAffinity ? { carriedAffinity: result.carriedAffinity } : {}) }, 'synced');
    } else {
      this.o.log.debug({ reason, durationMs: round(durationMs) }, 'nothing to change');
    }
    this.lastSuccess = Date.now();
    const changed = this.changes.observe(objects);
    if (this.o.metrics) {
      this.o.metrics.onChanges(changed);
      this.o.metrics.onPorts(servicePorts);
      for (const t of changed.triggers) this.o.metrics.networkProgramming.observe(Math.max(0, this.lastSuccess - t) / 1000);
    }
    await this.o.serviceHealth?.sync(serviceHealthOf(q.model, this.o.base.nodeName), healthHostsOf(parts));
    this.report({ reason, ok: true, kind: result.kind, ops: result.ops, durationMs, ...counts });
    return true;
  }

  private report(r: SyncReport): void {
    this.lastReport = r;
    this.o.metrics?.onSync(r);
    this.o.onReport?.(r);
  }

  // Once per change, as kube-proxy warns once at start: e.g. a Node that lists no IPv6 address
  // opens IPv6 NodePorts on every local IPv6 address.
  private logConfigNotes(notes: readonly string[]): void {
    const now = new Set(notes);
    for (const n of now) if (!this.loggedConfigNotes.has(n)) this.o.log.warn({ note: n }, 'configuration note');
    this.loggedConfigNotes = now;
  }

  // A skipped object is logged when it first appears, not on every sync.
  private logDiagnostics(lines: readonly string[]): void {
    const now = new Set(lines);
    for (const l of now) if (!this.loggedDiagnostics.has(l)) this.o.log.warn({ skipped: l }, 'object skipped');
    this.loggedDiagnostics = now;
  }
}

const round = (ms: number): number => Math.round(ms * 10) / 10;

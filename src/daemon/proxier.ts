// One sync: source snapshot -> model -> compile -> apply -> conntrack cleanup, logged.
// The same for every source (manifests now, the Kubernetes API later).
import type { Logger } from 'pino';
import { ApplyError, type Applier, type SyncResult } from '../apply/applier.js';
import { type KFamily, kernelFamilyUpdate } from '../render/kernel/family.js';
import { type BaseConfig, type ProxyConfig, resolveConfig } from '../model/config.js';
import { IncrementalCompiler } from '../compile/incremental-compile.js';
import type { ServicePortInfo } from '../ir/types.js';
import { ModelStore } from '../model/model-store.js';
import type { ObjectSource } from '../sources/object-source.js';
import { type Diagnostic, formatDiagnostic } from '../model/diagnostic.js';
import { Quarantine } from './quarantine.js';
import { AffinityGenerations } from './affinity-generations.js';
import type { ProxyMetrics } from './metrics.js';
import { type ServiceHealth, type ServiceHealthServers, healthHostsOf, serviceHealthOf } from './service-health.js';
import type { Node, Service } from '../model/types.js';
import { type SyncReason, isFullReason } from './sync-runner.js';
import { type PortChanges, PortIndex } from './port-index.js';
import type { AppliedState } from './inspect-server.js';

/**
 * After a successful sync, with the configuration it was compiled with (conntrack cleanup,
 * BPF): the ports of the services the sync touched, before and after ('all': every port), and
 * every port on demand (O(ports): only what needs the whole should ask).
 */
export type AfterSync = (ports: { readonly changes: PortChanges | 'all'; readonly all: () => ServicePortInfo[] }, config: ProxyConfig) => Promise<void>;

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
  /** the source's version the model store last took in (sources that tell their changes) */
  private sourceVersion: number | undefined;
  private loggedDiagnostics = new Map<Diagnostic, string>();
  private loggedConfigNotes = new Set<string>();
  private readonly store: ModelStore;
  private readonly compiler = new IncrementalCompiler();
  private readonly affinity = new AffinityGenerations();
  private readonly ports = new PortIndex();
  private kernel: KFamily[] | undefined;
  private healthEntries: Map<string, ServiceHealth> | undefined;
  /** services to compile again at the next sync whatever changes (quarantined ones) */
  private readonly requeued = new Set<string>();
  lastReport: SyncReport | undefined;
  /** when the last sync succeeded (epoch ms) */
  lastSuccess: number | undefined;
  /** this node's object as of the last sync (health: is the node leaving?) */
  node: Node | undefined;
  /** what the last successful sync applied: the inspection socket serves it */
  lastApplied: AppliedState | undefined;

  constructor(private readonly o: ProxierOptions) {
    this.store = new ModelStore(o.proxyName ?? 'nftproxy');
  }

  /** `queuedAt`: performance.now() of the oldest change this sync includes (its log line's eventToAckMs) */
  async sync(reason: SyncReason, queuedAt?: number): Promise<boolean> {
    const start = performance.now();
    // The model, the compiled parts, the kernel objects and what is derived from them are kept
    // across syncs and updated for the services that changed (model-store.ts, incremental-
    // compile.ts, kernelFamilyUpdate): a one-endpoint change costs that service. A source that
    // can say what changed (the manifest watcher) spares the walk over its whole snapshot.
    // A full sync (start, --sync-period, drift) takes the snapshot whatever the source tells:
    // a told change missed would otherwise live until the object changed again.
    const delta = this.o.source.changesSince?.(isFullReason(reason) ? undefined : this.sourceVersion);
    const upd = this.store.update(() => this.o.source.snapshot(), delta?.changes);
    this.sourceVersion = delta?.version;
    const objectsOf = (refs: ReadonlySet<string>) => this.store.objectsOf(refs);
    const built = upd.result;
    const modelAt = performance.now();
    this.logDiagnostics(built.diagnostics);
    const dirty: Set<string> | 'all' = upd.dirty === 'all' ? 'all' : new Set(upd.dirty);
    for (const r of this.quarantine.release(objectsOf, dirty)) {
      this.o.log.info({ service: r }, 'service changed: leaving quarantine');
      if (dirty !== 'all') dirty.add(r);
    }
    if (dirty !== 'all') for (const r of this.requeued) dirty.add(r);
    this.requeued.clear();
    const { config, notes } = resolveConfig(this.o.base, built.model, this.o.proxyName ?? 'nftproxy');
    this.logConfigNotes(notes);
    this.node = built.model.nodes.get(this.o.base.nodeName);
    this.o.metrics?.onModel({ services: built.model.services.length, endpointSlices: this.store.sliceCount, nodes: built.model.nodes.size }, built.diagnostics);
    const serviceOf = (ref: string): Service | undefined => (this.quarantine.holds(ref) ? undefined : this.store.service(ref));
    const comp = this.compiler.update(built.model, config, dirty, serviceOf, this.affinity.generationOf);
    // Right after compiling, failed sync or not: an affinity endpoint missing now must come
    // back under a new key whatever the kernel got.
    this.affinity.settle(comp.parts, performance.now(), comp.changed);
    const compiledAt = performance.now();
    this.kernel = comp.parts.map((p, i) => kernelFamilyUpdate(this.kernel?.[i], p, comp.changed));
    // where a sync's time goes, in its log line: the model, the compile (and what is derived
    // from it per service port), the kernel objects, then the kernel (applyMs)
    const phases = { modelMs: round(modelAt - start), compileMs: round(compiledAt - modelAt), objectsMs: round(performance.now() - compiledAt) };
    if (comp.changed === 'all' || this.healthEntries === undefined) this.healthEntries = new Map(serviceHealthOf(built.model, this.o.base.nodeName).map((h) => [`${h.namespace}/${h.name}`, h]));
    else for (const ref of comp.changed) {
      const svc = this.store.service(ref);
      const h = svc ? serviceHealthOf({ services: [svc], slices: built.model.slices, nodes: built.model.nodes }, this.o.base.nodeName)[0] : undefined;
      if (h) this.healthEntries.set(ref, h); else this.healthEntries.delete(ref);
    }
    const full = isFullReason(reason) || !this.o.applier.knowsKernelState;
    this.o.log.debug({ reason, full, changed: comp.changed === 'all' ? 'all' : comp.changed.size }, 'sync started');
    let result: SyncResult | undefined;
    let failure: unknown;
    try {
      result = await this.o.applier.sync(this.kernel, { full });
    } catch (e) {
      failure = e;
    }
    const ackedAt = performance.now();
    // What the daemon keeps of every port (its log's counts, conntrack cleanup, BPF, metrics)
    // follows the compile whether the kernel took the sync or not, but after the kernel answered:
    // bookkeeping, off the path from the event to the ack (~0.1 s of a 10k-service cold start).
    const portChanges = this.ports.update(comp.parts, comp.changed);
    const counts = {
      services: built.model.services.length - this.quarantine.size,
      servicePorts: this.ports.servicePorts,
      endpoints: this.ports.endpoints,
      skipped: built.diagnostics.length,
      quarantined: this.quarantine.size,
    };
    if (result === undefined) {
      const e = failure;
      const durationMs = performance.now() - start;
      if (e instanceof ApplyError) {
        const culprits = [...new Set(e.culprits.map((id) => this.ports.serviceOfPort(id)).filter((s): s is string => s !== undefined))];
        if (culprits.length) {
          this.quarantine.add(objectsOf, culprits, e.error.message);
          // compiled again next time, now left out
          for (const c of culprits) this.requeued.add(c);
        }
        this.o.log.error({ reason, kind: e.kind, code: e.error.code, error: e.error.message, quarantined: culprits, durationMs: round(durationMs) }, culprits.length ? 'the kernel refused the sync; quarantining the services that caused it and retrying' : 'the kernel refused the sync; retrying with backoff (a full sync)');
      } else {
        this.o.log.error({ reason, error: String(e), durationMs: round(durationMs) }, 'sync failed; retrying with backoff');
      }
      this.report({ reason, ok: false, kind: full ? 'full' : 'partial', ops: 0, durationMs, ...counts });
      return false;
    }
    const ackMs = ackedAt - start;
    if (this.o.afterSync) {
      try {
        await this.o.afterSync({ changes: portChanges, all: () => this.ports.all() }, config);
      } catch (e) {
        this.o.log.warn({ error: String(e) }, 'post-sync cleanup failed');
      }
    }
    const durationMs = performance.now() - start;
    if (result.ops > 0 || result.kind === 'full') {
      // eventToAckMs: from the change (for a start sync: the source's initial state in hand) to the kernel's last ack
      this.o.log.info({ reason, kind: result.kind, ops: result.ops, transactions: result.transactions, durationMs: round(durationMs), ackMs: round(ackMs), applyMs: round(result.durationMs), ...phases, ...(queuedAt !== undefined ? { eventToAckMs: round(ackedAt - queuedAt) } : {}), ...counts, ...(result.carriedAffinity ? { carriedAffinity: result.carriedAffinity } : {}) }, 'synced');
    } else {
      this.o.log.debug({ reason, durationMs: round(durationMs) }, 'nothing to change');
    }
    this.lastSuccess = Date.now();
    // the compiled parts as kept (the next sync updates them in place): the inspection socket
    // serves them, read when asked
    this.lastApplied = { parts: comp.parts, config, diagnostics: built.diagnostics.map(formatDiagnostic), notes, ignored: built.ignored, at: this.lastSuccess };
    if (this.o.metrics) {
      this.o.metrics.onChanges(upd.changes);
      this.o.metrics.onNoLocalEndpoints(this.ports.noLocalEndpoints);
      for (const t of upd.changes.triggers) this.o.metrics.networkProgramming.observe(Math.max(0, this.lastSuccess - t) / 1000);
    }
    await this.o.serviceHealth?.sync([...this.healthEntries.values()], healthHostsOf(comp.parts));
    this.report({ reason, ok: true, kind: result.kind, ops: result.ops, durationMs, ...counts });
    // the spare groups the change left wanted (render/kernel/spares.ts): after its ack was
    // logged, so that the table validation they cost is not on the change's path
    if (result.kind === 'partial') await this.makeSpares(reason);
    return true;
  }

  private async makeSpares(reason: SyncReason): Promise<void> {
    try {
      const r = await this.o.applier.makeSpares();
      if (r) this.o.log.debug({ reason, ops: r.ops, applyMs: round(r.durationMs) }, 'spare endpoint-count groups made');
    } catch (e) {
      this.o.log.warn({ reason, error: e instanceof ApplyError ? e.error.message : String(e) }, 'making spare endpoint-count groups failed; the next sync is a full one');
    }
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

  // A skipped object is logged when it first appears, not on every sync. The model keeps a
  // diagnostic object while its object is unchanged: only new ones are formatted.
  private logDiagnostics(diagnostics: readonly Diagnostic[]): void {
    const now = new Map<Diagnostic, string>();
    const before = new Set(this.loggedDiagnostics.values());
    for (const d of diagnostics) {
      const line = this.loggedDiagnostics.get(d) ?? formatDiagnostic(d);
      now.set(d, line);
      if (!before.has(line)) this.o.log.warn({ skipped: line }, 'object skipped');
    }
    this.loggedDiagnostics = now;
  }
}

const round = (ms: number): number => Math.round(ms * 10) / 10;

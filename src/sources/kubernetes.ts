// The Kubernetes API as a live source for the proxier: Services and EndpointSlices
// cluster-wide, and this node's own Node object, each kept by a ResilientInformer.
//
// Two promises matter to the node's traffic:
// - start() resolves only when every informer holds its first complete list. A sync from
//   a partial view (Services without their EndpointSlices, or nothing at all) would
//   program rejects or drop every service: a blackholed node.
// - Errors never clear a cache. While the API server is unreachable the node keeps
//   proxying to what it last knew, which is what kube-proxy does too.
import { KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { ObjectSource, SourceDelta } from './object-source.js';
import type { SourceChange, SourceObject } from '../model/build-model.js';
import { type InformerOptions, ResilientInformer, type ResourceSpec } from './kubernetes-informer.js';

export type KubernetesSourceOptions = InformerOptions;

export interface KubernetesSourceStatus {
  /** every informer has loaded its first list (start() has resolved) */
  readonly synced: boolean;
  /** every informer has a watch established right now */
  readonly connected: boolean;
  /** the most recent failure of any informer ("Service: …"), kept after recovery */
  readonly lastError?: string;
  /** informer restarts after errors, all resources */
  readonly restarts: number;
}

/** In-cluster configuration (service account) by default, a kubeconfig file when given. */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path !== undefined) {
    kc.loadFromFile(path);
  } else {
    // loadFromCluster does not check: it would build "https://undefined:undefined".
    if (!process.env.KUBERNETES_SERVICE_HOST || !process.env.KUBERNETES_SERVICE_PORT) {
      throw new Error('not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST/PORT unset): give --kubeconfig');
    }
    kc.loadFromCluster();
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error(`${path ?? 'in-cluster config'}: no current cluster`);
  return kc;
}

export function resourcesFor(nodeName: string): readonly ResourceSpec[] {
  return [
    { kind: 'Service', apiVersion: 'v1', path: '/api/v1/services' },
    { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', path: '/apis/discovery.k8s.io/v1/endpointslices' },
    // Only this node: its addresses and topology labels, not every node's heartbeat churn.
    { kind: 'Node', apiVersion: 'v1', path: '/api/v1/nodes', fieldSelector: `metadata.name=${nodeName}` },
  ];
}

export class KubernetesSource implements ObjectSource {
  private readonly informers: readonly ResilientInformer[];
  private started = false;

  constructor(kubeConfig: KubeConfig, nodeName: string, onChange: () => void, log: Logger, opts: KubernetesSourceOptions = {}) {
    if (nodeName === '') throw new Error('KubernetesSource: the node name is empty');
    const sourceLog = log.child({ source: 'kubernetes' });
    // Changes before start() has resolved are part of the first snapshot anyway.
    const changed = (): void => {
      if (this.started) onChange();
    };
    this.informers = resourcesFor(nodeName).map((spec) => new ResilientInformer(kubeConfig, spec, changed, sourceLog, opts));
  }

  /** Resolves when Services, EndpointSlices and the Node have each been listed once. */
  async start(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.start()));
    this.started = true;
  }

  stop(): void {
    this.started = false;
    for (const i of this.informers) i.stop();
  }

  /**
   * Every cached object (trimmed, with kind and apiVersion), the same object while unchanged.
   * Each informer's part is kept until its cache changes: an EndpointSlice event lists the
   * slices again, not the Services, and a sync with nothing new copies nothing.
   */
  snapshot(): readonly SourceObject[] {
    const versions = this.informers.map((i) => i.version);
    const c = this.last;
    if (c && versions.every((v, k) => v === c.versions[k])) return c.all;
    const parts = this.informers.map((i, k) => (c && c.versions[k] === versions[k] ? c.parts[k]! : i.objects().map((o) => this.sourceObject(i.spec, o))));
    const all = ([] as SourceObject[]).concat(...parts);
    this.last = { versions, parts, all };
    return all;
  }

  private last: { readonly versions: readonly number[]; readonly parts: readonly (readonly SourceObject[])[]; readonly all: readonly SourceObject[] } | undefined;

  /** the informers' versions when changesSince last answered, under the version it gave */
  private mark: { readonly version: number; readonly versions: readonly number[] } | undefined;

  /**
   * What the caches got since `since` (a version this returned): the objects each event
   * replaced, dropped or added, as the snapshot hands them out. Undefined changes when not
   * known (no `since`, another `since` than the last answer's, or too much since). One consumer.
   */
  changesSince(since: number | undefined): SourceDelta {
    const prev = this.mark;
    const versions = this.informers.map((i) => i.version);
    this.mark = { version: (prev?.version ?? 0) + 1, versions };
    if (since === undefined || prev === undefined || since !== prev.version) return { version: this.mark.version, changes: undefined };
    const changes: SourceChange[] = [];
    for (const [k, i] of this.informers.entries()) {
      const told = i.changesSince(prev.versions[k]);
      if (told === undefined) return { version: this.mark.version, changes: undefined };
      for (const c of told) changes.push({ ...(c.before ? { before: this.sourceObject(i.spec, c.before) } : {}), ...(c.after ? { after: this.sourceObject(i.spec, c.after) } : {}) });
    }
    return { version: this.mark.version, changes };
  }

  status(): KubernetesSourceStatus {
    const all = this.informers.map((i) => ({ kind: i.spec.kind, s: i.status() }));
    const latest = all.filter((x) => x.s.lastError !== undefined).sort((a, b) => (b.s.lastErrorAt ?? 0) - (a.s.lastErrorAt ?? 0))[0];
    return {
      synced: all.every((x) => x.s.synced),
      connected: all.every((x) => x.s.connected),
      ...(latest ? { lastError: `${latest.kind}: ${latest.s.lastError}` } : {}),
      restarts: all.reduce((n, x) => n + x.s.restarts, 0),
    };
  }

  // The cached objects are handed out as they are (trimming gave them their kind and
  // apiVersion; nothing mutates them): an unchanged object is the same object in every
  // snapshot, so the model's per-object cache skips it, and no sync copies 10,000 objects.
  private readonly wrapped = new WeakMap<KubernetesObject, SourceObject>();
  private sourceObject(spec: ResourceSpec, o: KubernetesObject): SourceObject {
    let s = this.wrapped.get(o);
    if (!s) {
      const m = o.metadata ?? {};
      const where = m.namespace ? `${m.namespace}/${m.name ?? ''}` : (m.name ?? '');
      s = { object: o, origin: `api:${spec.kind}/${where}` };
      this.wrapped.set(o, s);
    }
    return s;
  }
}

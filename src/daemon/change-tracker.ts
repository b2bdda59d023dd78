// What changed between two snapshots of the source, for kube-proxy's change counters and
// its network-programming latency (EndpointSlice `endpoints.kubernetes.io/last-change-
// trigger-time`: when the change that led to this slice version happened upstream).
// An object is the same version when its resourceVersion (API objects) or, failing that,
// its identity (manifest files re-use unchanged objects) is the same.
import type { SourceObject } from '../model/build-model.js';

const TRIGGER_ANNOTATION = 'endpoints.kubernetes.io/last-change-trigger-time';

interface Meta { kind?: unknown; metadata?: { namespace?: unknown; name?: unknown; resourceVersion?: unknown; annotations?: Record<string, unknown> } }

const keyOf = (o: Meta): string | undefined =>
  typeof o.kind === 'string' && typeof o.metadata?.name === 'string' ? `${o.kind}/${String(o.metadata.namespace ?? '')}/${o.metadata.name}` : undefined;

export interface Changes {
  readonly services: number;
  readonly endpointSlices: number;
  /** epoch ms of the trigger times of slice versions first seen now */
  readonly triggers: readonly number[];
}

export class ChangeTracker {
  private last = new Map<string, unknown>();

  /** Compare with the previous snapshot and remember this one. */
  observe(objects: readonly SourceObject[]): Changes {
    const now = new Map<string, unknown>();
    let services = 0, endpointSlices = 0;
    const triggers: number[] = [];
    for (const { object } of objects) {
      if (typeof object !== 'object' || object === null) continue;
      const o = object as Meta;
      const key = keyOf(o);
      if (key === undefined) continue;
      const version = typeof o.metadata?.resourceVersion === 'string' ? o.metadata.resourceVersion : object;
      now.set(key, version);
      if (this.last.get(key) === version) continue;
      if (o.kind === 'Service') services++;
      if (o.kind === 'EndpointSlice') {
        endpointSlices++;
        const t = o.metadata?.annotations?.[TRIGGER_ANNOTATION];
        const ms = typeof t === 'string' ? Date.parse(t) : NaN;
        if (!Number.isNaN(ms)) triggers.push(ms);
      }
    }
    for (const key of this.last.keys()) {
      if (now.has(key)) continue;
      if (key.startsWith('Service/')) services++;
      if (key.startsWith('EndpointSlice/')) endpointSlices++;
    }
    this.last = now;
    return { services, endpointSlices, triggers };
  }
}

// Services whose rules the kernel refused. They are left out of every sync until their
// objects change (a new version may be fine), so one bad Service never blocks the others.
import { createHash } from 'node:crypto';
import type { SourceObject } from '../model/build-model.js';

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** "ns/name" of the Service an object belongs to (itself, or the Service its slice names). */
function serviceRefOf(o: unknown): string | undefined {
  if (typeof o !== 'object' || o === null) return undefined;
  const r = o as { kind?: unknown; metadata?: { namespace?: unknown; name?: unknown; labels?: Record<string, unknown> } };
  const ns = typeof r.metadata?.namespace === 'string' ? r.metadata.namespace : 'default';
  if (r.kind === 'Service' && typeof r.metadata?.name === 'string') return `${ns}/${r.metadata.name}`;
  const svc = r.metadata?.labels?.[SERVICE_NAME_LABEL];
  if (r.kind === 'EndpointSlice' && typeof svc === 'string') return `${ns}/${svc}`;
  return undefined;
}

/** Fingerprint of everything that shapes one Service's rules. */
function fingerprints(objects: readonly SourceObject[], refs: ReadonlySet<string>): Map<string, string> {
  const hashes = new Map<string, ReturnType<typeof createHash>>();
  for (const { object } of objects) {
    const ref = serviceRefOf(object);
    if (ref === undefined || !refs.has(ref)) continue;
    let h = hashes.get(ref);
    if (!h) hashes.set(ref, (h = createHash('sha256')));
    h.update(JSON.stringify(object));
  }
  return new Map([...refs].map((r) => [r, hashes.get(r)?.digest('hex') ?? 'absent']));
}

/** The objects (Service, EndpointSlices) of these services, as the last model update holds them, in a stable order. */
export type ObjectsOf = (refs: ReadonlySet<string>) => readonly SourceObject[];

export class Quarantine {
  private held = new Map<string, { fingerprint: string; reason: string }>();

  add(objectsOf: ObjectsOf, services: readonly string[], reason: string): void {
    const refs = new Set(services);
    for (const [ref, fp] of fingerprints(objectsOf(refs), refs)) this.held.set(ref, { fingerprint: fp, reason });
  }

  /** Release the quarantined services whose objects changed; with `dirty` known, only those are fingerprinted. */
  release(objectsOf: ObjectsOf, dirty: ReadonlySet<string> | 'all'): string[] {
    if (this.held.size === 0) return [];
    const candidates = new Set([...this.held.keys()].filter((r) => dirty === 'all' || dirty.has(r)));
    if (candidates.size === 0) return [];
    const now = fingerprints(objectsOf(candidates), candidates);
    const released: string[] = [];
    for (const ref of candidates) {
      if (now.get(ref) !== this.held.get(ref)!.fingerprint) {
        this.held.delete(ref);
        released.push(ref);
      }
    }
    return released;
  }

  holds(ref: string): boolean {
    return this.held.has(ref);
  }

  get size(): number {
    return this.held.size;
  }
}

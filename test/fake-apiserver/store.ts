// The fake's etcd: objects by kind and key, one global resourceVersion that every write
// bumps, and a history of events since the last compaction. The history is what makes the
// two consistency promises of the real server possible: a watch can resume from any
// resourceVersion still in the window, and a paginated list is a snapshot at one version.
import { randomUUID } from 'node:crypto';
import { type Kind, RESOURCES, resourceOf } from './resources.js';

export type KObject = Record<string, unknown> & { metadata: Meta };
export interface Meta {
  name: string;
  namespace?: string;
  resourceVersion?: string;
  uid?: string;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  [k: string]: unknown;
}

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoredEvent {
  readonly rv: number;
  readonly type: EventType;
  readonly kind: Kind;
  readonly key: string;
  /** the object after the change; for DELETED its last state, stamped with the deletion's version */
  readonly object: KObject;
  /** the object before the change (MODIFIED, DELETED): selector-filtered watches need both */
  readonly prev?: KObject;
}

type State = Map<Kind, Map<string, KObject>>;

export class StoreError extends Error {
  constructor(readonly code: 404 | 409 | 422, message: string) {
    super(message);
  }
}

const emptyState = (): State => new Map(RESOURCES.map((r) => [r.kind, new Map()]));

export function keyOf(kind: Kind, meta: { name: string; namespace?: string }): string {
  return resourceOf(kind).namespaced ? `${meta.namespace ?? 'default'}/${meta.name}` : meta.name;
}

/** Seconds precision, like the API server's metav1.Time. */
const now = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

export class Store {
  private rv = 1;
  private state: State = emptyState();
  /** the state at `base.rv`, from which history replays; everything before it is compacted away */
  private base: { rv: number; state: State } = { rv: 1, state: emptyState() };
  private history: StoredEvent[] = [];
  private readonly listeners = new Set<(e: StoredEvent) => void>();

  /** @param historyLimit events kept for resuming watches (the real server's watch cache is bounded too) */
  constructor(private readonly historyLimit = Infinity) {}

  get resourceVersion(): number {
    return this.rv;
  }

  /** The oldest resourceVersion a watch may still resume from. */
  get oldestResumable(): number {
    return this.base.rv;
  }

  create(kind: Kind, input: Record<string, unknown>): KObject {
    const obj = this.normalize(kind, input);
    const key = keyOf(kind, obj.metadata);
    if (this.table(kind).has(key)) throw new StoreError(409, `${kind} "${key}" already exists`);
    obj.metadata.uid = randomUUID();
    obj.metadata.creationTimestamp = now();
    return this.write('ADDED', kind, key, obj);
  }

  update(kind: Kind, input: Record<string, unknown>): KObject {
    const obj = this.normalize(kind, input);
    const key = keyOf(kind, obj.metadata);
    const prev = this.table(kind).get(key);
    if (!prev) throw new StoreError(404, `${kind} "${key}" not found`);
    obj.metadata.uid = prev.metadata.uid;
    obj.metadata.creationTimestamp = prev.metadata.creationTimestamp;
    return this.write('MODIFIED', kind, key, obj, prev);
  }

  delete(kind: Kind, ref: { metadata: { name: string; namespace?: string } } | Record<string, unknown>): KObject {
    const meta = (ref as { metadata?: { name?: unknown; namespace?: unknown } }).metadata;
    if (!meta || typeof meta.name !== 'string') throw new StoreError(422, 'metadata.name is required');
    const key = keyOf(kind, { name: meta.name, ...(typeof meta.namespace === 'string' ? { namespace: meta.namespace } : {}) });
    const prev = this.table(kind).get(key);
    if (!prev) throw new StoreError(404, `${kind} "${key}" not found`);
    const last = structuredClone(prev);
    return this.write('DELETED', kind, key, last, prev);
  }

  get(kind: Kind, key: string): KObject | undefined {
    const o = this.table(kind).get(key);
    return o && structuredClone(o);
  }

  /**
   * Every object of a kind as of resourceVersion `at` (default: now), sorted by key as etcd
   * returns them; undefined when `at` is older than the retained history.
   */
  list(kind: Kind, at = this.rv): KObject[] | undefined {
    let table: Map<string, KObject>;
    if (at >= this.rv) table = this.table(kind);
    else if (at < this.base.rv) return undefined;
    else {
      table = new Map(this.base.state.get(kind));
      for (const e of this.history) {
        if (e.rv > at) break;
        if (e.kind !== kind) continue;
        if (e.type === 'DELETED') table.delete(e.key);
        else table.set(e.key, e.object);
      }
    }
    return [...table.keys()].sort().map((k) => structuredClone(table.get(k)!));
  }

  /** Events of a kind after resourceVersion `after`; undefined when that is already compacted. */
  eventsAfter(kind: Kind, after: number): StoredEvent[] | undefined {
    if (after < this.base.rv) return undefined;
    return this.history.filter((e) => e.kind === kind && e.rv > after);
  }

  /** Forget history up to `upTo` (default: everything), as etcd compaction does. */
  compact(upTo = this.rv): void {
    const keep: StoredEvent[] = [];
    for (const e of this.history) {
      if (e.rv > upTo) {
        keep.push(e);
        continue;
      }
      const t = this.base.state.get(e.kind)!;
      if (e.type === 'DELETED') t.delete(e.key);
      else t.set(e.key, e.object);
    }
    this.history = keep;
    this.base = { rv: Math.max(this.base.rv, Math.min(upTo, this.rv)), state: this.base.state };
  }

  subscribe(fn: (e: StoredEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private table(kind: Kind): Map<string, KObject> {
    return this.state.get(kind)!;
  }

  private write(type: EventType, kind: Kind, key: string, obj: KObject, prev?: KObject): KObject {
    this.rv++;
    obj.metadata.resourceVersion = String(this.rv);
    if (type === 'DELETED') this.table(kind).delete(key);
    else this.table(kind).set(key, obj);
    const event: StoredEvent = prev ? { rv: this.rv, type, kind, key, object: obj, prev } : { rv: this.rv, type, kind, key, object: obj };
    this.history.push(event);
    if (this.history.length > this.historyLimit) this.compact(this.history[this.history.length - this.historyLimit - 1]!.rv);
    for (const l of [...this.listeners]) l(event);
    return structuredClone(obj);
  }

  /** A deep copy without kind/apiVersion (stored form), with the namespace defaulted. */
  private normalize(kind: Kind, input: Record<string, unknown>): KObject {
    const { kind: k, apiVersion: _a, ...rest } = structuredClone(input);
    if (k !== undefined && k !== kind) throw new StoreError(422, `object of kind ${String(k)} given as ${kind}`);
    const meta = rest.metadata as Meta | undefined;
    if (!meta || typeof meta.name !== 'string' || meta.name === '') throw new StoreError(422, 'metadata.name is required');
    if (resourceOf(kind).namespaced) meta.namespace ??= 'default';
    else delete meta.namespace;
    return rest as KObject;
  }
}

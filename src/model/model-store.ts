// The model, kept across syncs: a sync after one change costs the change, not the cluster.
//
// Sources hand back the same object while it is unchanged (a manifest file not edited, an
// informer's cached version) and keep their order, so two consecutive snapshots differ only
// where something changed: a walk comparing them by identity finds those positions without
// looking at any object. Each changed object is then normalized (build-model.ts remembers the
// result per object) and folded into the model: a Service replaced in its place, an
// EndpointSlice into its service's list, a Node into the node map; the service refs it touches
// are `dirty`, and everything downstream recompiles only those.
//
// What depends on more than the changed object falls back to a full build (buildModel, O(N)):
// a snapshot too different from the last, an object that duplicates another's key, a Service
// whose destinations (ClusterIP:port, NodePort …) collide with another's, or any change to
// Services while some Service is skipped for such a conflict (who keeps a destination depends
// on every claimant). Those are rare, and a full build gives the same answer as ever.
import { type BuildResult, type SourceChange, type SourceObject, buildModel, classify, nodePortClaimKeys, addressClaimKeys, objectKey } from './build-model.js';
import type { Diagnostic } from './diagnostic.js';
import { type EndpointSlice, type Model, type Node, type Service, refString } from './types.js';

const TRIGGER_ANNOTATION = 'endpoints.kubernetes.io/last-change-trigger-time';

export interface Changes {
  readonly services: number;
  readonly endpointSlices: number;
  /** epoch ms of the trigger times (EndpointSlice annotation) of slice versions new in this update */
  readonly triggers: readonly number[];
}

export interface ModelUpdate {
  readonly result: BuildResult;
  /** service refs ("ns/name") whose Service or slices may differ from the last update; 'all' after a full build */
  readonly dirty: ReadonlySet<string> | 'all';
  /** a Node object changed (its addresses and labels feed the configuration) */
  readonly nodesChanged: boolean;
  /** Services and EndpointSlices new, changed or gone since the last update (kube-proxy's change counters) */
  readonly changes: Changes;
}

/** How far a changed run may shift two snapshots before the walk gives up and builds afresh. */
const LOOKAHEAD = 64;
/** Beyond this many changed objects, a full build is as cheap and simpler. */
const MAX_INCREMENTAL = 2000;

interface Indexes {
  /** current object per key (kind/ns/name); a key held twice means a full build */
  readonly objects: Map<string, unknown>;
  /** accepted services, sorted, and each one's position */
  readonly services: Service[];
  readonly position: Map<string, number>;
  readonly slices: Map<string, EndpointSlice[]>;
  /** slice object key -> the service ref it belongs to */
  readonly sliceOwner: Map<string, string>;
  readonly nodes: Map<string, Node>;
  /** destination claims of accepted services -> their ref */
  readonly claims: Map<string, string>;
  readonly diagnostics: Map<string, Diagnostic>;
  readonly ignored: Map<string, { ref: string; reason: string }>;
  /** some Service is skipped because of another (conflict, duplicate): Service changes rebuild */
  conflicted: boolean;
  /** keys held by more than one object: any change to them rebuilds */
  readonly duplicates: Set<string>;
}

export class ModelStore {
  private prev: readonly SourceObject[] | undefined;
  private ix: Indexes | undefined;
  private result: BuildResult | undefined;
  /** services removed in the update under way whose place a new version may take */
  private readonly holes = new Set<string>();
  /** full builds so far (tests, debug logs) */
  fullBuilds = 0;

  constructor(private readonly proxyName = 'nftproxy') {}

  /**
   * `objects`: the source's snapshot, or a function that makes it (called only when needed).
   * `told`: what changed since the snapshot of the last update, when the source knows it: then
   * nothing walks the snapshot, and a one-object change costs that object. Without it, the
   * last snapshot and this one are compared by identity (O(objects), no object read).
   */
  update(objects: readonly SourceObject[] | (() => readonly SourceObject[]), told?: readonly SourceChange[]): ModelUpdate {
    const list = typeof objects === 'function' ? objects : () => objects;
    const pairs = !this.ix ? undefined : told ?? (this.prev ? changedPairs(this.prev, list()) : undefined);
    const inc = pairs && pairs.length <= MAX_INCREMENTAL ? this.incremental(pairs) : undefined;
    if (inc) {
      // a told update leaves no snapshot to compare the next one with: the next untold one builds afresh
      this.prev = told ? undefined : list();
      return inc;
    }
    const all = list();
    this.prev = all;
    return this.full(all, pairs);
  }

  private full(objects: readonly SourceObject[], pairs: readonly Pair[] | undefined): ModelUpdate {
    this.fullBuilds++;
    const result = buildModel(objects, this.proxyName);
    const ix: Indexes = {
      objects: new Map(), services: [...result.model.services], position: new Map(), slices: new Map(), sliceOwner: new Map(), nodes: new Map(result.model.nodes),
      claims: new Map(), diagnostics: new Map(), ignored: new Map(), duplicates: new Set(),
      conflicted: result.diagnostics.some((d) => d.code === 'address-conflict' || d.code === 'nodeport-conflict' || d.code === 'duplicate-object'),
    };
    for (const { object } of objects) {
      const key = objectKey(object);
      if (key === undefined) continue;
      if (ix.objects.has(key)) { ix.conflicted = true; ix.duplicates.add(key); } else ix.objects.set(key, object);
    }
    ix.services.forEach((s, i) => {
      const ref = refString(s.ref);
      ix.position.set(ref, i);
      for (const k of claimKeys(s)) ix.claims.set(k, ref);
    });
    for (const [ref, list] of result.model.slices) {
      ix.slices.set(ref, [...list]);
      for (const s of list) ix.sliceOwner.set(`EndpointSlice/${refString(s.ref)}`, ref);
    }
    // the notes of each object under its key, so a change to it replaces them; what only the
    // whole decides (conflicts, duplicates) under keys of their own
    const keyed = new Set<string>();
    objects.forEach(({ object, origin }, i) => {
      const c = classify(object, this.proxyName, origin);
      const k = objectKey(object);
      // a second object under one key (a duplicate) keeps its notes under a key of its own
      const key = k === undefined || keyed.has(k) ? `#${i}` : k;
      if (k !== undefined) keyed.add(k);
      if (c.kind === 'diagnostic') ix.diagnostics.set(key, c.diagnostic);
      if (c.kind === 'ignored') ix.ignored.set(key, c.ignored);
    });
    result.diagnostics.forEach((d, i) => {
      if (d.code === 'address-conflict' || d.code === 'nodeport-conflict' || d.code === 'duplicate-object') ix.diagnostics.set(`conflict #${i}`, d);
    });
    this.ix = ix;
    this.result = this.snapshotResult();
    return { result: this.result, dirty: 'all', nodesChanged: true, changes: countChanges(pairs, objects, this.fullBuilds === 1) };
  }

  /** the accepted service with this ref ("ns/name") */
  service(ref: string): Service | undefined {
    if (this.holes.has(ref)) return undefined;
    const at = this.ix?.position.get(ref);
    return at === undefined ? undefined : this.ix!.services[at];
  }

  /**
   * The source objects of these services (the Service and its EndpointSlices) as the last
   * update left them, sorted by key: what a quarantine fingerprints. O(objects); only asked
   * while a service is quarantined.
   */
  objectsOf(refs: ReadonlySet<string>): SourceObject[] {
    const ix = this.ix;
    if (!ix) return [];
    const keys: string[] = [];
    for (const key of ix.objects.keys()) {
      const owner = key.startsWith('Service/') ? key.slice('Service/'.length) : ix.sliceOwner.get(key);
      if (owner !== undefined && refs.has(owner)) keys.push(key);
    }
    return keys.sort().map((k) => ({ object: ix.objects.get(k) }));
  }

  /** EndpointSlices in the model */
  get sliceCount(): number {
    return this.ix?.sliceOwner.size ?? 0;
  }

  private snapshotResult(): BuildResult {
    const ix = this.ix!;
    const model: Model = { services: ix.services, slices: ix.slices, nodes: ix.nodes };
    return { model, diagnostics: [...ix.diagnostics.values()], ignored: [...ix.ignored.values()] };
  }

  /** Folds the changed objects in; undefined when only a full build can say what they mean. */
  private incremental(pairs: readonly Pair[]): ModelUpdate | undefined {
    const ix = this.ix!;
    // Decide before touching anything: a full build must start from the same indexes.
    for (const p of pairs) {
      for (const so of [p.before, p.after]) {
        if (!so) continue;
        const kind = kindOf(so.object);
        if (kind === 'Service' && ix.conflicted) return undefined;
      }
      const addKey = p.after ? objectKey(p.after.object) : undefined;
      const removeKey = p.before ? objectKey(p.before.object) : undefined;
      // an object without kind or name is a note only a full build places; a key two objects hold, too
      if ((p.after && addKey === undefined) || (p.before && removeKey === undefined)) return undefined;
      if ((addKey !== undefined && ix.duplicates.has(addKey)) || (removeKey !== undefined && ix.duplicates.has(removeKey))) return undefined;
      if (addKey !== undefined && addKey !== removeKey && ix.objects.has(addKey) && !pairs.some((q) => q.before && objectKey(q.before.object) === addKey)) return undefined;
    }
    const dirty = new Set<string>();
    let nodesChanged = false;
    const removed: [string, unknown][] = [];
    // removals first, so a key that moves between positions is free for its new object
    for (const p of pairs) if (p.before) {
      const key = objectKey(p.before.object);
      if (key === undefined || ix.objects.get(key) !== p.before.object) continue;
      ix.objects.delete(key);
      removed.push([key, p.before.object]);
      const r = this.remove(key, p.before.object);
      if (r === 'node') nodesChanged = true; else if (r) dirty.add(r);
    }
    for (const p of pairs) if (p.after) {
      const key = objectKey(p.after.object);
      if (key === undefined) continue;
      if (ix.objects.has(key)) return this.undoable();
      ix.objects.set(key, p.after.object);
      const r = this.add(key, p.after);
      if (r === undefined) return this.undoable();
      if (r === 'node') nodesChanged = true; else if (r !== '') dirty.add(r);
    }
    this.compact();
    this.result = this.snapshotResult();
    return { result: this.result, dirty, nodesChanged, changes: countChanges(pairs, [], false) };
  }

  // A change that turned out to need a full build after indexes were touched: the caller
  // builds afresh (update() falls back when incremental() returns undefined).
  private undoable(): undefined {
    this.ix = undefined;
    this.holes.clear();
    return undefined;
  }

  /** returns the dirty service ref, 'node', or undefined for objects that feed nothing */
  private remove(key: string, object: unknown): string | 'node' | undefined {
    const ix = this.ix!;
    this.dropNotes(key);
    const kind = kindOf(object);
    if (kind === 'Service') {
      const ref = key.slice('Service/'.length);
      const at = ix.position.get(ref);
      if (at === undefined || this.holes.has(ref)) return undefined;
      for (const k of claimKeys(ix.services[at]!)) if (ix.claims.get(k) === ref) ix.claims.delete(k);
      // a hole at its place: the new version of a replaced service fills it (no shifting of
      // the 10,000 behind it); what stays a hole is compacted once the update is done
      this.holes.add(ref);
      return ref;
    }
    if (kind === 'EndpointSlice') {
      const ref = ix.sliceOwner.get(key);
      if (ref === undefined) return undefined;
      ix.sliceOwner.delete(key);
      const name = key.slice(key.lastIndexOf('/') + 1);
      const list = (ix.slices.get(ref) ?? []).filter((s) => s.ref.name !== name);
      if (list.length) ix.slices.set(ref, list); else ix.slices.delete(ref);
      return ref;
    }
    if (kind === 'Node') {
      const name = key.slice('Node//'.length);
      ix.nodes.delete(name);
      return 'node';
    }
    return undefined;
  }

  /** as remove(); '' for an object that feeds nothing, undefined when a full build must decide */
  private add(key: string, so: SourceObject): string | 'node' | undefined {
    const ix = this.ix!;
    const c = classify(so.object, this.proxyName, so.origin);
    switch (c.kind) {
      case 'service': {
        const s = c.service;
        const ref = refString(s.ref);
        const keys = claimKeys(s);
        // a destination another service holds, or one it holds twice: who keeps what is a full build's call
        if (keys.some((k) => ix.claims.has(k)) || new Set(keys).size !== keys.length) return undefined;
        for (const k of keys) ix.claims.set(k, ref);
        const at = ix.position.get(ref);
        if (at !== undefined && this.holes.delete(ref)) { ix.services[at] = s; return ref; }
        this.compact();
        let lo = 0, hi = ix.services.length;
        while (lo < hi) { const mid = (lo + hi) >> 1; if (refString(ix.services[mid]!.ref) < ref) lo = mid + 1; else hi = mid; }
        ix.services.splice(lo, 0, s);
        for (let i = lo; i < ix.services.length; i++) ix.position.set(refString(ix.services[i]!.ref), i);
        return ref;
      }
      case 'slice': {
        const s = c.slice;
        const ref = `${s.ref.namespace}/${s.serviceName}`;
        ix.sliceOwner.set(key, ref);
        const list = [...(ix.slices.get(ref) ?? []).filter((x) => x.ref.name !== s.ref.name), s].sort((a, b) => (a.ref.name < b.ref.name ? -1 : a.ref.name > b.ref.name ? 1 : 0));
        ix.slices.set(ref, list);
        return ref;
      }
      case 'node':
        ix.nodes.set(c.node.name, c.node);
        return 'node';
      case 'diagnostic':
        ix.diagnostics.set(key, c.diagnostic);
        return '';
      case 'ignored':
        ix.ignored.set(key, c.ignored);
        return '';
      case 'none':
        return '';
    }
  }

  /** services removed and not replaced: out of the array, the positions behind them renumbered */
  private compact(): void {
    if (this.holes.size === 0) return;
    const ix = this.ix!;
    const kept = ix.services.filter((s) => !this.holes.has(refString(s.ref)));
    for (const ref of this.holes) ix.position.delete(ref);
    this.holes.clear();
    ix.services.length = 0;
    kept.forEach((s, i) => { ix.services.push(s); ix.position.set(refString(s.ref), i); });
  }

  private dropNotes(key: string): void {
    this.ix!.diagnostics.delete(key);
    this.ix!.ignored.delete(key);
  }
}

const claimKeys = (s: Service): string[] => [...addressClaimKeys(s).map((k) => `a ${k}`), ...nodePortClaimKeys(s).map((k) => `n ${k}`)];

const isObject = (o: unknown): o is Record<string, unknown> => typeof o === 'object' && o !== null;
function kindOf(o: unknown): 'Service' | 'EndpointSlice' | 'Node' | undefined {
  if (!isObject(o)) return undefined;
  return o.kind === 'Service' || o.kind === 'EndpointSlice' || o.kind === 'Node' ? o.kind : undefined;
}

type Pair = SourceChange;

/**
 * The positions where two snapshots differ, as (before, after) pairs: a replaced object, an
 * inserted or a removed run. Compares objects by identity only. Undefined when a differing run
 * is longer than the walk looks ahead (a reordered or rebuilt snapshot).
 */
export function changedPairs(prev: readonly SourceObject[], next: readonly SourceObject[]): Pair[] | undefined {
  const out: Pair[] = [];
  let i = 0, j = 0;
  while (i < prev.length || j < next.length) {
    if (i < prev.length && j < next.length && prev[i]!.object === next[j]!.object) { i++; j++; continue; }
    if (i >= prev.length) { out.push({ after: next[j++]! }); continue; }
    if (j >= next.length) { out.push({ before: prev[i++]! }); continue; }
    // resync: the nearest (di, dj) where prev[i+di] is next[j+dj], smallest total shift first
    let found: [number, number] | undefined;
    for (let d = 1; d <= 2 * LOOKAHEAD && !found; d++) {
      for (let di = 0; di <= d && !found; di++) {
        const dj = d - di;
        if (di > LOOKAHEAD || dj > LOOKAHEAD) continue;
        if (i + di < prev.length && j + dj < next.length && prev[i + di]!.object === next[j + dj]!.object) found = [di, dj];
      }
    }
    if (!found) {
      // the rest differs: only acceptable near the end
      if (prev.length - i > LOOKAHEAD || next.length - j > LOOKAHEAD) return undefined;
      while (i < prev.length || j < next.length) out.push({ ...(i < prev.length ? { before: prev[i++]! } : {}), ...(j < next.length ? { after: next[j++]! } : {}) });
      break;
    }
    const [di, dj] = found;
    for (let k = 0; k < Math.max(di, dj); k++) out.push({ ...(k < di ? { before: prev[i + k]! } : {}), ...(k < dj ? { after: next[j + k]! } : {}) });
    i += di; j += dj;
  }
  return out;
}

function countChanges(pairs: readonly Pair[] | undefined, all: readonly SourceObject[], first: boolean): Changes {
  let services = 0, endpointSlices = 0;
  const triggers: number[] = [];
  const seen = (so: SourceObject | undefined, isNew: boolean): void => {
    if (!so) return;
    const kind = kindOf(so.object);
    if (kind === 'Service') services++;
    if (kind !== 'EndpointSlice') return;
    endpointSlices++;
    if (!isNew) return;
    const ann = ((so.object as { metadata?: { annotations?: Record<string, unknown> } }).metadata?.annotations ?? {})[TRIGGER_ANNOTATION];
    const ms = typeof ann === 'string' ? Date.parse(ann) : NaN;
    if (!Number.isNaN(ms)) triggers.push(ms);
  };
  if (pairs) {
    for (const p of pairs) {
      // a replaced object is one change; a removed or added one too
      if (p.after) seen(p.after, true);
      else seen(p.before, false);
    }
  } else if (first) for (const so of all) seen(so, true);
  return { services, endpointSlices, triggers };
}

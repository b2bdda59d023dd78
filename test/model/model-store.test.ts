// The model kept across syncs (src/model/model-store.ts) and the compiler kept across syncs
// (src/compile/incremental-compile.ts) against their from-scratch versions: after every one of
// a few hundred random changes (a slice replaced, a service changed, added, removed, an invalid
// object, a conflicting or duplicate one, a node change, a reordered snapshot), the kept model
// equals buildModel of the same snapshot, every service whose Service or slices changed is
// reported dirty, and the kept compiled parts equal compileParts of the same model.
import { describe, expect, it } from 'vitest';
import { type SourceChange, type SourceObject, buildModel } from '../../src/model/build-model.js';
import { ModelStore, changedPairs } from '../../src/model/model-store.js';
import { IncrementalCompiler } from '../../src/compile/incremental-compile.js';
import { compileParts } from '../../src/compile/compile.js';
import { resolveConfig } from '../../src/model/config.js';
import { type EndpointSlice, type Model, refString } from '../../src/model/types.js';
import { rng } from '../support/rng.js';
import { config, service, slice } from '../support/builders.js';
import { CLUSTER_ENV } from '../support/address-plan.js';

type Obj = Record<string, unknown>;

class World {
  /** the snapshot, in source order: objects are replaced, never mutated */
  objects: SourceObject[] = [];
  private n = 0;
  constructor(private readonly r: () => number) {}
  int = (k: number): number => Math.floor(this.r() * k);

  svc(i: number, opts: { ip?: number; port?: number; np?: boolean; ext?: number } = {}): Obj {
    return service(`ns${i % 3}`, `svc${i}`, {
      type: opts.np ? 'NodePort' : 'ClusterIP', clusterIP: `10.96.0.${opts.ip ?? i}`,
      ports: [{ name: 'http', port: opts.port ?? 80, targetPort: 8080, ...(opts.np ? { nodePort: 30000 + (i % 7) } : {}) }],
      ...(opts.ext !== undefined ? { externalIPs: [`192.0.2.${opts.ext}`] } : {}),
    });
  }
  sl(i: number, k: number, eps: number): Obj {
    return slice(`ns${i % 3}`, `svc${i}`, `svc${i}-${k}`, [{ name: 'http', port: 8080 }], Array.from({ length: eps }, (_, e) => ({ ip: `10.244.${i}.${e + 1 + this.int(3)}`, node: this.int(2) ? 'node-a' : 'node-b' })));
  }
  node(labels: Record<string, string>): Obj {
    return { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a', labels }, status: { addresses: [{ type: 'InternalIP', address: '192.168.0.2' }] } };
  }

  seed(): void {
    this.objects.push({ object: this.node({}) });
    for (let i = 1; i <= 20; i++) { this.n = i; this.objects.push({ object: this.svc(i) }, { object: this.sl(i, 1, 2) }); }
  }

  private at(pred: (o: Obj) => boolean): number[] {
    return this.objects.flatMap((so, i) => (pred(so.object as Obj) ? [i] : []));
  }
  private pick<T>(xs: readonly T[]): T | undefined { return xs.length ? xs[this.int(xs.length)] : undefined; }
  private replace(i: number, object: unknown): void { this.objects[i] = { object }; }

  mutate(): string {
    const k = this.int(14);
    const kindIs = (kind: string) => (o: Obj) => o.kind === kind;
    const nameOf = (o: Obj): string => String((o.metadata as Obj).name);
    const idx = (o: Obj): number => Number(nameOf(o).replace(/^svc(\d+).*$/, '$1'));
    switch (k) {
      case 0: case 1: case 2: case 3: { // a slice replaced: the common case
        const i = this.pick(this.at(kindIs('EndpointSlice')));
        if (i === undefined) return 'none';
        const o = this.objects[i]!.object as Obj;
        this.replace(i, this.sl(idx(o), Number(nameOf(o).split('-')[1]), 1 + this.int(4)));
        return 'slice replaced';
      }
      case 4: { // a service changed in place
        const i = this.pick(this.at(kindIs('Service')));
        if (i === undefined) return 'none';
        this.replace(i, this.svc(idx(this.objects[i]!.object as Obj), { port: 80 + this.int(3), np: this.int(2) === 0 }));
        return 'service changed';
      }
      case 5: { // a new service and slice, appended
        const i = ++this.n;
        this.objects.push({ object: this.svc(i) }, { object: this.sl(i, 1, 1 + this.int(3)) });
        return 'service added';
      }
      case 6: { // a service removed (its slice stays, as happens)
        const i = this.pick(this.at(kindIs('Service')));
        if (i !== undefined) this.objects.splice(i, 1);
        return 'service removed';
      }
      case 7: { // a second slice for a service
        const i = this.pick(this.at(kindIs('Service')));
        if (i === undefined) return 'none';
        this.objects.splice(i + 1, 0, { object: this.sl(idx(this.objects[i]!.object as Obj), 2 + this.int(3), 1) });
        return 'slice added';
      }
      case 8: { // an invalid object, then maybe its fix
        this.objects.push({ object: service('bad', `b${this.int(3)}`, { clusterIP: 'not-an-ip', ports: [{ port: 80 }] }) });
        return 'invalid service';
      }
      case 9: { // a service that takes another's ClusterIP:port (a conflict)
        const i = this.pick(this.at(kindIs('Service')));
        if (i === undefined) return 'none';
        this.replace(i, this.svc(idx(this.objects[i]!.object as Obj), { ip: 1 + this.int(5) }));
        return 'maybe conflicting service';
      }
      case 10: { // a duplicate of an existing object
        const i = this.pick(this.objects.map((_, j) => j));
        if (i !== undefined) this.objects.push({ object: structuredClone(this.objects[i]!.object) });
        return 'duplicate';
      }
      case 11: { // the node changes
        const i = this.pick(this.at(kindIs('Node')));
        if (i !== undefined) this.replace(i, this.node({ 'topology.kubernetes.io/zone': `z${this.int(3)}` }));
        return 'node changed';
      }
      case 12: { // remove any object
        const i = this.pick(this.objects.map((_, j) => j));
        if (i !== undefined) this.objects.splice(i, 1);
        return 'object removed';
      }
      default: { // reordered: a rebuilt snapshot
        for (let j = this.objects.length - 1; j > 0; j--) { const x = this.int(j + 1); [this.objects[j], this.objects[x]] = [this.objects[x]!, this.objects[j]!]; }
        return 'reordered';
      }
    }
  }
}

/**
 * What a source that knows its changes would say: every object gone and every object come.
 * Such a source keeps the order of what it did not change (the manifest watcher: files in
 * name order); one that reordered its objects cannot say so this way, and says it does not
 * know (undefined), as the store's caller then does.
 */
function told(prev: readonly SourceObject[], next: readonly SourceObject[]): SourceChange[] | undefined {
  const was = new Set(prev), now = new Set(next);
  const kept = (xs: readonly SourceObject[], other: Set<SourceObject>) => xs.filter((o) => other.has(o));
  const a = kept(prev, now), b = kept(next, was);
  if (a.some((o, i) => o !== b[i])) return undefined;
  return [...prev.filter((o) => !now.has(o)).map((before) => ({ before })), ...next.filter((o) => !was.has(o)).map((after) => ({ after }))];
}

const sliceTexts = (m: Model): Record<string, string[]> => Object.fromEntries([...m.slices].filter(([, l]) => l.length).map(([k, l]) => [k, l.map((s: EndpointSlice) => refString(s.ref))]).sort());
const diagTexts = (ds: readonly { kind: string; object: string; code: string }[]): string[] => ds.map((d) => `${d.kind} ${d.object} ${d.code}`).sort();

describe('model and compile kept across syncs', () => {
  // 'compared': the store walks two snapshots; 'told': the source says what changed (here:
  // the objects not in the last snapshot, and the last's not in this one, by identity).
  it.each([1, 2, 3, 4].flatMap((seed) => [[seed, 'compared'], [seed, 'told']] as const))('seed %i, changes %s: 300 random changes, each equal to a build from scratch', (seed, mode) => {
    const w = new World(rng(seed));
    w.seed();
    const store = new ModelStore();
    const compiler = new IncrementalCompiler();
    let prevModel: { services: Map<string, unknown>; slices: Record<string, string[]> } | undefined;
    let incremental = 0;
    let last: SourceObject[] | undefined;
    for (let step = 0; step < 300; step++) {
      const what = step === 0 ? 'seed' : w.mutate();
      const snap = [...w.objects];
      let reads = 0;
      const changes = mode === 'told' && last ? told(last, snap) : undefined;
      const upd = mode === 'compared' || !last ? store.update(snap) : store.update(() => { reads++; return snap; }, changes);
      last = snap;
      // told and folded in one by one: the snapshot is never read
      if (changes && upd.dirty !== 'all') expect(reads, `step ${step}`).toBe(0);
      const want = buildModel(snap);
      const tag = `step ${step} (${what})`;
      // the same model as a build from scratch
      expect(upd.result.model.services.map((s) => refString(s.ref)), tag).toEqual(want.model.services.map((s) => refString(s.ref)));
      upd.result.model.services.forEach((s, i) => expect(s, tag).toBe(want.model.services[i]));
      expect(sliceTexts(upd.result.model), tag).toEqual(sliceTexts(want.model));
      expect([...upd.result.model.nodes.keys()], tag).toEqual([...want.model.nodes.keys()]);
      expect(diagTexts(upd.result.diagnostics), tag).toEqual(diagTexts(want.diagnostics));
      expect(upd.result.ignored.map((g) => g.ref).sort(), tag).toEqual(want.ignored.map((g) => g.ref).sort());
      // every service that changed is dirty
      const now = { services: new Map(upd.result.model.services.map((s) => [refString(s.ref), s] as const)), slices: sliceTexts(upd.result.model) };
      if (upd.dirty !== 'all' && prevModel) {
        incremental++;
        for (const ref of new Set([...now.services.keys(), ...prevModel.services.keys(), ...Object.keys(now.slices), ...Object.keys(prevModel.slices)])) {
          const same = now.services.get(ref) === prevModel.services.get(ref) && JSON.stringify(now.slices[ref]) === JSON.stringify(prevModel.slices[ref]);
          if (!same) expect(upd.dirty.has(ref), `${tag}: ${ref} changed but is not dirty`).toBe(true);
        }
      }
      prevModel = now;
      // the compiled parts kept equal compileParts of the same model
      const { config: cfg } = resolveConfig(config({ ...CLUSTER_ENV, nodeIPs: ['192.168.0.2'] }) as never, upd.result.model);
      const comp = compiler.update(upd.result.model, cfg, upd.dirty, (ref) => store.service(ref));
      const fresh = compileParts(upd.result.model, cfg);
      comp.parts.forEach((p, i) => {
        const f = fresh[i]!;
        expect([...p.services.keys()].sort(), tag).toEqual([...f.services.keys()].sort());
        for (const [ref, rules] of f.services) expect(JSON.stringify(p.services.get(ref)), `${tag}: ${ref}`).toBe(JSON.stringify(rules));
      });
    }
    // a good part of the updates took the incremental path (the rest: reorders, and any Service
    // change while a conflict or duplicate stands, which this world accumulates)
    expect(incremental).toBeGreaterThan(60);
  });

  it('finds what changed between snapshots by identity: a replaced, an inserted and a removed object', () => {
    const o = (n: number): SourceObject => ({ object: { n } });
    const a = [o(1), o(2), o(3), o(4), o(5)];
    const x = o(9), y = o(8);
    const pairs = changedPairs(a, [a[0]!, x, a[2]!, y, a[3]!])!;
    expect(pairs).toEqual([{ before: a[1], after: x }, { after: y }, { before: a[4] }]);
    expect(changedPairs(a, [...a].reverse().concat(Array.from({ length: 200 }, (_, i) => o(100 + i))))).toBeUndefined();
  });
});

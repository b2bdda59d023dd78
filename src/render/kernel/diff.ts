// The differ: what the kernel holds (the last family applied) and what it should hold -> the
// ordered transactions of a partial sync, at the cost of the change: only units (service
// ports) whose compiled objects changed are compared.
//
// Why ordered transactions (make-before-break). A packet's path reads several objects: a
// dispatch map or set (service-ips, service-ips-dnat-cluster-3 …) sends it to a chain, whose
// rule looks it up in another map (endpoints-cluster-N). The kernel switches generations
// atomically, but each *lookup* reads the generation current at that moment, while a chain's
// *rules* are those of the generation current when the packet entered the base chain. So within
// one transaction that moves a service from dnat-cluster-3 to dnat-cluster-2, a packet can take
// the old dispatch and then miss in the new endpoints-cluster-3 (its keys gone): it leaves
// un-NATed and is refused. Measured: ~1 refused connection per 90-140 such transactions at
// 11-16k new connections/s; with the order below, 0 in 3.3 M. The same holds for a chain
// created and pointed at in one transaction: a packet on the old generation finds the verdict
// but no rules.
//   1. make:   new sets and chains (with their rules), and new keys in maps that are not
//              dispatch maps or sets. Nothing points at any of it yet. A new group's dispatch
//              rule too (the dispatch chains refilled): it names the group's dispatch set,
//              empty until 2.
//   2. switch: dispatch elements (new keys, and changed values as delete + add of the key),
//              rules of existing chains (flush + refill). Everything they point at exists
//              since 1 was acknowledged.
//   3. retire: dispatch keys that moved to another dispatch map or set. A key is in a dispatch
//              set (lower-dnat.ts: DISPATCH_CHAIN) or in service-ips, each one lookup of its
//              own, in rule order. Deleting the old entry in the transaction that adds the new
//              one would let a packet make the earlier lookup before the commit and the later
//              one after it, and miss both. Between 2 and 3 the key is in both: whichever lookup
//              comes first wins, and both ways lead to a complete path.
//   4. clean:  a gone group's dispatch rules (deleted by handle: ops.ts, delete-rule), stale
//              keys, then chains nothing points at any more (flushed, then deleted), then sets.
//              A packet that took an old dispatch before 3 committed still finds what it looks
//              up, because none of it goes before 3 is acknowledged.
// A change that only replaces values under the same keys is a switch alone: one transaction,
// since the lookup path does not change. A service deleted is a clean alone. A service moved
// between endpoint counts that other services use is data alone (make, switch, retire,
// clean: four transactions, none adding a verdict, so none that makes the kernel validate the
// table). So is one into a count next to a count in use: its group is there, a spare
// (spares.ts), and the spares the new count wants are made after the change (spareWork). One
// into a count with no group makes that group's chain and its dispatch rule as well (make:
// the kernel validates the table once), and a group neither in use nor wanted as a spare any
// more has its dispatch rules deleted (clean: deletions, no validation).
// The hairpin set is the one exception to "new keys are made first": it is looked up only in
// nat-postrouting, a base chain a packet enters after its DNAT was decided, so at a generation
// no older than the one that chose the endpoint. A new endpoint's pair therefore rides with the
// switch that makes the endpoint reachable (a packet DNATed to it finds its pair), and an
// endpoint replaced with the count unchanged costs two transactions (switch, clean). The old
// pair still goes in clean: a packet DNATed to the old endpoint just before the switch may
// reach postrouting just after it. test/datapath/make-before-break.datapath.test.ts runs a
// hairpin storm from an endpoint that comes and goes.
import { SET } from '../../compile/base-chains.js';
import type { Op } from './ops.js';
import { at, dispatchKeyOf, sameElement, sameHook, sameRules, setKind } from './ops.js';
import { type KBase, type KFamily, type KUnit, type KUnitElement, dispatchChains, unitsByService } from './family.js';
import { DISPATCH_CHAIN, dispatchSetName, groupDispatchTargets } from '../lower-dnat.js';
import { UnitCounts } from './counts.js';
import { countGroupObjects, sparesOf } from './spares.js';
import type { GroupObjects } from './objects.js';
import type { KChain, KElement, KRule, KSet, SetShape } from './types.js';

/** What the kernel holds for one family, as the applier knows it. */
export class AppliedFamily {
  private constructor(
    /** the family last applied (its units may be made again from `sources`) */
    public fam: KFamily,
    /** per service, what its applied units are made from (family.ts, KUnits): a copy, since the compiler updates its map in place */
    private readonly sources: Map<string, object>,
    private readonly counts: UnitCounts,
  ) {}

  /**
   * Right after a full sync of `fam`. `counts`: its units counted (the full sync counts them
   * as it writes them, fullOps), so that they are not made again to be counted.
   */
  static of(fam: KFamily, counts?: UnitCounts): AppliedFamily {
    if (!counts) {
      counts = new UnitCounts();
      for (const us of unitsByService(fam.units)) counts.add(us);
      for (const name of sparesOf(fam.base, counts.groupNames())) counts.spares.add(name);
    }
    const sources = new Map<string, object>();
    for (const ref of fam.units.refs()) {
      const src = fam.units.sourceOf(ref);
      if (src) sources.set(ref, src);
    }
    return new AppliedFamily(fam, sources, counts);
  }

  /** The ordered transactions from this state to `next`, or undefined when only a full sync can get there. */
  diff(next: KFamily): FamilyDelta | undefined {
    const prev = this.fam;
    if (prev.baseKey !== next.baseKey || prev.head.family !== next.head.family || prev.head.name !== next.head.name) return undefined;
    const d = new DeltaBuilder(next);
    if (prev.base !== next.base && !d.bases(prev.base.sets, next.base.sets, prev.base.chains, next.base.chains)) return undefined;

    const mine = this.sources;
    const now = next.units;
    const changed: string[] = [];
    if (next.changed) {
      // the caller says which units may differ: look at those alone
      for (const ref of next.changed) if (mine.get(ref) !== now.sourceOf(ref)) changed.push(ref);
    } else {
      for (const ref of now.refs()) if (mine.get(ref) !== now.sourceOf(ref)) changed.push(ref);
      if (changed.length > 0 || now.size !== mine.size) for (const ref of mine.keys()) if (now.sourceOf(ref) === undefined) changed.push(ref);
    }
    // Only the changed services' units are made: the applied ones from what they were made of
    const before: KUnit[] = [], after: KUnit[] = [];
    const nextSources = new Map<string, object | undefined>();
    for (const ref of changed) {
      const was = mine.get(ref);
      if (was) for (const u of prev.units.unitsOf(was)) before.push(u);
      const src = now.sourceOf(ref);
      nextSources.set(ref, src);
      if (src) for (const u of now.unitsOf(src)) after.push(u);
    }
    if (!d.units(before, after, this.counts)) return undefined;
    const phases = d.phases();
    return {
      phases,
      commit: () => {
        this.fam = next;
        for (const [ref, src] of nextSources) { if (src) mine.set(ref, src); else mine.delete(ref); }
        for (const n of d.sharedDelta.values()) this.counts.bumpShared(n.s, n.n);
        for (const [k, n] of d.groupDelta) this.counts.bumpGroup(k, n.n);
        this.counts.spares.clear();
        for (const name of d.sparesAfter ?? []) this.counts.spares.add(name);
      },
    };
  }

  /**
   * The spares the groups in use want and the kernel does not hold (spares.ts): one
   * transaction that makes them and refills the dispatch chains (the kernel validates the
   * table once), off the path of the change that wanted them. Undefined: none missing.
   */
  spareWork(): { ops: Op[]; commit(): void } | undefined {
    const missing = [...sparesOf(this.fam.base, this.counts.groupNames())].filter((name) => !this.counts.spares.has(name));
    if (missing.length === 0) return undefined;
    const w = at(this.fam.head);
    const ops: Op[] = [];
    for (const name of missing) {
      const g = countGroupObjects(w.family, name);
      for (const m of g.maps) ops.push({ ...w, op: 'add-set', set: m });
      for (const c of g.chains) ops.push({ ...w, op: 'add-chain', chain: { name: c.name } });
      for (const c of g.chains) for (const rule of c.rules) ops.push({ ...w, op: 'add-rule', chain: c.name, rule });
    }
    for (const c of dispatchChains(w.family, this.fam.base, [...this.counts.groupNames(), ...this.counts.spares, ...missing])) ops.push(...refillOps(w, c));
    return { ops, commit: () => { for (const name of missing) this.counts.spares.add(name); } };
  }
}

export interface Phases {
  readonly make: readonly Op[];
  readonly switch: readonly Op[];
  readonly retire: readonly Op[];
  readonly clean: readonly Op[];
}

/** The phases in the order they are committed, each acknowledged before the next. */
export const PHASE_ORDER = ['make', 'switch', 'retire', 'clean'] as const;

/**
 * The ops of ordered phases as one transaction (tests: what the order prevents). A rule the
 * clean deletes by handle from a chain the make refilled has no handle yet in one transaction
 * (the refill made it again): it is left out of the refill instead. The same end state.
 */
export function asOneTransaction(ops: readonly Op[]): Op[] {
  const flushed = new Set<string>();
  const gone = new Set<string>();
  for (const op of ops) {
    if (op.op === 'flush-chain') flushed.add(`${op.family} ${op.table} ${op.name}`);
    if (op.op === 'delete-rule' && flushed.has(`${op.family} ${op.table} ${op.chain}`)) gone.add(`${op.family} ${op.table} ${op.chain} ${op.lookup}`);
  }
  if (gone.size === 0) return [...ops];
  const lookupsOf = (r: KRule): string[] => r.exprs.flatMap((e) => (e.op === 'lookup' && typeof e.set === 'string' ? [e.set] : []));
  return ops.filter((op) => {
    if (op.op === 'delete-rule') return !gone.has(`${op.family} ${op.table} ${op.chain} ${op.lookup}`);
    if (op.op === 'add-rule') return !lookupsOf(op.rule).some((s) => gone.has(`${op.family} ${op.table} ${op.chain} ${s}`));
    return true;
  });
}

export interface FamilyDelta {
  readonly phases: Phases;
  /** make the delta the known state; call only once the kernel acknowledged every phase */
  commit(): void;
}

const sharedKey = (s: KUnitElement): string => `${s.set}\0${s.el.key}`;

/** A chain's rules replaced: flushed, then its rules added again (one transaction). */
const refillOps = (w: ReturnType<typeof at>, c: KChain): Op[] =>
  [{ ...w, op: 'flush-chain', name: c.name, ...(c.owner ? { owner: c.owner } : {}) }, ...c.rules.map((rule): Op => ({ ...w, op: 'add-rule', chain: c.name, rule }))];

/** Element changes of one phase, one op per set. */
class ElementOps {
  readonly bySet = new Map<string, KElement[]>();
  add(set: string, el: KElement): void {
    const a = this.bySet.get(set);
    if (a) a.push(el); else this.bySet.set(set, [el]);
  }
}

class DeltaBuilder {
  private readonly where;
  private readonly shapes = new Map<string, SetShape>();
  private readonly newSets: { name: string; shape: SetShape; decl: GroupObjects['maps'][number] }[] = [];
  private readonly goneSets: { name: string; shape: SetShape }[] = [];
  private readonly newChains: KChain[] = [];
  private readonly changedChains: KChain[] = [];
  private readonly goneChains: KChain[] = [];
  private readonly makeAdd = new ElementOps();
  private readonly switchDel = new ElementOps();
  private readonly switchAdd = new ElementOps();
  private readonly retireDel = new ElementOps();
  private readonly cleanDel = new ElementOps();
  /** the dispatch chains' rules for the make (a group came) */
  private makeDispatch: KChain[] | undefined;
  /** the dispatch rules of the groups that went (their chain, the set they look up) */
  private readonly cleanDispatch: { chain: string; lookup: string }[] = [];
  readonly sharedDelta = new Map<string, { n: number; s: KUnitElement }>();
  readonly groupDelta = new Map<string, { n: number; g: GroupObjects }>();
  /** the spares the kernel holds once the delta is applied (units: undefined until then) */
  sparesAfter: Set<string> | undefined;

  private readonly base: KBase;

  constructor(next: KFamily) {
    this.where = at(next.head);
    this.base = next.base;
    for (const s of next.base.sets) this.shapes.set(s.name, s.shape);
  }

  /** a dispatch map (verdicts) or a dispatch set (lower-dnat.ts: DISPATCH_CHAIN) */
  private isDispatch(set: string): boolean {
    const s = this.shapes.get(set);
    return s !== undefined && dispatchKeyOf(s) !== undefined;
  }

  /** A base that changed in elements or in the rules of its regular chains (the IR table path). */
  bases(prevSets: readonly KSet[], nextSets: readonly KSet[], prevChains: readonly KChain[], nextChains: readonly KChain[]): boolean {
    const prevByName = new Map(prevSets.map((s) => [s.name, s]));
    for (const s of nextSets) {
      const p = prevByName.get(s.name);
      if (!p || !s.elements || !p.elements) continue;
      if (p.elements === s.elements) continue;
      this.elements([...p.elements.values()].map((el) => ({ set: s.name, el })), [...s.elements.values()].map((el) => ({ set: s.name, el })));
    }
    return this.chains(prevChains, nextChains);
  }

  units(before: readonly KUnit[], after: readonly KUnit[], counts: UnitCounts): boolean {
    const bc: KChain[] = [], ac: KChain[] = [], be: KUnitElement[] = [], ae: KUnitElement[] = [];
    for (const u of before) { for (const c of u.chains) bc.push(c); for (const e of u.elements) be.push(e); }
    for (const u of after) { for (const c of u.chains) ac.push(c); for (const e of u.elements) ae.push(e); }
    for (const [sign, us] of [[-1, before], [1, after]] as const) {
      for (const u of us) {
        for (const s of u.shared) {
          const k = sharedKey(s);
          const d = this.sharedDelta.get(k) ?? { n: 0, s };
          d.n += sign;
          this.sharedDelta.set(k, d);
        }
        for (const g of u.groups) {
          const d = this.groupDelta.get(g.name) ?? { n: 0, g: g.objects };
          d.n += sign;
          this.groupDelta.set(g.name, d);
        }
      }
    }
    for (const d of this.sharedDelta.values()) {
      const cur = counts.sharedCount(d.s);
      if (cur === 0 && d.n > 0) (d.s.set === SET.hairpin ? this.switchAdd : this.makeAdd).add(d.s.set, d.s.el);
      if (cur > 0 && cur + d.n <= 0) this.cleanDel.add(d.s.set, d.s.el);
    }
    // Groups in use after the change, and the groups the kernel holds before it: those in use
    // and the spares (spares.ts). A group that comes into use is made only if it is not there
    // (a spare is); a group is deleted when it is neither in use nor a spare the groups in
    // use still want. Spares wanted and not made yet are not made here (spareWork).
    const live = new Set(counts.groupNames());
    const made = new Set([...live, ...counts.spares]);
    const came: string[] = [], went = new Set<string>();
    for (const [name, d] of this.groupDelta) {
      const cur = counts.groupCount(name);
      for (const m of d.g.maps) this.shapes.set(m.name, m.shape);
      if (cur === 0 && d.n > 0) {
        live.add(name);
        if (made.has(name)) continue;
        for (const m of d.g.maps) this.newSets.push({ name: m.name, shape: m.shape, decl: m });
        for (const c of d.g.chains) this.newChains.push(c);
        if (groupDispatchTargets(name).length) came.push(name);
        made.add(name);
      }
      if (cur > 0 && cur + d.n <= 0) live.delete(name);
    }
    const wanted = sparesOf(this.base, live);
    for (const name of made) {
      if (live.has(name) || wanted.has(name)) continue;
      const g = this.groupDelta.get(name)?.g ?? countGroupObjects(this.where.family, name);
      for (const m of g.maps) this.shapes.set(m.name, m.shape);
      for (const c of g.chains) this.goneChains.push(c);
      for (const m of g.maps) this.goneSets.push({ name: m.name, shape: m.shape });
      if (groupDispatchTargets(name).length) went.add(name);
      made.delete(name);
    }
    this.sparesAfter = new Set([...made].filter((name) => !live.has(name)));
    // The dispatch chains name every group's sets and chain: refilled with a new group in the
    // transaction that makes it (its dispatch set is empty until the switch, so no packet goes
    // there before its chain has rules: one table validation, not two; refilled, so that the
    // rules stay in group order, as a full sync writes them). A gone group's rules are deleted
    // one by one before its sets and chain are: no rule added, so no validation.
    if (came.length) this.makeDispatch = dispatchChains(this.where.family, this.base, [...counts.groupNames(), ...counts.spares, ...came]);
    if (this.base.dispatch) {
      for (const name of went) {
        for (const t of groupDispatchTargets(name)) {
          this.cleanDispatch.push({ chain: DISPATCH_CHAIN.vip, lookup: dispatchSetName(t, 'vip') }, { chain: DISPATCH_CHAIN.nodePort, lookup: dispatchSetName(t, 'nodeport') });
        }
      }
    }
    this.elements(be, ae);
    return this.chains(bc, ac);
  }

  private elements(before: readonly KUnitElement[], after: readonly KUnitElement[]): void {
    const old = new Map<string, KUnitElement>();
    for (const e of before) old.set(`${e.set}\0${e.el.key}`, e);
    const now = new Set<string>();
    // keys new to a dispatch map or set (a VIP key and a NodePort key differ in length)
    const dispatched = new Set<string>();
    for (const e of after) {
      const k = `${e.set}\0${e.el.key}`;
      now.add(k);
      const was = old.get(k);
      if (was && sameElement(was.el, e.el)) continue;
      if (was) { this.switchDel.add(e.set, was.el); this.switchAdd.add(e.set, e.el); continue; }
      if (this.isDispatch(e.set)) { this.switchAdd.add(e.set, e.el); dispatched.add(e.el.key); } else this.makeAdd.add(e.set, e.el);
    }
    for (const [k, e] of old) {
      if (now.has(k)) continue;
      (this.isDispatch(e.set) && dispatched.has(e.el.key) ? this.retireDel : this.cleanDel).add(e.set, e.el);
    }
  }

  private chains(before: readonly KChain[], after: readonly KChain[]): boolean {
    const old = new Map(before.map((c) => [c.name, c]));
    const now = new Set<string>();
    for (const c of after) {
      now.add(c.name);
      const o = old.get(c.name);
      // base chains are the base's: a hook that comes or goes is a full sync (baseKey)
      if (!sameHook(o?.hook, c.hook)) return false;
      if (o === c) continue;
      if (!o) this.newChains.push(c);
      else if (!sameRules(o.rules, c.rules)) this.changedChains.push(c);
    }
    for (const [name, c] of old) if (!now.has(name)) this.goneChains.push(c);
    return true;
  }

  phases(): Phases {
    const w = this.where;
    const elementOps = (verb: 'add-elements' | 'delete-elements', e: ElementOps): Op[] =>
      [...e.bySet].map(([set, elements]) => ({ ...w, op: verb, set, shape: this.shapeOf(set), elements }));
    const make: Op[] = [
      ...this.newSets.map((s): Op => ({ ...w, op: 'add-set', set: s.decl })),
      ...this.newChains.map((c): Op => ({ ...w, op: 'add-chain', chain: { name: c.name }, ...(c.owner ? { owner: c.owner } : {}) })),
      ...this.newChains.flatMap((c) => c.rules.map((rule): Op => ({ ...w, op: 'add-rule', chain: c.name, rule }))),
      ...(this.makeDispatch ?? []).flatMap((c) => refillOps(w, c)),
      ...elementOps('add-elements', this.makeAdd),
    ];
    const sw: Op[] = [
      ...elementOps('delete-elements', this.switchDel),
      ...this.changedChains.flatMap((c) => refillOps(w, c)),
      ...elementOps('add-elements', this.switchAdd),
    ];
    const retire: Op[] = elementOps('delete-elements', this.retireDel);
    const clean: Op[] = [
      ...this.cleanDispatch.map((r): Op => ({ ...w, op: 'delete-rule', chain: r.chain, lookup: r.lookup })),
      ...elementOps('delete-elements', this.cleanDel),
      ...this.goneChains.map((c): Op => ({ ...w, op: 'flush-chain', name: c.name, ...(c.owner ? { owner: c.owner } : {}) })),
      ...this.goneChains.map((c): Op => ({ ...w, op: 'delete-chain', name: c.name, ...(c.owner ? { owner: c.owner } : {}) })),
      ...this.goneSets.map((s): Op => ({ ...w, op: 'delete-set', name: s.name, kind: setKind(s.shape) })),
    ];
    return { make, switch: sw, retire, clean };
  }

  private shapeOf(set: string): SetShape {
    const s = this.shapes.get(set);
    if (!s) throw new Error(`element change for set ${set}, which neither table declares`);
    return s;
  }
}

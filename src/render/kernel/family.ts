// One family's table as the kernel should hold it, kept in the pieces a sync compares:
// a base (what the configuration alone decides: every named set's declaration, the base
// chains, fixed elements) and one unit per service port (its chains, its elements in the
// shared maps, the shared elements and endpoint-count groups it uses).
//
// The daemon's families do not keep their units: a unit is made from a compiled service port
// when a sync needs it (the services that changed, or all of them for a full sync) and is
// garbage after. What identifies a service's units is what they are made from, the compiled
// parts' array for that service, which the compiler hands back unchanged while the service
// is. The units would otherwise be the daemon's largest holding (at 10k services x 10
// endpoints about 130 MB of heap: every dnat-map element again, as bytes), and a second copy
// of what the compiled parts already say.
import type { Chain, Family, Rule, Statement, Table } from '../../ir/types.js';
import { TABLE_NAME } from '../../ir/types.js';
import type { CompiledFamily, FamilyBase } from '../../compile/compile.js';
import type { ServicePortRules } from '../../compile/service-port.js';
import { CHAIN, SET } from '../../compile/base-chains.js';
import { DISPATCH_CHAIN, type DnatGroup, collectDnatGroups, dispatchSetName, dnatAliases, dnatGroupNames, groupDispatchTargets, isDispatchTarget, picksFromGroup, sharedChains } from '../lower-dnat.js';
import type { Aliases } from '../rule-text.js';
import { type GroupObjects, groupElements, groupObjects, kchain, kelement, kset, setDecl, sharedChainObjects } from './objects.js';
import { KeyBuilder } from './bytes.js';
import { dispatchRule, lowerRule } from './lower-rule.js';
import { countGroupObjects, sparesOf } from './spares.js';
import type { KChain, KElement, KRule, KSet, KSetDecl, KTableHead, SetShape } from './types.js';

export const TABLE_COMMENT = 'rules for nftproxy';

export interface KUnitElement { readonly set: string; readonly el: KElement }
export interface KGroup { readonly name: string; readonly objects: GroupObjects }

export interface KUnit {
  readonly chains: readonly KChain[];
  /** elements only this unit puts in their set */
  readonly elements: readonly KUnitElement[];
  /** elements several units may add (a cluster IP two ports share, a hairpin pair): counted */
  readonly shared: readonly KUnitElement[];
  /** the endpoint-count groups it uses: counted, their objects live while one unit uses them */
  readonly groups: readonly KGroup[];
  /** session-affinity endpoint keys its rules remember clients under ("k0.k1"), for the carry over a full sync */
  readonly affinityKeys: readonly string[];
}

export interface KBase {
  readonly sets: readonly KSet[];
  readonly chains: readonly KChain[];
  /** the fixed rules of the dispatch chains (dispatchChains); undefined: the base has no services chain (nothing dispatches) */
  readonly dispatch?: DispatchTemplate;
}

/** What the dispatch chains hold besides their groups' rules (lower-dnat.ts: DISPATCH_CHAIN). */
export interface DispatchTemplate {
  /** service-groups' last rules: the services chain's NodePort rule, going to nodeport-services */
  readonly vipTail: readonly KRule[];
  /** nodeport-services' first rule: the service-nodeports lookup */
  readonly nodePortHead: readonly KRule[];
}

/** Every service's units: kept (KeptUnits), or made when asked (CompiledUnits). */
export interface KUnits {
  readonly size: number;
  refs(): IterableIterator<string>;
  /** what a service's units are made from (the same object, the same units); undefined: none */
  sourceOf(ref: string): object | undefined;
  /** the units made from a source this family, or an earlier one of the same base, handed out */
  unitsOf(source: object): readonly KUnit[];
  /**
   * What a full sync's second pass reads of a service's units, handed to `sink` as it is made,
   * no unit built: the elements its units alone put in their sets, then (after all of those) the
   * elements several units may add, and the groups each unit uses.
   */
  elementsOf(source: object, sink: UnitSink): void;
  /** the chains of a service's units (with their rules) */
  chainsOf(source: object): readonly KChain[];
  /** what a full sync must know of a service's units before it makes them: cheap, nothing made */
  outlineOf(source: object): UnitOutline;
}

/** Receives a service's elements and groups (KUnits.elementsOf), in the order a unit lists them. */
export interface UnitSink {
  element(set: string, el: KElement): void;
  shared(set: string, el: KElement): void;
  group(g: KGroup): void;
}

export interface UnitOutline {
  /** the names of the chains its units hold */
  readonly chains: readonly string[];
  /** the endpoint-count groups they use */
  readonly groups: readonly GroupObjects[];
  /** the session-affinity endpoint keys their rules remember clients under */
  readonly affinityKeys: readonly string[];
}

/** Units held as they are (a family made from an assembled table: tests, tools, the CLI). */
export class KeptUnits implements KUnits {
  constructor(private readonly m: ReadonlyMap<string, readonly KUnit[]>) {}
  get size(): number { return this.m.size; }
  refs(): IterableIterator<string> { return this.m.keys(); }
  sourceOf(ref: string): readonly KUnit[] | undefined { return this.m.get(ref); }
  unitsOf(source: object): readonly KUnit[] { return source as readonly KUnit[]; }
  elementsOf(source: object, sink: UnitSink): void {
    const us = source as readonly KUnit[];
    for (const u of us) for (const e of u.elements) sink.element(e.set, e.el);
    for (const u of us) {
      for (const e of u.shared) sink.shared(e.set, e.el);
      for (const g of u.groups) sink.group(g);
    }
  }
  chainsOf(source: object): readonly KChain[] { return (source as readonly KUnit[]).flatMap((u) => u.chains); }
  outlineOf(source: object): UnitOutline {
    const us = source as readonly KUnit[];
    return { chains: us.flatMap((u) => u.chains.map((c) => c.name)), groups: us.flatMap((u) => u.groups.map((g) => g.objects)), affinityKeys: us.flatMap((u) => u.affinityKeys) };
  }
}

type ServiceRules = readonly (ServicePortRules | undefined)[];

/** Units made from the compiled parts when asked, never kept (the daemon's path). */
class CompiledUnits implements KUnits {
  constructor(private readonly family: Family, private readonly shapes: ReadonlyMap<string, SetShape>, private readonly services: ReadonlyMap<string, ServiceRules>) {}
  get size(): number { return this.services.size; }
  refs(): IterableIterator<string> { return this.services.keys(); }
  sourceOf(ref: string): ServiceRules | undefined { return this.services.get(ref); }
  unitsOf(source: object): readonly KUnit[] {
    const us: KUnit[] = [];
    for (const r of source as ServiceRules) if (r) us.push(unitOf(this.family, this.shapes, r));
    return us;
  }
  // A full sync makes every service's elements (365k at 10k x 10) and writes them out: made
  // straight into the sink, without the units and their per-element wrappers (garbage the
  // young generation would have to copy while the batch is encoded).
  elementsOf(source: object, sink: UnitSink): void {
    let later: KUnitElement[] | undefined;
    const inner: UnitSink = { element: sink.element, shared: (set, el) => { (later ??= []).push({ set, el }); }, group: sink.group };
    for (const r of source as ServiceRules) if (r) feedUnit(this.family, this.shapes, r, dnatAliases(r.chains), inner);
    if (later) for (const e of later) sink.shared(e.set, e.el);
  }
  chainsOf(source: object): readonly KChain[] {
    const out: KChain[] = [];
    for (const r of source as ServiceRules) if (r) for (const c of unitChains(this.family, r)) out.push(c);
    return out;
  }
  // As unitOf decides, from the compiled chains alone: the chains not aliased to a group's, the
  // groups of the dnat statements with two backends or more.
  outlineOf(source: object): UnitOutline {
    const chains: string[] = [], groups: GroupObjects[] = [], affinityKeys: string[] = [];
    for (const r of source as ServiceRules) {
      if (!r) continue;
      const aliases = dnatAliases(r.chains);
      for (const c of r.chains) {
        if (!aliases.has(c.name)) chains.push(c.name);
        for (const rule of c.rules) for (const st of rule.stmts) if (st.kind === 'dnat' && picksFromGroup(st)) groups.push(groupObjects(this.family, { policy: st.policy, n: st.backends.length, ...dnatGroupNames(st.policy, st.backends.length) }));
      }
      // after the groups whose chains they go to
      for (const g of sharedGroups(this.family, r.chains, aliases)) groups.push(g.objects);
      for (const k of affinityKeysOf(r.chains)) affinityKeys.push(k);
    }
    return { chains, groups, affinityKeys };
  }
}

/** Each service's units, in the family's order. */
export function* unitsByService(u: KUnits): Generator<readonly KUnit[]> {
  for (const ref of u.refs()) {
    const src = u.sourceOf(ref);
    if (src) yield u.unitsOf(src);
  }
}

export interface KFamily {
  readonly head: KTableHead;
  readonly base: KBase;
  /** equal for bases that differ at most in elements and non-base rules; else a partial sync cannot follow */
  readonly baseKey: string;
  readonly units: KUnits;
  /**
   * When set: the only units that may differ from the family this one was updated from
   * (kernelFamilyUpdate). The differ then looks at these alone, not at every service.
   */
  readonly changed?: ReadonlySet<string>;
}

const head = (family: Family): KTableHead => ({ family, name: TABLE_NAME, comment: TABLE_COMMENT });

// --- from the compiler's parts (the daemon's path) ---

const baseCache = new WeakMap<FamilyBase, { family: Family; base: KBase }>();
function kbase(family: Family, b: FamilyBase): KBase {
  const hit = baseCache.get(b);
  if (hit && hit.family === family) return hit.base;
  const aliases = dnatAliases(b.chains);
  const base: KBase = { sets: b.sets.map((s) => kset(s, aliases)), ...lowerBase(family, b.chains, aliases) };
  baseCache.set(b, { family, base });
  return base;
}

/**
 * The base chains as the kernel holds them: as compiled, but for the services chain, whose
 * NodePort rule moves behind the dispatch sets' rules (lower-dnat.ts: DISPATCH_CHAIN):
 *   services:          … `KEY vmap @service-ips`, `goto service-groups`
 *   service-groups:    `KEY @service-ips-<chain> goto <chain>` …, the NodePort rule ending in `goto nodeport-services`
 *   nodeport-services: `KEY vmap @service-nodeports`, `KEY @service-nodeports-<chain> goto <chain>` …
 * A packet meets the same lookups in the same order as in the compiled chain, every step a goto.
 */
function lowerBase(family: Family, chains: readonly Chain[], aliases: Aliases): { chains: KChain[]; dispatch?: DispatchTemplate } {
  const out: KChain[] = [];
  let dispatch: DispatchTemplate | undefined;
  for (const c of chains) {
    if (c.name !== CHAIN.services || dispatch) { out.push(kchain(family, c, aliases)); continue; }
    // the NodePort rule (a table without one still gets the chains: the dispatch sets' keys need them)
    const found = c.rules.findIndex((r) => r.stmts.some((st) => st.kind === 'vmap' && st.key === 'l4proto.dport'));
    const at = found < 0 ? c.rules.length : found;
    const nodePort = c.rules[at];
    const lower = (r: Rule): KRule => lowerRule(family, r, aliases, c.owner);
    const goto = (chain: string): Statement => ({ kind: 'verdict', verdict: { kind: 'goto', chain } });
    out.push({ name: c.name, ...(c.base ? { hook: c.base } : {}), rules: [...c.rules.slice(0, at).map(lower), lower({ matches: [], stmts: [goto(DISPATCH_CHAIN.vip)] })] });
    dispatch = {
      vipTail: nodePort ? [lower({ ...nodePort, stmts: nodePort.stmts.map((st) => (st.kind === 'vmap' ? goto(DISPATCH_CHAIN.nodePort) : st)) }), ...c.rules.slice(at + 1).map(lower)] : [],
      nodePortHead: nodePort ? [lower({ matches: [], stmts: nodePort.stmts.filter((st) => st.kind === 'vmap') })] : [],
    };
  }
  return { chains: out, ...(dispatch ? { dispatch } : {}) };
}

/** The dispatch chains for the groups made (named by their chains): endpoint-count chains in group order, then their masquerade chains; none without a template. */
export function dispatchChains(family: Family, base: KBase, groups: Iterable<string>): KChain[] {
  const t = base.dispatch;
  if (!t) return [];
  // Every endpoint-count chain before any masquerade chain: a packet walks these rules until its
  // key's set holds it, and a ClusterIP's (most packets that get here) is never in a masquerade
  // chain's set, so it looks up no such set (with counts 1 to 10 in use: 10 lookups at most, not 19)
  const sorted = [...groups].sort(byGroupOrder).flatMap(groupDispatchTargets);
  const targets = [...sorted.filter((t) => !t.endsWith('-masq')), ...sorted.filter((t) => t.endsWith('-masq'))];
  return [
    { name: DISPATCH_CHAIN.vip, rules: [...targets.map((g) => dispatchRule(family, g, 'vip')), ...t.vipTail] },
    { name: DISPATCH_CHAIN.nodePort, rules: [...t.nodePortHead, ...targets.map((g) => dispatchRule(family, g, 'nodeport'))] },
  ];
}

/**
 * A dispatch map's element that goes to a dispatch target is an element of that target's
 * dispatch set instead (lower-dnat.ts: DISPATCH_CHAIN), with the same key: the set it goes to.
 */
function routedSet(set: string, el: KElement): string {
  if (set !== SET.serviceIPs && set !== SET.serviceNodePorts) return set;
  const v = el.data?.kind === 'verdict' ? el.data.verdict : undefined;
  if (v?.kind !== 'goto' || !isDispatchTarget(v.chain)) return set;
  return dispatchSetName(v.chain, set === SET.serviceIPs ? 'vip' : 'nodeport');
}
/** the element as a dispatch set holds it: no verdict */
const dispatchElement = (el: KElement): KElement => ({ key: el.key, ...(el.comment ? { comment: el.comment } : {}), ...(el.owner ? { owner: el.owner } : {}) });

/** A compiled service port's unit. */
function unitOf(family: Family, shapes: ReadonlyMap<string, SetShape>, r: ServicePortRules): KUnit {
  const aliases = dnatAliases(r.chains);
  const elements: KUnitElement[] = [], shared: KUnitElement[] = [], groups: KGroup[] = [];
  feedUnit(family, shapes, r, aliases, {
    element: (set, el) => { elements.push({ set, el }); },
    shared: (set, el) => { shared.push({ set, el }); },
    group: (g) => { groups.push(g); },
  });
  return { chains: unitChains(family, r, aliases), elements, shared, groups, affinityKeys: affinityKeysOf(r.chains) };
}

/**
 * A compiled service port's elements and groups, in a unit's order: its own elements, then its
 * groups' map elements; the elements any service port may add (an element without an owner: a
 * cluster IP, say; hairpin pairs); its endpoint-count groups, then the shared chains (after the
 * groups whose chains they go to: made after them, deleted in the same transaction).
 */
function feedUnit(family: Family, shapes: ReadonlyMap<string, SetShape>, r: ServicePortRules, aliases: Aliases, sink: UnitSink): void {
  for (const [set, e] of r.elements) {
    const el = kelement(shapeIn(shapes, set), e, undefined, aliases);
    const to = routedSet(set, el);
    const put = to === set ? el : dispatchElement(el);
    if (e.owner === undefined) sink.shared(to, put); else sink.element(to, put);
  }
  for (const ip of r.hairpin) sink.shared(SET.hairpin, { key: PAIRS.addr(ip).addr(ip).take() });
  feedGroups(family, r.chains, aliases, sink);
}

/** The groups a unit's chains use, each with its map elements (this unit's endpoints). */
function feedGroups(family: Family, chains: readonly Chain[], aliases: Aliases, sink: Omit<UnitSink, 'shared'>): void {
  for (const g of collectDnatGroups({ chains })) {
    sink.group({ name: g.chain, objects: groupObjects(family, g) });
    for (const el of groupElements(g, 'vip')) sink.element(g.vipMap, el);
    for (const el of groupElements(g, 'nodeport')) sink.element(g.nodePortMap, el);
  }
  for (const g of sharedGroups(family, chains, aliases)) sink.group(g);
}

const unitChains = (family: Family, r: ServicePortRules, aliases = dnatAliases(r.chains)): KChain[] =>
  r.chains.filter((c) => !aliases.has(c.name)).map((c) => kchain(family, c, aliases));

// A hairpin pair's key (the endpoint's address twice), built in one piece: units are made for
// a sync and dropped, so nothing is gained by sharing pairs between units (a full sync makes
// ~170k of them at 10k x 10).
const PAIRS = new KeyBuilder();

// Each key once: a policy chain remembers an endpoint's clients in two rules (compile/endpoint-chains.ts).
function affinityKeysOf(chains: readonly Chain[]): string[] {
  const keys = new Set<string>();
  for (const c of chains) for (const r of c.rules) for (const st of r.stmts) if (st.kind === 'affinity-update') keys.add(`${st.key[0]}.${st.key[1]}`);
  return [...keys];
}

const sharedGroups = (family: Family, chains: readonly Chain[], aliases: ReadonlyMap<string, string>): KGroup[] =>
  sharedChains(chains, aliases).map((s) => ({ name: s.name, objects: sharedChainObjects(family, s.name, s.chain, aliases) }));

function shapeIn(shapes: ReadonlyMap<string, SetShape>, set: string): SetShape {
  const s = shapes.get(set);
  if (!s) throw new Error(`an element for set ${set}, which the table does not declare`);
  return s;
}

const shapesOf = (base: KBase): Map<string, SetShape> => new Map(base.sets.map((s) => [s.name, s.shape]));

/** The daemon's path: compiled parts -> the family's kernel objects (units made when asked). */
export function kernelFamily(part: CompiledFamily): KFamily {
  const family = part.ctx.family;
  const base = kbase(family, part.base);
  return { head: head(family), base, baseKey: part.ctxKey, units: new CompiledUnits(family, shapesOf(base), part.services) };
}

/**
 * The daemon's path across syncs: the family of the updated parts, saying which services may
 * differ from the family it follows (the differ then looks at these alone). A changed context
 * or family is a fresh kernelFamily, without `changed`.
 */
export function kernelFamilyUpdate(prev: KFamily | undefined, part: CompiledFamily, changed: ReadonlySet<string> | 'all'): KFamily {
  if (prev === undefined || changed === 'all' || prev.baseKey !== part.ctxKey || prev.head.family !== part.ctx.family) return kernelFamily(part);
  const family = part.ctx.family;
  return { head: prev.head, base: prev.base, baseKey: prev.baseKey, units: new CompiledUnits(family, shapesOf(prev.base), part.services), changed };
}

// --- from an assembled IR table (tests, and any caller that has a whole Ruleset) ---

/**
 * Chains and elements an owner (a service port) tags become that owner's unit; the rest is the
 * base. Shared elements carry no owner in an assembled table (it deduplicated them), so they are
 * base elements here, diffed as such.
 */
export function kernelFamilyOfTable(t: Table): KFamily {
  const aliases = dnatAliases(t.chains);
  const baseSets: KSet[] = [];
  const owned = new Map<string, { chains: Chain[]; elements: KUnitElement[] }>();
  const unit = (owner: string) => {
    let u = owned.get(owner);
    if (!u) owned.set(owner, (u = { chains: [], elements: [] }));
    return u;
  };
  for (const s of t.sets) {
    const decl = setDecl(s);
    if (s.timeoutSeconds !== undefined) { baseSets.push({ ...decl, elements: undefined }); continue; }
    const mine = new Map<string, KElement>();
    for (const e of s.elements) {
      const el = kelement(decl.shape, e, s.owner, aliases);
      if (el.owner === undefined) { mine.set(el.key, el); continue; }
      const to = routedSet(s.name, el);
      unit(el.owner).elements.push({ set: to, el: to === s.name ? el : dispatchElement(el) });
    }
    baseSets.push({ ...decl, elements: mine });
  }
  const irBase: Chain[] = [];
  for (const c of t.chains) {
    if (c.owner !== undefined) unit(c.owner).chains.push(c);
    else if (!aliases.has(c.name)) irBase.push(c);
  }
  const { chains: baseChains, dispatch } = lowerBase(t.family, irBase, aliases);
  const units = new Map<string, readonly KUnit[]>();
  for (const [owner, u] of owned) {
    const mine = dnatAliases(u.chains);
    const chains = u.chains.filter((c) => !mine.has(c.name)).map((c) => kchain(t.family, c, mine));
    const groups: KGroup[] = [];
    feedGroups(t.family, u.chains, mine, { element: (set, el) => { u.elements.push({ set, el }); }, group: (g) => { groups.push(g); } });
    units.set(owner, [{ chains, elements: u.elements, shared: [], groups, affinityKeys: affinityKeysOf(u.chains) }]);
  }
  const baseKey = JSON.stringify([baseSets.map(declKey), baseChains.filter((c) => c.hook).map((c) => [c.name, c.hook])]);
  return { head: head(t.family), base: { sets: baseSets, chains: baseChains, ...(dispatch ? { dispatch } : {}) }, baseKey, units: new KeptUnits(units) };
}

const declKey = (s: KSetDecl): unknown[] => [s.name, s.shape, s.comment, s.timeoutSeconds, s.size];

// --- reading a family whole ---

/** Every set the family declares, groups' maps included, with all its elements (shared ones once). */
export function familySets(f: KFamily): { decl: KSetDecl; elements: KElement[] | undefined }[] {
  const out = new Map<string, { decl: KSetDecl; elements: KElement[] | undefined; seen?: Set<string> }>();
  for (const s of f.base.sets) out.set(s.name, { decl: s, elements: s.elements ? [...s.elements.values()] : undefined });
  for (const g of familyGroups(f)) {
    for (const m of g.maps) out.set(m.name, { decl: m, elements: [] });
  }
  for (const us of unitsByService(f.units)) {
    for (const u of us) {
      for (const { set, el } of u.elements) out.get(set)?.elements?.push(el);
      for (const { set, el } of u.shared) {
        const s = out.get(set);
        if (!s?.elements) continue;
        const seen = (s.seen ??= new Set(s.elements.map((e) => e.key)));
        if (seen.has(el.key)) continue;
        seen.add(el.key);
        s.elements.push(el);
      }
    }
  }
  return [...out.values()].map(({ decl, elements }) => ({ decl, elements }));
}

/** Every chain: base chains, the units' chains, the groups' chains, the dispatch chains. */
export function* familyChains(f: KFamily): Generator<KChain> {
  yield* f.base.chains;
  for (const us of unitsByService(f.units)) for (const u of us) yield* u.chains;
  const groups = familyGroups(f);
  for (const g of groups) yield* g.chains;
  yield* dispatchChains(f.head.family, f.base, groups.map((g) => g.chains[0]!.name));
}

/** The endpoint-count groups in use and their spares (spares.ts), sorted by policy then size. */
export function familyGroups(f: KFamily): GroupObjects[] {
  const gs = new Map<string, GroupObjects>();
  for (const us of unitsByService(f.units)) for (const u of us) for (const g of u.groups) gs.set(g.name, g.objects);
  for (const name of sparesOf(f.base, [...gs.keys()])) gs.set(name, countGroupObjects(f.head.family, name));
  return [...gs.entries()].sort(([a], [b]) => groupOrder(a) - groupOrder(b) || (a < b ? -1 : 1)).map(([, g]) => g);
}
// endpoint-count groups by policy and N, then the shared chains that go to them
export const byGroupOrder = (a: string, b: string): number => groupOrder(a) - groupOrder(b) || (a < b ? -1 : a > b ? 1 : 0);
const groupOrder = (chain: string): number => (chain.startsWith('dnat-') ? (chain.startsWith('dnat-local-') ? 1e9 : 0) + Number(chain.split('-')[2]) : 2e9);

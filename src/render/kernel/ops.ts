// Kernel operations: what a writer carries out, one nf_tables transaction being a list of
// them. The full replace of the tables is built here; the differ (diff.ts) builds the ordered
// transactions of a partial sync.
import type { Family } from '../../ir/types.js';
import { type KFamily, type UnitSink, dispatchChains } from './family.js';
import { DISPATCH_CHAIN } from '../lower-dnat.js';
import { UnitCounts } from './counts.js';
import type { GroupObjects } from './objects.js';
import { countGroupObjects, sparesOf } from './spares.js';
import type { KChain, KElement, KHook, KRule, KSetDecl, KTableHead, SetShape } from './types.js';

interface At { readonly family: Family; readonly table: string }

export type Op =
  | At & { readonly op: 'add-table'; readonly comment?: string }
  | At & { readonly op: 'delete-table' }
  | At & { readonly op: 'add-set'; readonly set: KSetDecl; readonly owner?: string }
  | At & { readonly op: 'delete-set'; readonly name: string; readonly kind: 'set' | 'map'; readonly owner?: string }
  /** every rule of every chain of the table (the chains and sets stay) */
  | At & { readonly op: 'flush-table' }
  /** every element of a set or map (the set stays) */
  | At & { readonly op: 'flush-set'; readonly name: string; readonly kind: 'set' | 'map' }
  | At & { readonly op: 'add-chain'; readonly chain: { readonly name: string; readonly hook?: KHook }; readonly owner?: string }
  | At & { readonly op: 'flush-chain'; readonly name: string; readonly owner?: string }
  | At & { readonly op: 'delete-chain'; readonly name: string; readonly owner?: string }
  | At & { readonly op: 'add-rule'; readonly chain: string; readonly rule: KRule }
  /**
   * The one rule of `chain` that looks up set `lookup`: a dispatch rule (lower-dnat.ts:
   * DISPATCH_CHAIN), deleted when its group goes. A rule has no name, only the handle the kernel
   * gave it, so the writer reads it from the chain first (`handle` set: already read). Deleting
   * it, unlike flushing the chain and adding the other rules again, does not make the kernel
   * validate the table.
   */
  | At & { readonly op: 'delete-rule'; readonly chain: string; readonly lookup: string; readonly handle?: bigint }
  | At & { readonly op: 'add-elements' | 'delete-elements'; readonly set: string; readonly shape: SetShape; readonly elements: Iterable<KElement> };

/** One kernel transaction: all its ops take effect together or none does. */
export type Transaction = Iterable<Op>;

export const at = (h: KTableHead): At => ({ family: h.family, table: h.name });

/** What a table holds, by name: what a full replace in place deletes, and which base chains it keeps. */
export interface TableLayout {
  readonly chains: readonly { readonly name: string; readonly hook?: KHook; readonly policyAccept: boolean }[];
  /** named sets and maps (anonymous ones go with their rules) */
  readonly sets: readonly { readonly name: string; readonly kind: 'set' | 'map' }[];
}

/**
 * The full sync, as one transaction. Families in `heads` without a desired table are removed
 * (created if missing, then deleted). A desired table that does not exist, or whose content is
 * not known (`existing` without it), is created if missing, deleted and made again whole.
 *
 * A desired table whose content is known is replaced *in place*, as upstream's full sync does:
 * every chain and named set it will hold again keeps its kernel object (base chains only with
 * the same hook, type, priority and policy): its rules and elements are flushed and filled
 * again in the same transaction; only what goes away is deleted and only what is new is made.
 * Why not delete the table and make it again: a packet that entered a base chain before the
 * commit keeps running the old rules after it, but each of its lookups reads the generation
 * current then. Had the old maps been deleted, their elements are gone for it (the kernel
 * deactivates a deleted map's elements); had the base chains been remade, a new chain's hook
 * is registered ahead of the old one and a packet can pass both, the new one before the commit
 * (no rules yet) and the old one after (none any more). Either way it leaves un-NATed and is
 * refused. With the objects kept, an old rule's lookup finds the same key again (the new
 * element), and a `goto` to a kept chain runs that chain's old rules. What changed between
 * the two states (a service's endpoint count, a service gone) can still be seen half old, half
 * new, as in any single transaction; the ordered transactions of a partial sync do not apply
 * here because a restarted daemon does not know what the table holds, element by element.
 *
 * A generator: the netlink writer encodes it as it goes, so the whole transaction never exists
 * twice in memory, and a service's units are made only when their turn comes (the daemon
 * keeps none: family.ts). `extra` adds elements after the tables are filled (session affinity
 * carried over). `countsOut[i]`, when given, receives family i's shared-element and group
 * counts: what the applier starts its partial syncs from.
 */
export function* fullOps(fams: readonly KFamily[], heads: readonly KTableHead[], extra: readonly Op[] = [], existing?: ReadonlyMap<string, TableLayout | undefined>, countsOut?: readonly UnitCounts[]): Generator<Op> {
  const layoutOf = (h: KTableHead): TableLayout | undefined => existing?.get(`${h.family} ${h.name}`);
  const wanted = new Set(fams.map((f) => `${f.head.family} ${f.head.name}`));
  for (const h of heads) {
    if (wanted.has(`${h.family} ${h.name}`) && layoutOf(h)) continue; // replaced in place below
    yield { ...at(h), op: 'add-table' };
    yield { ...at(h), op: 'delete-table' };
  }
  for (const [i, f] of fams.entries()) {
    const where = at(f.head);
    const had = layoutOf(f.head);
    const keptChains = new Set<string>(), keptSets = new Set<string>();
    yield { ...where, op: 'add-table', comment: f.head.comment };
    if (had) {
      const want = wantedNames(f);
      for (const c of had.chains) {
        // a base chain is kept only with the policy nftproxy gives it (accept)
        if (want.chains.has(c.name) && sameHook(c.hook, want.chains.get(c.name)) && (!c.hook || c.policyAccept)) keptChains.add(c.name);
      }
      for (const s of had.sets) {
        const shape = want.sets.get(s.name);
        if (shape !== undefined && setKind(shape) === s.kind) keptSets.add(s.name);
      }
      // rules first (they hold the sets and the chains they jump to), then elements and maps
      // (their verdicts hold chains), then the chains
      yield { ...where, op: 'flush-table' };
      for (const s of had.sets) yield keptSets.has(s.name) ? { ...where, op: 'flush-set', name: s.name, kind: s.kind } : { ...where, op: 'delete-set', name: s.name, kind: s.kind };
      for (const c of had.chains) if (!keptChains.has(c.name)) yield { ...where, op: 'delete-chain', name: c.name };
    }
    const addChains = function* (chains: readonly KChain[]): Generator<Op> {
      for (const c of chains) if (!keptChains.has(c.name)) yield { family: where.family, table: where.table, op: 'add-chain', chain: c.hook ? { name: c.name, hook: c.hook } : { name: c.name }, ...(c.owner ? { owner: c.owner } : {}) };
      for (const c of chains) for (const rule of c.rules) yield { family: where.family, table: where.table, op: 'add-rule', chain: c.name, rule };
    };
    // an endpoint-count group or shared chain: its maps (unless kept), then its chains
    const addGroup = function* (g: GroupObjects): Generator<Op> {
      for (const m of g.maps) {
        shapes.set(m.name, m.shape);
        if (!keptSets.has(m.name)) yield { ...where, op: 'add-set', set: m };
      }
      yield* addChains(g.chains);
    };
    // The base: its sets, its chains and their rules, its fixed elements. The dispatch chains
    // (lower-dnat.ts: DISPATCH_CHAIN) are made with it (the services chain goes to one) and
    // filled once the groups whose sets and chains their rules name are made.
    const shapes = new Map<string, SetShape>();
    for (const s of f.base.sets) {
      shapes.set(s.name, s.shape);
      if (!keptSets.has(s.name)) yield { ...where, op: 'add-set', set: s };
    }
    if (f.base.dispatch) for (const name of DISPATCH_NAMES) if (!keptChains.has(name)) yield { ...where, op: 'add-chain', chain: { name } };
    yield* addChains(f.base.chains);
    for (const s of f.base.sets) if (s.elements?.size) yield { ...where, op: 'add-elements', set: s.name, shape: s.shape, elements: [...s.elements.values()] };
    // Then the services, in two passes, their objects made from the compiled parts as their
    // turn comes and garbage once written (nothing is kept for the whole table). First the
    // chains and rules, with the groups each is the first to use; then the elements (a shared
    // element only from the first unit that holds it). Why the elements last: a rule that
    // binds an anonymous set (`{ tcp, udp, sctp }`; when measured, also affinity's random-pick
    // maps, gone since) makes the kernel walk the transaction
    // so far; with the 400k element entries of a 10k-service table ahead of it, that walk
    // took a quarter of the full sync (measured at 10k x 10: 3.4 s in one pass, 2.3 s in two).
    const counts = countsOut?.[i] ?? new UnitCounts();
    const groupsMade = new Set<string>();
    for (const ref of f.units.refs()) {
      const src = f.units.sourceOf(ref);
      if (!src) continue;
      for (const g of f.units.outlineOf(src).groups) {
        const name = g.chains[0]!.name;
        if (groupsMade.has(name)) continue;
        groupsMade.add(name);
        yield* addGroup(g);
      }
      yield* addChains(f.units.chainsOf(src));
    }
    // the spares of the counts in use (spares.ts), made empty
    const spares = sparesOf(f.base, groupsMade);
    for (const name of spares) {
      yield* addGroup(countGroupObjects(where.family, name));
      counts.spares.add(name);
    }
    for (const c of dispatchChains(where.family, f.base, [...groupsMade, ...spares])) for (const rule of c.rules) yield { ...where, op: 'add-rule', chain: c.name, rule };
    // Elements go out a few hundred to an op per set, whichever services they come from
    // (every chain exists by now): big messages for the kernel, a bounded batch in memory.
    const pending = new Map<string, KElement[]>();
    const put = (set: string, el: KElement): void => {
      const a = pending.get(set);
      if (a) a.push(el); else pending.set(set, [el]);
    };
    // a shared element only from the first unit that holds it; each unit's groups counted
    const sink: UnitSink = { element: put, shared: (set, el) => { if (counts.holdShared(set, el.key)) put(set, el); }, group: (g) => { counts.bumpGroup(g.name, 1); } };
    for (const ref of f.units.refs()) {
      const src = f.units.sourceOf(ref);
      if (!src) continue;
      f.units.elementsOf(src, sink);
      for (const [set, elements] of pending) {
        if (elements.length < ELEMENTS_PER_OP) continue;
        pending.delete(set);
        yield { ...where, op: 'add-elements', set, shape: shapeIn(shapes, set), elements };
      }
    }
    for (const [set, elements] of pending) yield { ...where, op: 'add-elements', set, shape: shapeIn(shapes, set), elements };
  }
  yield* extra;
}

// Small enough that the elements waiting here die young: with 4,096 a set, the young
// generation copied and promoted a few MB of them at each scavenge (~20% of the full sync's
// JavaScript at 10k x 10); the kernel does not mind a few hundred more messages.
const ELEMENTS_PER_OP = 512;
const DISPATCH_NAMES = [DISPATCH_CHAIN.vip, DISPATCH_CHAIN.nodePort];

/** The chains (with their hooks) and sets (with their shapes) a family's table holds, by name, without making its units. */
function wantedNames(f: KFamily): { chains: Map<string, KHook | undefined>; sets: Map<string, SetShape> } {
  const chains = new Map<string, KHook | undefined>();
  const sets = new Map<string, SetShape>();
  for (const c of f.base.chains) chains.set(c.name, c.hook);
  if (f.base.dispatch) for (const name of DISPATCH_NAMES) chains.set(name, undefined);
  for (const s of f.base.sets) sets.set(s.name, s.shape);
  const note = (g: GroupObjects): void => {
    for (const c of g.chains) chains.set(c.name, undefined);
    for (const m of g.maps) sets.set(m.name, m.shape);
  };
  const live = new Set<string>();
  for (const ref of f.units.refs()) {
    const src = f.units.sourceOf(ref);
    if (!src) continue;
    const o = f.units.outlineOf(src);
    for (const name of o.chains) chains.set(name, undefined);
    for (const g of o.groups) {
      note(g);
      live.add(g.chains[0]!.name);
    }
  }
  for (const name of sparesOf(f.base, live)) note(countGroupObjects(f.head.family, name));
  return { chains, sets };
}

function shapeIn(shapes: ReadonlyMap<string, SetShape>, set: string): SetShape {
  const s = shapes.get(set);
  if (!s) throw new Error(`elements for set ${set}, which the table does not declare`);
  return s;
}

/** Two chains hook in the same way (both regular, or the same type, hook and priority). */
export const sameHook = (a: KHook | undefined, b: KHook | undefined): boolean =>
  a === b || (a !== undefined && b !== undefined && a.type === b.type && a.hook === b.hook && a.priority === b.priority);

/** A set shape's kind: a map when it has data. */
export const setKind = (shape: SetShape): 'set' | 'map' => (shape.includes(':') ? 'map' : 'set');

/**
 * Which packet key a dispatch map or set holds (`daddr . l4proto . dport`: vip; `l4proto .
 * dport`: nodeport), undefined for any other shape: a verdict map, or a dispatch set
 * (lower-dnat.ts: DISPATCH_CHAIN), whose keys send a packet on.
 */
export function dispatchKeyOf(shape: SetShape): 'vip' | 'nodeport' | undefined {
  switch (shape) {
    case 'addr.proto.port:verdict': case 'addr.proto.port': return 'vip';
    case 'proto.port:verdict': case 'proto.port': return 'nodeport';
    default: return undefined;
  }
}

/** How many objects and elements a transaction touches: what a sync costs the kernel. */
export function opCount(ops: Iterable<Op>): number {
  let n = 0;
  for (const op of ops) {
    if (op.op === 'add-elements' || op.op === 'delete-elements') for (const _ of op.elements) n++;
    else n++;
  }
  return n;
}

export const sameElement = (a: KElement, b: KElement): boolean =>
  a === b || (a.key === b.key && a.comment === b.comment && (a.data === b.data || (a.data !== undefined && b.data !== undefined && dataText(a) === dataText(b))));
const dataText = (e: KElement): string => (e.data!.kind === 'value' ? `v${e.data!.bytes}` : `${e.data!.verdict.kind} ${'chain' in e.data!.verdict ? e.data!.verdict.chain : ''}`);

export const sameRules = (a: readonly KRule[], b: readonly KRule[]): boolean => a === b || (a.length === b.length && a.every((r, i) => r.text === b[i]!.text));

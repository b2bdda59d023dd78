// Kernel operations: what a writer carries out, one nf_tables transaction being a list of
// them. The full replace of the tables is built here; the differ (diff.ts) builds the ordered
// transactions of a partial sync.
import type { Family } from '../../ir/types.js';
import { type KFamily, familyChains, familySets } from './family.js';
import type { KElement, KHook, KRule, KSetDecl, KTableHead, SetShape } from './types.js';

interface At { readonly family: Family; readonly table: string }

export type Op =
  | At & { readonly op: 'add-table'; readonly comment?: string }
  | At & { readonly op: 'delete-table' }
  | At & { readonly op: 'add-set'; readonly set: KSetDecl; readonly owner?: string }
  | At & { readonly op: 'delete-set'; readonly name: string; readonly shape: SetShape; readonly owner?: string }
  | At & { readonly op: 'add-chain'; readonly chain: { readonly name: string; readonly hook?: KHook }; readonly owner?: string }
  | At & { readonly op: 'flush-chain'; readonly name: string; readonly owner?: string }
  | At & { readonly op: 'delete-chain'; readonly name: string; readonly owner?: string }
  | At & { readonly op: 'add-rule'; readonly chain: string; readonly rule: KRule }
  | At & { readonly op: 'add-elements' | 'delete-elements'; readonly set: string; readonly shape: SetShape; readonly elements: Iterable<KElement> };

/** One kernel transaction: all its ops take effect together or none does. */
export type Transaction = Iterable<Op>;

export const at = (h: KTableHead): At => ({ family: h.family, table: h.name });

/**
 * The full sync, as one transaction: each family's table is created if missing and deleted
 * (so a table left by an earlier run goes, whatever it held), then made again whole. Families
 * in `heads` without a desired table are only removed. A generator: the netlink writer
 * encodes it as it goes, so the whole transaction never exists twice in memory.
 * `extra` adds elements after the tables are filled (session affinity carried over).
 */
export function* fullOps(fams: readonly KFamily[], heads: readonly KTableHead[], extra: readonly Op[] = []): Generator<Op> {
  for (const h of heads) {
    yield { ...at(h), op: 'add-table' };
    yield { ...at(h), op: 'delete-table' };
  }
  for (const f of fams) {
    const where = at(f.head);
    yield { ...where, op: 'add-table', comment: f.head.comment };
    const sets = familySets(f);
    for (const s of sets) yield { ...where, op: 'add-set', set: s.decl };
    const chains = [...familyChains(f)];
    for (const c of chains) yield { ...where, op: 'add-chain', chain: { name: c.name, ...(c.hook ? { hook: c.hook } : {}) }, ...(c.owner ? { owner: c.owner } : {}) };
    for (const c of chains) for (const rule of c.rules) yield { ...where, op: 'add-rule', chain: c.name, rule };
    for (const s of sets) if (s.elements?.length) yield { ...where, op: 'add-elements', set: s.decl.name, shape: s.decl.shape, elements: s.elements };
  }
  yield* extra;
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

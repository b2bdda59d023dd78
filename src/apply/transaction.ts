// Desired tables (and, for a partial sync, the tables last applied) -> one nft text
// transaction. Pure: the applier runs it and the tests read it.
//
// Full: "add table; delete table; table { … }" per family. nft applies the whole file as one
// kernel transaction, so the old table is replaced atomically: packets see the old rules or
// the new ones, never a mix, and conntrack entries (established flows) are untouched.
//
// Partial: only what differs, in an order the kernel accepts inside one transaction:
//   1. new sets/maps and new chains (empty) are declared,
//   2. stale and changed elements are deleted,
//   3. changed chains are flushed and refilled, new chains filled,
//   4. new and changed elements are added (a changed value = delete + add, one transaction),
//   5. chains that are gone are flushed, then deleted (their references went in 2–3),
//   6. sets/maps that are gone are deleted (their rules went in 3 or 5).
// Session-affinity sets are filled by the kernel: their elements are never diffed.
// A change the differ does not handle in place (a base chain or a set declaration changed)
// returns undefined: the caller does a full sync instead.
import type { Family } from '../ir/types.js';
import type { KChain, KTable } from '../render/nft-objects.js';
import { type OwnedLine, kTableLines } from '../render/nft-text.js';

export interface Transaction {
  readonly kind: 'full' | 'partial';
  readonly lines: readonly OwnedLine[];
  /** commands + elements: what a change costs the kernel */
  readonly ops: number;
}

export const transactionText = (tx: Transaction): string => tx.lines.map((l) => l.text).join('\n') + '\n';

export function fullTransaction(tables: readonly KTable[], families: readonly Family[] = tables.map((t) => t.family)): Transaction {
  const lines: OwnedLine[] = [];
  let ops = 0;
  // Families without a desired table are removed too (e.g. the node lost its IPv6 address).
  for (const f of new Set([...families, ...tables.map((t) => t.family)])) {
    lines.push({ text: `add table ${f} ${TABLE}`, owner: undefined }, { text: `delete table ${f} ${TABLE}`, owner: undefined });
    ops += 2;
  }
  for (const t of tables) {
    for (const l of kTableLines(t)) lines.push(l); // no spread: a 10k-service table is 500k+ lines
    ops += 1 + t.sets.size + t.chains.size;
    for (const s of t.sets.values()) ops += s.elements.size;
    for (const c of t.chains.values()) ops += c.rules.length;
  }
  return { kind: 'full', lines, ops };
}

const TABLE = 'nftproxy';

export function partialTransaction(prev: readonly KTable[], next: readonly KTable[]): Transaction | undefined {
  const lines: OwnedLine[] = [];
  let ops = 0;
  const cmd = (text: string, owner?: string, cost = 1): void => { lines.push({ text, owner }); ops += cost; };
  const prevByFamily = new Map(prev.map((t) => [t.family, t]));
  if (prev.length !== next.length || next.some((t) => !prevByFamily.has(t.family))) return undefined;

  for (const n of next) {
    const p = prevByFamily.get(n.family)!;
    const at = `${n.family} ${n.name}`;
    // Anything that cannot change in place sends us to a full sync.
    for (const [name, s] of n.sets) {
      const old = p.sets.get(name);
      if (old && (old.kind !== s.kind || !sameLines(old.decl, s.decl))) return undefined;
    }
    for (const [name, c] of n.chains) {
      const old = p.chains.get(name);
      if ((old && old.hook !== c.hook) || (!old && c.hook)) return undefined;
    }
    for (const [name, c] of p.chains) if (c.hook && !n.chains.has(name)) return undefined;

    // 1. declarations
    for (const s of n.sets.values()) {
      if (!p.sets.has(s.name)) cmd(`add ${s.kind} ${at} ${s.name} { ${s.decl.join('; ')}; }`, s.owner);
    }
    for (const c of n.chains.values()) if (!p.chains.has(c.name)) cmd(`add chain ${at} ${c.name}`, c.owner);

    // Elements go in one command per set, one element per line: cheap for nft to parse,
    // and an error still points at the element (and so the service port) that caused it.
    const elementsCmd = (verb: 'add' | 'delete', set: string, els: readonly { text: string; owner: string | undefined }[]): void => {
      els.forEach((e, i) => {
        lines.push({ text: `${i === 0 ? `${verb} element ${at} ${set} { ` : '\t'}${e.text}${i === els.length - 1 ? ' }' : ','}`, owner: e.owner });
      });
      ops += els.length;
    };

    // 2. stale and changed elements out
    for (const s of n.sets.values()) {
      const old = p.sets.get(s.name);
      if (!old || s.dynamic) continue;
      const out = [...old.elements.values()].filter((e) => { const now = s.elements.get(e.key); return now !== e && now?.text !== e.text; });
      elementsCmd('delete', s.name, out.map((e) => ({ text: e.key, owner: e.owner })));
    }

    // 3. rules
    for (const c of n.chains.values()) {
      const old = p.chains.get(c.name);
      if (old && sameRules(old, c)) continue;
      if (old) cmd(`flush chain ${at} ${c.name}`, c.owner);
      for (const r of c.rules) cmd(`add rule ${at} ${c.name} ${r.text}`, r.owner);
    }

    // 4. new and changed elements in
    for (const s of n.sets.values()) {
      if (s.dynamic) continue;
      const old = p.sets.get(s.name);
      elementsCmd('add', s.name, [...s.elements.values()].filter((e) => { const was = old?.elements.get(e.key); return was !== e && was?.text !== e.text; }));
    }

    // 5. chains that are gone: flush all first, so references between them go too
    const goneChains = [...p.chains.values()].filter((c) => !n.chains.has(c.name));
    for (const c of goneChains) cmd(`flush chain ${at} ${c.name}`, c.owner);
    for (const c of goneChains) cmd(`delete chain ${at} ${c.name}`, c.owner);

    // 6. sets that are gone
    for (const s of p.sets.values()) if (!n.sets.has(s.name)) cmd(`delete ${s.kind} ${at} ${s.name}`, s.owner);
  }
  return { kind: 'partial', lines, ops };
}

const sameLines = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
const sameRules = (a: KChain, b: KChain): boolean => a === b || a.rules.length === b.rules.length && a.rules.every((r, i) => r.text === b.rules[i]!.text);


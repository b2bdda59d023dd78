// Spare endpoint-count groups: the groups of the counts next to one in use, made although no
// service uses them yet.
//
// Why. A service whose endpoint count becomes one no other service uses needs that count's
// group (lower-dnat.ts): its chain, its maps, and its rule in each dispatch chain. Adding a
// rule that holds a lookup, a NAT or a goto makes the kernel validate the whole table at the
// commit (kernel 6.18 nf_tables_api.c: nft_table_validate walks every chain a base chain
// reaches, once per hook), and nothing else in a partial sync does: 12-17 ms at 10k services x
// 10 endpoints, 58 ms at 10k x 50, against ~1 ms for the data alone. The common count changes
// are one up or one down (a rolling update's surge pod, a pod that dies or fails readiness,
// a scale by one), so with the groups of N-1 and N+1 made beside every count N in use, such
// a change finds its group made and is data alone: elements into existing sets, no rule.
//
// When. A full sync makes the spares with everything else. A partial sync never makes one on
// the change's path: a count change that lands on a spare is data alone, and the spares it
// now wants (the neighbours of the new count) are made afterwards, in a transaction of their
// own (AppliedFamily.spareWork, Applier.makeSpares) that the daemon runs after it has logged
// the change's kernel ack. A count change that lands on a count without a group (a jump by
// more than one, or a spare not made yet) makes the group in its make transaction, as before.
// Spares nobody neighbours any more are deleted with the clean, as a gone group is (by handle,
// no validation).
//
// The cost. A spare's maps and dispatch sets are empty; its dispatch rules are lookups in
// empty sets, made by the first packet of a connection that misses service-ips and reaches
// them (nat chains see no other). Each count in use brings at most two spares per policy, and
// none where its neighbours are in use anyway (a cluster with counts 1..30 in use has one
// spare per policy: 31).
import type { Family } from '../../ir/types.js';
import { dnatGroupNames } from '../lower-dnat.js';
import { type GroupObjects, groupObjects } from './objects.js';

const COUNT_GROUP = /^dnat-(cluster|local)-([0-9]+)$/;

/** The spare groups (named by their chains) that the groups in use want: the counts one below and one above each count in use. */
export function spareGroupNames(live: Iterable<string>): Set<string> {
  const inUse = live instanceof Set ? (live as ReadonlySet<string>) : new Set(live);
  const out = new Set<string>();
  for (const name of inUse) {
    const m = COUNT_GROUP.exec(name);
    if (!m) continue;
    const n = Number(m[2]);
    for (const k of [n - 1, n + 1]) {
      if (k < 1) continue;
      const spare = `dnat-${m[1]}-${k}`;
      if (!inUse.has(spare)) out.add(spare);
    }
  }
  return out;
}

/**
 * The spares a table holds beside the groups in use: none in a table without dispatch chains
 * (no services chain), whose groups no dispatch rule reaches, so a spare would be nothing but
 * objects.
 */
export function sparesOf(base: { readonly dispatch?: unknown }, live: Iterable<string>): Set<string> {
  return base.dispatch ? spareGroupNames(live) : new Set();
}

/** A count group's objects from its chain's name (a spare has no dnat statement to make them from). */
export function countGroupObjects(family: Family, name: string): GroupObjects {
  const m = COUNT_GROUP.exec(name);
  if (!m) throw new Error(`${name} is not an endpoint-count group`);
  const policy = m[1] as 'cluster' | 'local', n = Number(m[2]);
  return groupObjects(family, { policy, n, ...dnatGroupNames(policy, n) });
}

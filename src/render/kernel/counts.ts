// What several units share, counted: an element two service ports add (a cluster IP, a
// hairpin pair) is in the kernel once and goes when the last unit using it goes; an
// endpoint-count group's maps and chains live while one unit uses them. The applier keeps
// these counts across syncs (diff.ts); a full sync builds them as it writes (ops.ts).
import type { KUnit, KUnitElement } from './family.js';

export class UnitCounts {
  /** per set, per element key: how many units hold it (keyed by the element's own key string: no key made per element) */
  private readonly shared = new Map<string, Map<string, number>>();
  /** per group (its chain's name): how many units use it */
  private readonly groupUses = new Map<string, number>();
  /** the groups made although no unit uses them (spares.ts): not counted, made and deleted by name */
  readonly spares = new Set<string>();

  sharedCount(s: KUnitElement): number {
    return this.shared.get(s.set)?.get(s.el.key) ?? 0;
  }

  groupCount(name: string): number {
    return this.groupUses.get(name) ?? 0;
  }

  /** the groups (their chains' names) some unit uses */
  groupNames(): IterableIterator<string> {
    return this.groupUses.keys();
  }

  bumpShared(s: KUnitElement, n: number): void {
    let m = this.shared.get(s.set);
    if (!m) this.shared.set(s.set, (m = new Map()));
    bump(m, s.el.key, n);
  }

  /** One more unit holds this shared element: true when it is the first (the element is new to the kernel). */
  holdShared(set: string, key: string): boolean {
    let m = this.shared.get(set);
    if (!m) this.shared.set(set, (m = new Map()));
    const n = m.get(key) ?? 0;
    m.set(key, n + 1);
    return n === 0;
  }

  bumpGroup(name: string, n: number): void {
    bump(this.groupUses, name, n);
  }

  /** Counts one service's units in. */
  add(us: readonly KUnit[]): void {
    for (const u of us) {
      for (const s of u.shared) this.holdShared(s.set, s.el.key);
      for (const g of u.groups) this.bumpGroup(g.name, 1);
    }
  }
}

function bump(m: Map<string, number>, k: string, n: number): void {
  const v = (m.get(k) ?? 0) + n;
  if (v > 0) m.set(k, v); else m.delete(k);
}

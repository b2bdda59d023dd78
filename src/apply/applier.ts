// Keeps the kernel's nftproxy tables equal to the desired kernel objects (render/kernel).
// Remembers what it last applied, so a change costs transactions the size of the change,
// ordered make -> switch -> retire -> clean (render/kernel/diff.ts says why); anything it is not sure
// of (first sync, a failed transaction, --sync-period, a foreign change) is a full, atomic
// replace. Owns only the `nftproxy` tables of families ip and ip6.
import type { Family, Ruleset } from '../ir/types.js';
import { TABLE_NAME } from '../ir/types.js';
import { AppliedFamily, type FamilyDelta, PHASE_ORDER, asOneTransaction } from '../render/kernel/diff.js';
import { type KFamily, kernelFamilyOfTable } from '../render/kernel/family.js';
import { UnitCounts } from '../render/kernel/counts.js';
import { type Op, type TableLayout, type Transaction, fullOps } from '../render/kernel/ops.js';
import type { KTableHead } from '../render/kernel/types.js';
import { CONTENT_ERRNOS, type KernelWriter, type WriteError } from './kernel-writer.js';
import { carriedAffinity } from './affinity-carry.js';

export const FAMILIES: readonly Family[] = ['ip', 'ip6'];
const HEADS: readonly KTableHead[] = FAMILIES.map((family) => ({ family, name: TABLE_NAME, comment: '' }));

export interface SyncResult {
  readonly kind: 'full' | 'partial';
  /** objects + elements written */
  readonly ops: number;
  /** kernel transactions it took (a partial sync: 0 to 3) */
  readonly transactions: number;
  readonly durationMs: number;
  /** full sync: session-affinity clients read back and re-added (affinity-carry.ts) */
  readonly carriedAffinity?: number;
}

export class ApplyError extends Error {
  constructor(readonly kind: 'full' | 'partial', readonly error: WriteError) {
    super(`the kernel refused the ${kind} sync (${error.code}): ${error.message}`);
    this.name = 'ApplyError';
  }
  /** service ports to quarantine: only a full sync (a clean slate) blames its objects for a content error */
  get culprits(): readonly string[] {
    const e = this.error;
    return this.kind === 'full' && e.code === 'NFT_REJECTED' && e.errnos.some((n) => CONTENT_ERRNOS.has(n) || n === 2) ? e.owners : [];
  }
}

export interface ApplierOptions {
  readonly clock?: () => number;
  /**
   * 'ordered' (the product): a partial sync is up to four transactions, make, switch, retire, clean,
   * each acknowledged before the next. 'single' (tests only): the same ops in one transaction,
   * to show what the order prevents.
   */
  readonly partial?: 'ordered' | 'single';
}

export class Applier {
  /** what the kernel holds, per family, as far as we know; undefined = unknown, next sync is full */
  private applied: AppliedFamily[] | undefined;
  private readonly clock: () => number;

  constructor(readonly writer: KernelWriter, private readonly opts: ApplierOptions = {}) {
    this.clock = opts.clock ?? (() => performance.now());
  }

  get knowsKernelState(): boolean {
    return this.applied !== undefined;
  }

  /** Forget what was applied: the next sync replaces the tables. */
  invalidate(): void {
    this.applied = undefined;
  }

  /** An assembled IR ruleset (tests, tools): its tables become kernel objects first. */
  syncRuleset(rs: Ruleset, opts: { full?: boolean } = {}): Promise<SyncResult> {
    return this.sync(rs.tables.map(kernelFamilyOfTable), opts);
  }

  async sync(fams: readonly KFamily[], opts: { full?: boolean } = {}): Promise<SyncResult> {
    const start = this.clock();
    const applied = this.applied;
    const same = applied !== undefined && applied.length === fams.length && fams.every((f, i) => applied[i]!.fam.head.family === f.head.family);
    const deltas = !opts.full && same ? fams.map((f, i) => applied[i]!.diff(f)) : undefined;
    if (deltas && deltas.every((d): d is FamilyDelta => d !== undefined)) {
      const phases = PHASE_ORDER.map((p) => deltas.flatMap((d) => d.phases[p]));
      const txs = this.opts.partial === 'single' ? [asOneTransaction(phases.flat())] : phases;
      let ops = 0, transactions = 0;
      for (const tx of txs) {
        if (tx.length === 0) continue;
        const r = await this.writer.commit(tx);
        if (!r.ok) {
          // The transactions before this one took effect, this one did not: the tables hold a
          // state between the old and the new that we did not record. Start over from a full sync.
          this.invalidate();
          throw new ApplyError('partial', r.error);
        }
        ops += r.value.ops;
        transactions++;
      }
      for (const d of deltas) d.commit();
      return { kind: 'partial', ops, transactions, durationMs: this.clock() - start };
    }
    return this.full(fams, start);
  }

  /**
   * Makes the spare endpoint-count groups the last partial sync left wanted (render/kernel/
   * spares.ts): one transaction (the kernel validates the table), after the change itself was
   * acknowledged. The daemon runs it once it has logged the change's ack. Undefined: nothing
   * to make, or the state is unknown (the next sync is full and makes them). A refusal throws
   * and, as any failed transaction, makes the next sync a full one.
   */
  async makeSpares(): Promise<SyncResult | undefined> {
    const start = this.clock();
    const works = (this.applied ?? []).map((a) => a.spareWork());
    const ops = works.flatMap((w) => w?.ops ?? []);
    if (ops.length === 0) return undefined;
    const r = await this.writer.commit(ops);
    if (!r.ok) {
      this.invalidate();
      throw new ApplyError('partial', r.error);
    }
    for (const w of works) w?.commit();
    return { kind: 'partial', ops: r.value.ops, transactions: 1, durationMs: this.clock() - start };
  }

  private async full(fams: readonly KFamily[], start: number): Promise<SyncResult> {
    // A full replace keeps the clients session affinity remembers (affinity-carry.ts). Should
    // the kernel refuse them, the replace goes ahead without: affinity is lost, nothing else.
    let carry: { ops: Op[]; carried: number };
    try {
      carry = await carriedAffinity(this.writer, fams);
    } catch {
      carry = { ops: [], carried: 0 };
    }
    // What the tables hold now: a table that exists is replaced in place, keeping the chains
    // and sets it will hold again (ops.ts, fullOps, says why). Unknown (the writer cannot say,
    // the dump failed), or refused in place (a set whose declaration changed between versions
    // of nftproxy): the table is deleted and made again whole.
    const existing = new Map<string, TableLayout | undefined>();
    if (this.writer.layout) {
      try {
        for (const f of fams) existing.set(`${f.head.family} ${f.head.name}`, await this.writer.layout(f.head.family, f.head.name));
      } catch {
        existing.clear();
      }
    }
    // Each attempt counts the units afresh as it writes them: the counts of the one the kernel
    // took are what partial syncs start from.
    let counts: UnitCounts[] = [];
    const tx = (extra: readonly Op[], known: ReadonlyMap<string, TableLayout | undefined>): Transaction => ({
      [Symbol.iterator]: () => {
        counts = fams.map(() => new UnitCounts());
        return fullOps(fams, HEADS, extra, known, counts);
      },
    });
    let r = await this.writer.commit(tx(carry.ops, existing));
    let carried = carry.carried;
    if (!r.ok && carry.ops.length > 0) {
      r = await this.writer.commit(tx([], existing));
      carried = 0;
    }
    if (!r.ok && r.error.code === 'NFT_REJECTED' && [...existing.values()].some((l) => l !== undefined)) r = await this.writer.commit(tx([], new Map()));
    if (!r.ok) {
      // The kernel undid the whole transaction: it still holds the previous state, but after a
      // failure we stop trusting our record of it; the next attempt is a full replace.
      this.invalidate();
      throw new ApplyError('full', r.error);
    }
    // what the applier keeps: the families (their units are made again when a partial sync
    // needs them) and the counts, not the units made for this sync
    this.applied = fams.map((f, i) => AppliedFamily.of(f, counts[i]));
    return { kind: 'full', ops: r.value.ops, transactions: 1, durationMs: this.clock() - start, carriedAffinity: carried };
  }

  /** Remove nftproxy's tables (both families), whether or not they exist. */
  async cleanup(): Promise<void> {
    const r = await this.writer.commit(HEADS.flatMap((h): Op[] => [{ family: h.family, table: h.name, op: 'add-table' }, { family: h.family, table: h.name, op: 'delete-table' }]));
    if (!r.ok) throw new ApplyError('full', r.error);
    this.invalidate();
  }
}


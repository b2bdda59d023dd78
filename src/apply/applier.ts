// Keeps the kernel's nftproxy tables equal to the desired ruleset. Remembers what it last
// applied, so a change costs a transaction the size of the change; anything it is not sure
// of (first sync, a failed transaction, --sync-period) is a full, atomic replace.
// Owns only the `nftproxy` tables of families ip and ip6.
import type { Family, Ruleset } from '../ir/types.js';
import { TABLE_NAME } from '../ir/types.js';
import { type KTable, toKTable } from '../render/nft-objects.js';
import { type NftFailure, attributeNftError } from './nft-errors.js';
import type { NftRunner } from './nft-runner.js';
import { fullTransaction, partialTransaction, transactionText } from './transaction.js';
import { IncrementalTable } from './incremental.js';
import { type CompiledFamily, assemble } from '../compile/compile.js';
import { affinityKeysInUse, carriedAffinity } from './affinity-carry.js';

export const FAMILIES: readonly Family[] = ['ip', 'ip6'];

export interface SyncResult {
  readonly kind: 'full' | 'partial';
  readonly ops: number;
  readonly durationMs: number;
  /** full sync: session-affinity clients read back and re-added (affinity-carry.ts) */
  readonly carriedAffinity?: number;
}

export class ApplyError extends Error {
  constructor(readonly kind: 'full' | 'partial', readonly failure: NftFailure) {
    super(`nft rejected the ${kind} transaction: ${failure.message}${failure.owners.length ? ` (caused by ${failure.owners.join(', ')})` : ''}`);
  }
}

export class Applier {
  /** what the kernel holds, as far as we know; undefined = unknown, next sync is full */
  private applied: KTable[] | undefined;
  /** the same, per service, for syncParts (partial syncs at the cost of the change) */
  private incremental: IncrementalTable[] | undefined;

  constructor(private readonly nft: NftRunner, private readonly clock: () => number = () => performance.now()) {}

  get knowsKernelState(): boolean {
    return this.applied !== undefined || this.incremental !== undefined;
  }

  /** Forget what was applied: the next sync replaces the tables. */
  invalidate(): void {
    this.applied = undefined;
    this.incremental = undefined;
  }

  /**
   * The daemon's sync: compiled parts in, and a partial transaction built from the services
   * whose compiled rules changed (src/apply/incremental.ts), or a full replace when the
   * state is unknown, asked for, or changed in a way the increment cannot express.
   */
  async syncParts(parts: readonly CompiledFamily[], opts: { full?: boolean } = {}): Promise<SyncResult> {
    const start = this.clock();
    const inc = this.incremental;
    const sameFamilies = inc !== undefined && inc.length === parts.length && parts.every((p, i) => inc[i]!.family === p.ctx.family);
    const deltas = !opts.full && sameFamilies ? parts.map((p, i) => inc[i]!.delta(p)) : undefined;
    if (deltas && deltas.every((d) => d !== undefined)) {
      const lines = deltas.flatMap((d) => d!.lines);
      const ops = deltas.reduce((n, d) => n + d!.ops, 0);
      if (lines.length > 0) {
        const r = await this.nft.load(lines.map((l) => l.text).join('\n') + '\n');
        if (r.exitCode !== 0) {
          this.invalidate();
          throw new ApplyError('partial', attributeNftError(r.stderr, lines));
        }
      }
      for (const d of deltas) d!.commit();
      this.applied = undefined; // the per-table record is no longer current
      return { kind: 'partial', ops, durationMs: this.clock() - start };
    }
    const result = await this.sync(assemble(parts), { full: true });
    this.incremental = parts.map((p) => IncrementalTable.fromParts(p));
    return { ...result, durationMs: this.clock() - start };
  }

  async sync(rs: Ruleset, opts: { full?: boolean } = {}): Promise<SyncResult> {
    const start = this.clock();
    this.incremental = undefined; // a ruleset sync does not keep the per-service record
    const next = rs.tables.map(toKTable);
    const tx = (!opts.full && this.applied && partialTransaction(this.applied, next)) || fullTransaction(next, FAMILIES);
    if (tx.kind === 'partial' && tx.lines.length === 0) return { kind: 'partial', ops: 0, durationMs: this.clock() - start };
    const text = transactionText(tx);
    // A full replace keeps the clients session affinity remembers (affinity-carry.ts). Should
    // nft refuse them, the replace goes ahead without: affinity is lost, nothing else.
    const carry = tx.kind === 'full' ? await carriedAffinity(this.nft, affinityKeysInUse(rs)) : { lines: [], carried: 0 };
    let r = await this.nft.load(carry.lines.length ? `${text}${carry.lines.join('\n')}\n` : text);
    let carried = carry.carried;
    if (r.exitCode !== 0 && carry.lines.length) {
      r = await this.nft.load(text);
      carried = 0;
    }
    if (r.exitCode !== 0) {
      // nft is atomic: the kernel still holds the previous state, but after a failure we
      // stop trusting our record of it; the next attempt is a full replace.
      this.invalidate();
      throw new ApplyError(tx.kind, attributeNftError(r.stderr, tx.lines));
    }
    this.applied = next;
    return { kind: tx.kind, ops: tx.ops, durationMs: this.clock() - start, ...(tx.kind === 'full' ? { carriedAffinity: carried } : {}) };
  }

  /** Remove nftproxy's tables (both families), whether or not they exist. */
  async cleanup(): Promise<void> {
    const text = FAMILIES.flatMap((f) => [`add table ${f} ${TABLE_NAME}`, `delete table ${f} ${TABLE_NAME}`]).join('\n') + '\n';
    const r = await this.nft.load(text);
    if (r.exitCode !== 0) throw new Error(`nft could not remove the nftproxy tables: ${r.stderr.trim()}`);
    this.invalidate();
  }
}

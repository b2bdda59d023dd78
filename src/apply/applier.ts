// Keeps the kernel's nftproxy tables equal to the desired ruleset. Remembers what it last
// applied, so a change costs a transaction the size of the change; anything it is not sure
// of (first sync, a failed transaction, --sync-period) is a full, atomic replace.
// Owns only the `nftproxy` tables of families ip and ip6.
import type { Family, Ruleset } from '../ir/types.js';
import { TABLE_NAME } from '../ir/types.js';
import { type KTable, toKTable } from '../render/nft-objects.js';
import { type NftFailure, attributeNftError } from './nft-errors.js';
import type { NftRunner } from './nft-runner.js';
import { type Transaction, fullTransaction, partialTransaction, transactionText } from './transaction.js';

export const FAMILIES: readonly Family[] = ['ip', 'ip6'];

export interface SyncResult {
  readonly kind: 'full' | 'partial';
  readonly ops: number;
  readonly durationMs: number;
}

export class ApplyError extends Error {
  constructor(readonly kind: 'full' | 'partial', readonly failure: NftFailure) {
    super(`nft rejected the ${kind} transaction: ${failure.message}${failure.owners.length ? ` (caused by ${failure.owners.join(', ')})` : ''}`);
  }
}

export class Applier {
  /** what the kernel holds, as far as we know; undefined = unknown, next sync is full */
  private applied: KTable[] | undefined;

  constructor(private readonly nft: NftRunner, private readonly clock: () => number = () => performance.now()) {}

  get knowsKernelState(): boolean {
    return this.applied !== undefined;
  }

  /** Forget what was applied: the next sync replaces the tables. */
  invalidate(): void {
    this.applied = undefined;
  }

  /** Build the transaction a sync would run, without running it (dump --diff, tests). */
  plan(rs: Ruleset, full = false): Transaction {
    const next = rs.tables.map(toKTable);
    return (!full && this.applied && partialTransaction(this.applied, next)) || fullTransaction(next, FAMILIES);
  }

  async sync(rs: Ruleset, opts: { full?: boolean } = {}): Promise<SyncResult> {
    const start = this.clock();
    const next = rs.tables.map(toKTable);
    const tx = (!opts.full && this.applied && partialTransaction(this.applied, next)) || fullTransaction(next, FAMILIES);
    if (tx.kind === 'partial' && tx.lines.length === 0) return { kind: 'partial', ops: 0, durationMs: this.clock() - start };
    const r = await this.nft.load(transactionText(tx));
    if (r.exitCode !== 0) {
      // nft is atomic: the kernel still holds the previous state, but after a failure we
      // stop trusting our record of it; the next attempt is a full replace.
      this.applied = undefined;
      throw new ApplyError(tx.kind, attributeNftError(r.stderr, tx.lines));
    }
    this.applied = next;
    return { kind: tx.kind, ops: tx.ops, durationMs: this.clock() - start };
  }

  /** Remove nftproxy's tables (both families), whether or not they exist. */
  async cleanup(): Promise<void> {
    const text = FAMILIES.flatMap((f) => [`add table ${f} ${TABLE_NAME}`, `delete table ${f} ${TABLE_NAME}`]).join('\n') + '\n';
    const r = await this.nft.load(text);
    if (r.exitCode !== 0) throw new Error(`nft could not remove the nftproxy tables: ${r.stderr.trim()}`);
    this.applied = undefined;
  }
}

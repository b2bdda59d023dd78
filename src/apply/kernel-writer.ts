// The one boundary between nftproxy and the kernel's nf_tables: a transaction in, the kernel's
// verdict out. The real writer speaks netlink (netlink/writer.ts); tests put a recording fake
// here (test/support/recording-writer.ts) to prove retries, quarantine and the order of
// make-before-break transactions without root.
import type { Family } from '../ir/types.js';
import type { Result } from '../model/result.js';
import type { TableLayout, Transaction } from '../render/kernel/ops.js';
import type { KElement } from '../render/kernel/types.js';

export type WriteError =
  /** the kernel refused the transaction; nothing of it took effect */
  | { readonly code: 'NFT_REJECTED'; readonly message: string; readonly owners: readonly string[]; readonly errnos: readonly number[] }
  /** the socket failed: whether the kernel applied the transaction is unknown */
  | { readonly code: 'NETLINK_IO'; readonly message: string }
  /** no netfilter netlink here (library missing, no permission) */
  | { readonly code: 'NETLINK_UNAVAILABLE'; readonly message: string };

export interface CommitInfo {
  /** objects + elements the transaction touched */
  readonly ops: number;
  readonly bytes: number;
}

export interface KernelWriter {
  /** One nf_tables transaction; resolves after the kernel acknowledged all of it. */
  commit(tx: Transaction): Promise<Result<CommitInfo, WriteError>>;
  /** The elements of a set the kernel fills itself (session affinity), with their timeouts; undefined when absent. */
  listDynamicSet(family: Family, table: string, set: string, shapeKeyLen: number): Promise<KElement[] | undefined>;
  /**
   * What a table holds, by name (chains with their hooks, named sets); undefined when it does
   * not exist. Optional: without it a full sync deletes and remakes the table.
   */
  layout?(family: Family, table: string): Promise<TableLayout | undefined>;
  /** Which of nftproxy's tables exist, with their chain and set counts. */
  tables(name: string): Promise<{ family: Family; chains: number; sets: number }[]>;
}

/** errnos that mean the objects themselves were wrong, not the kernel's state (EINVAL, ERANGE, E2BIG, EOPNOTSUPP) */
export const CONTENT_ERRNOS: ReadonlySet<number> = new Set([22, 34, 7, 95]);

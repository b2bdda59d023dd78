// Session affinity across a full sync. A full sync replaces the table, and with it the shared
// affinity set (compile/affinity.ts) that the kernel fills: every client would be balanced
// afresh at start and every --sync-period. kube-proxy keeps its affinity sets across syncs
// and restarts, so before a full sync the applier reads the set back (a netlink dump) and the
// same transaction re-adds each remembered client with what is left of its timeout.
//
// Only entries whose endpoint key the new rules still use are carried: a key that is gone
// belongs to an endpoint that went away (or to an older generation of it), whose clients
// kube-proxy would have forgotten with its set. Kernel output is checked, never trusted:
// an entry that does not look like ours is dropped.
import { TABLE_NAME } from '../ir/types.js';
import type { KFamily } from '../render/kernel/family.js';
import type { Op } from '../render/kernel/ops.js';
import type { KElement } from '../render/kernel/types.js';
import { wordText } from '../render/kernel/bytes.js';
import type { KernelWriter } from './kernel-writer.js';

/** ~600,000 remembered clients; beyond that a full sync forgets them rather than hold the listing twice */
export const MAX_CARRIED = 600_000;
const MAX_TIMEOUT_MS = 86_400_000;

export function affinityKeysInUse(f: KFamily): Set<string> {
  const keys = new Set<string>();
  // from each service's outline: nothing made
  for (const ref of f.units.refs()) {
    const src = f.units.sourceOf(ref);
    if (src) for (const k of f.units.outlineOf(src).affinityKeys) keys.add(k);
  }
  return keys;
}

export async function carriedAffinity(writer: KernelWriter, fams: readonly KFamily[]): Promise<{ ops: Op[]; carried: number }> {
  const ops: Op[] = [];
  let carried = 0;
  for (const f of fams) {
    // the set the rules remember clients in: the family's one dynamic set
    const set = f.base.sets.find((s) => s.shape === 'saddr.word.word' && s.timeoutSeconds !== undefined);
    if (!set) continue;
    const alen = f.head.family === 'ip' ? 4 : 16;
    // listed first: at a first start there is nothing to carry, and the keys in use take a walk
    // over every service (90 ms of a 10k-service full sync)
    const listed = await writer.listDynamicSet(f.head.family, TABLE_NAME, set.name, alen + 8);
    if (!listed || listed.length === 0 || listed.length > MAX_CARRIED) continue;
    const keys = affinityKeysInUse(f);
    if (keys.size === 0) continue;
    const keep: KElement[] = [];
    for (const e of listed) {
      const t = e.timeoutMs, left = e.expiresMs;
      if (t === undefined || left === undefined || left < 1000 || left > t || t > MAX_TIMEOUT_MS) continue;
      if (!keys.has(`${wordText(e.key, alen)}.${wordText(e.key, alen + 4)}`)) continue;
      keep.push({ key: e.key, timeoutMs: t, expiresMs: left });
    }
    if (keep.length === 0) continue;
    carried += keep.length;
    ops.push({ family: f.head.family, table: TABLE_NAME, op: 'add-elements', set: set.name, shape: set.shape, elements: keep });
  }
  return { ops, carried };
}

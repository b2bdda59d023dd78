// Session affinity across a full sync. A full sync replaces the table, and with it the shared
// affinity set (compile/affinity.ts) that the kernel fills: every client would be balanced
// afresh at start and every --sync-period. kube-proxy keeps its affinity sets across syncs
// and restarts, so before a full sync the applier reads the set back and the same
// transaction re-adds each remembered client with what is left of its timeout.
//
// Only entries whose endpoint key the new rules still use are carried: a key that is gone
// belongs to an endpoint that went away (or to an older generation of it), whose clients
// kube-proxy would have forgotten with its set.
import { parseIP } from '../model/ip.js';
import { type Family, type Ruleset, TABLE_NAME } from '../ir/types.js';
import { SET } from '../compile/base-chains.js';
import type { NftRunner } from './nft-runner.js';

/** The endpoint keys the rules of each family update ("k0.k1"). */
export function affinityKeysInUse(rs: Ruleset): Map<Family, Set<string>> {
  const out = new Map<Family, Set<string>>();
  for (const t of rs.tables) {
    const keys = new Set<string>();
    for (const c of t.chains) for (const r of c.rules) for (const s of r.stmts) if (s.kind === 'affinity-update') keys.add(`${s.key[0]}.${s.key[1]}`);
    out.set(t.family, keys);
  }
  return out;
}

interface JsonElem { elem?: { val?: { concat?: unknown[] }; timeout?: unknown; expires?: unknown } }

/**
 * `add element` lines re-adding the remembered clients still in use, per family, or none when
 * there is no table yet (or nothing to carry). Kernel output is parsed defensively: an entry
 * that does not look like ours is dropped, never passed through as text.
 */
export async function carriedAffinity(nft: NftRunner, keysInUse: ReadonlyMap<Family, ReadonlySet<string>>): Promise<{ lines: string[]; carried: number }> {
  const lines: string[] = [];
  let carried = 0;
  for (const [family, keys] of keysInUse) {
    if (keys.size === 0) continue;
    const r = await nft.run(['-j', 'list', 'set', family, TABLE_NAME, SET.affinity]);
    if (r.exitCode !== 0) continue; // no table or no set yet: nothing to carry
    // ~600,000 remembered clients; beyond that a full sync forgets them rather than hold
    // several copies of the listing in memory
    if (r.stdout.length > MAX_LISTING) continue;
    let doc: { nftables?: { set?: { elem?: unknown[] } }[] };
    try { doc = JSON.parse(r.stdout) as typeof doc; } catch { continue; }
    const elems = doc.nftables?.find((o) => o.set)?.set?.elem ?? [];
    const texts: string[] = [];
    for (const e of elems as JsonElem[]) {
      const [addr, k0, k1] = e.elem?.val?.concat ?? [];
      const timeout = e.elem?.timeout, expires = e.elem?.expires;
      if (typeof addr !== 'string' || !parseIP(addr).ok || !isWord(k0) || !isWord(k1) || !isSeconds(timeout) || !isSeconds(expires)) continue;
      if (expires < 1 || expires > timeout || !keys.has(`${k0}.${k1}`)) continue;
      texts.push(`${addr} . ${k0} . ${k1} timeout ${timeout}s expires ${expires}s`);
    }
    if (texts.length === 0) continue;
    carried += texts.length;
    // one command per 1,000 elements keeps each line of the transaction short
    for (let i = 0; i < texts.length; i += 1000) lines.push(`add element ${family} ${TABLE_NAME} ${SET.affinity} { ${texts.slice(i, i + 1000).join(', ')} }`);
  }
  return { lines, carried };
}

const MAX_LISTING = 64 * 2 ** 20;
const isWord = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < 2 ** 31;
const isSeconds = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 86_400;

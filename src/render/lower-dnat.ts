// Lowering of the IR's "dnat to one of these backends" for the scalable layout.
//
// nftables makes a map's cost grow with the number of *sets in the table* and with
// elements x bindings (measured on nft 1.0.6 / kernel 6.18: 20k per-service inline maps
// load in 137 s, 20k named maps in 26 s). So backends do not get a set per service:
// every service port with N backends shares one chain `dnat-<policy>-N` whose single rule
// looks the packet up in one map keyed `daddr . l4proto . dport . slot` (and one keyed
// `l4proto . dport . slot` for NodePorts, whose daddr is any node address), with
// slot = numgen random mod N. Set and binding counts then grow with the number of
// distinct endpoint counts, not with services.
import type { Backend, Chain, DnatKey, Family, Statement, Table } from '../ir/types.js';

export interface DnatGroup {
  readonly policy: 'cluster' | 'local';
  readonly n: number;
  readonly chain: string;
  /** the shared external chain: mark for masquerade, then `chain` (see dnatAliases) */
  readonly masqChain: string;
  readonly vipMap: string;
  readonly nodePortMap: string;
  readonly vipElements: { key: DnatKey & { kind: 'vip' }; slot: number; backend: Backend; owner: string | undefined }[];
  readonly nodePortElements: { key: DnatKey & { kind: 'nodeport' }; slot: number; backend: Backend; owner: string | undefined }[];
}

/**
 * A dnat statement that picks one of its port's endpoints for the packet (it carries the packet
 * keys that reach it) is written as the shared group chain of its endpoint count, one endpoint
 * too: a service with one endpoint then owns no chain either, as with two or more (at 10k
 * services x 1 endpoint that is 10k chains fewer, and every commit walks every chain). A dnat
 * without keys names its one endpoint itself (session affinity's remembered and random picks).
 */
export const picksFromGroup = (st: Extract<Statement, { kind: 'dnat' }>): boolean => st.keys.length > 0;

export function dnatGroupNames(policy: 'cluster' | 'local', n: number): { chain: string; masqChain: string; vipMap: string; nodePortMap: string } {
  return { chain: `dnat-${policy}-${n}`, masqChain: `dnat-${policy}-${n}-masq`, vipMap: `endpoints-${policy}-${n}`, nodePortMap: `nodeport-endpoints-${policy}-${n}` };
}

/**
 * Chains the nft objects leave out, and what stands in for them. A service port's chain that
 * is nothing but "dnat to one of N backends" (N >= 2) does nothing the shared chain
 * dnat-<policy>-N does not (its backends are in that chain's maps, keyed by the packet), so
 * whatever goes to it goes there instead; an external chain that only marks for masquerade
 * and goes to such a chain is the shared dnat-<policy>-N-masq. Most services then own no chain:
 * at 10k services that is 30,522 chains down to about 10,000, and every nft run (a partial
 * sync too) lists the table's chains first. The IR keeps the chains: explain and the tracer
 * still show the service's own path. A chain only ever refers to its own service port's
 * chains, so aliases computed over one port's chains or over the whole table agree.
 */
const NO_ALIASES: ReadonlyMap<string, string> = new Map();
// the group chains' names by policy and N, made once (aliases are computed every time a
// service's kernel objects are made: a full sync at 10k services asks ~17k times)
const GROUP_CHAIN: Record<'cluster' | 'local', string[]> = { cluster: [], local: [] };
const MASQ_CHAIN = new Map<string, string>();
const groupChain = (policy: 'cluster' | 'local', n: number): string => (GROUP_CHAIN[policy][n] ??= dnatGroupNames(policy, n).chain);
const masqChainOf = (chain: string): string => {
  let m = MASQ_CHAIN.get(chain);
  if (m === undefined) MASQ_CHAIN.set(chain, (m = `${chain}-masq`));
  return m;
};

export function dnatAliases(chains: readonly Chain[]): ReadonlyMap<string, string> {
  let aliases: Map<string, string> | undefined;
  for (const c of chains) {
    const only = c.rules.length === 1 ? c.rules[0]! : undefined;
    const st = only && only.matches.length === 0 && only.stmts.length === 1 ? only.stmts[0]! : undefined;
    if (!c.base && st?.kind === 'dnat' && picksFromGroup(st)) (aliases ??= new Map()).set(c.name, groupChain(st.policy, st.backends.length));
  }
  if (!aliases) return NO_ALIASES;
  for (const c of chains) {
    const [mark, go] = c.rules;
    if (c.base || c.rules.length !== 2 || mark!.matches.length || go!.matches.length || mark!.stmts.length !== 1 || go!.stmts.length !== 1) continue;
    const m = mark!.stmts[0]!, v = go!.stmts[0]!;
    const target = v.kind === 'verdict' && v.verdict.kind === 'goto' ? aliases.get(v.verdict.chain) : undefined;
    if (m.kind === 'mark-masq' && target) aliases.set(c.name, masqChainOf(target));
  }
  return aliases;
}

/** Every group a table's dnat statements need, sorted by policy then N. */
export function collectDnatGroups(table: Pick<Table, 'chains'>): DnatGroup[] {
  const groups = new Map<string, DnatGroup>();
  for (const chain of table.chains) {
    for (const rule of chain.rules) {
      for (const st of rule.stmts) {
        if (st.kind !== 'dnat' || !picksFromGroup(st)) continue;
        const n = st.backends.length;
        const id = `${st.policy}-${String(n).padStart(6, '0')}`;
        let g = groups.get(id);
        if (!g) {
          g = { policy: st.policy, n, ...dnatGroupNames(st.policy, n), vipElements: [], nodePortElements: [] };
          groups.set(id, g);
        }
        for (const key of st.keys) {
          st.backends.forEach((backend, slot) => {
            if (key.kind === 'vip') g!.vipElements.push({ key, slot, backend, owner: chain.owner });
            else g!.nodePortElements.push({ key, slot, backend, owner: chain.owner });
          });
        }
      }
    }
  }
  return [...groups.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, g]) => g);
}

export const addrKeyword = (f: Family): string => (f === 'ip' ? 'ip' : 'ip6');

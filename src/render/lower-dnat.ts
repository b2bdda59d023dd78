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
import type { Backend, DnatKey, Family, Table } from '../ir/types.js';

export interface DnatGroup {
  readonly policy: 'cluster' | 'local';
  readonly n: number;
  readonly chain: string;
  readonly vipMap: string;
  readonly nodePortMap: string;
  readonly vipElements: { key: DnatKey & { kind: 'vip' }; slot: number; backend: Backend; owner: string | undefined }[];
  readonly nodePortElements: { key: DnatKey & { kind: 'nodeport' }; slot: number; backend: Backend; owner: string | undefined }[];
}

export function dnatGroupNames(policy: 'cluster' | 'local', n: number): { chain: string; vipMap: string; nodePortMap: string } {
  return { chain: `dnat-${policy}-${n}`, vipMap: `endpoints-${policy}-${n}`, nodePortMap: `nodeport-endpoints-${policy}-${n}` };
}

/** Every group a table's dnat statements need, sorted by policy then N. */
export function collectDnatGroups(table: Pick<Table, 'chains'>): DnatGroup[] {
  const groups = new Map<string, DnatGroup>();
  for (const chain of table.chains) {
    for (const rule of chain.rules) {
      for (const st of rule.stmts) {
        if (st.kind !== 'dnat' || st.backends.length < 2) continue;
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

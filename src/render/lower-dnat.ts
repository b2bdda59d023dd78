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
import { contentHash } from '../ir/names.js';

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
 * is nothing but "dnat to one of its N backends" does nothing the shared chain
 * dnat-<policy>-N does not (its backends are in that chain's maps, keyed by the packet), so
 * whatever goes to it goes there instead; an external chain that only marks for masquerade
 * and goes to such a chain is the shared dnat-<policy>-N-masq. Most services then own no chain:
 * at 10k services that is 30,522 chains down to about 10,000, and every nft run (a partial
 * sync too) lists the table's chains first. The IR keeps the chains: explain and the tracer
 * still show the service's own path. A chain only ever refers to its own service port's
 * chains, so aliases computed over one port's chains or over the whole table agree. Last, a
 * chain left with nothing of its service in it is shared by content (sharedName, below).
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
    // only cluster groups have a masq chain (objects.ts: groupObjects)
    if (m.kind === 'mark-masq' && target?.startsWith('dnat-cluster-')) aliases.set(c.name, masqChainOf(target));
  }
  // what is left that says nothing of its service once its targets are shared chains
  for (const c of chains) {
    if (c.base || aliases.has(c.name)) continue;
    const name = sharedName(c, aliases);
    if (name !== undefined) aliases.set(c.name, name);
  }
  return aliases;
}

/**
 * An externalTrafficPolicy=Local port's external chain (pods and the node short-circuited to
 * the cluster-wide endpoints, everyone else to this node's) holds nothing of its service once
 * both its targets are endpoint-count chains: its rules are the same for every port with the
 * same two counts. Such a chain (any chain of only source-address and fib-local matches,
 * masquerade marks and gotos to shared chains) is one shared chain, named by a hash of its
 * rules: `external-shared-<hash>`, made while a port uses it, as a group is. At 10k x 10 that is
 * 1,237 chains fewer; the kernel walks every chain at every commit, and validates each once
 * per base chain when a verdict changes.
 */
function sharedName(c: Chain, aliases: ReadonlyMap<string, string>): string | undefined {
  const hit = SHARED.get(c);
  if (hit !== undefined) return hit ?? undefined;
  const parts: unknown[] = [];
  let ok = c.rules.length > 0;
  for (const r of c.rules) {
    if (!ok) break;
    for (const m of r.matches) if (!(m.kind === 'fib-local' || (m.kind === 'addr' && m.field === 'saddr'))) ok = false;
    const stmts = r.stmts.map((st) => {
      if (st.kind === 'mark-masq') return 'mark-masq';
      const target = st.kind === 'verdict' && st.verdict.kind === 'goto' ? aliases.get(st.verdict.chain) : undefined;
      if (target === undefined) ok = false;
      return `goto ${target}`;
    });
    parts.push([r.matches.map((m) => (m.kind === 'addr' ? [m.field, m.op, m.values.map((v) => (typeof v === 'string' ? v : v.text))] : m.kind === 'fib-local' ? [m.kind, m.field] : [m.kind])), stmts, r.comment ?? '']);
  }
  const name = ok ? `${SHARED_PREFIX}${contentHash(JSON.stringify(parts))}` : undefined;
  SHARED.set(c, name ?? null);
  return name;
}
const SHARED_PREFIX = 'external-shared-';
// per compiled chain (immutable; a changed service is compiled into new chains): its shared name, or null
const SHARED = new WeakMap<Chain, string | null>();

/** The shared chains (sharedName) among a port's chains: each name, and one of the chains it stands for. */
export function sharedChains(chains: readonly Chain[], aliases: ReadonlyMap<string, string>): { name: string; chain: Chain }[] {
  const out: { name: string; chain: Chain }[] = [];
  for (const c of chains) {
    const name = aliases.get(c.name);
    if (name !== undefined && name.startsWith(SHARED_PREFIX) && !out.some((o) => o.name === name)) out.push({ name, chain: c });
  }
  return out;
}

/**
 * Dispatch sets: how a key reaches its endpoint-count chain without a verdict element. A key
 * (`daddr . l4proto . dport`, or `l4proto . dport` for a NodePort) whose dispatch verdict would
 * be `goto dnat-<policy>-N[-masq]` is instead an element of the plain set
 * `service-ips-<that chain>` (`service-nodeports-<that chain>`), and one rule per such chain,
 * `KEY @service-ips-<chain> goto <chain>`, follows the service-ips lookup (in the chain
 * service-groups, and nodeport-services for NodePorts). Why: the kernel validates the whole
 * table (every chain, every verdict-map element, once per hook) at the commit of any
 * transaction that adds a jump or goto (kernel 6.18 nf_tables_api.c: nft_table_validate;
 * 7-26 ms at 10k services x 10 endpoints), and a plain set element is no verdict. So moving a
 * service between endpoint counts, adding one and deleting one are data alone; only a count
 * without a group (a new group, a new rule) still validates, and the counts next to one in use
 * have their groups made beforehand (render/kernel/spares.ts). The cost: a packet that
 * misses service-ips makes one set lookup per such chain (one per endpoint count in use or spare, and
 * policy), only for the first packet of a connection (nat chains).
 */
export const DISPATCH_CHAIN = { vip: 'service-groups', nodePort: 'nodeport-services' } as const;

const DISPATCH_TARGET = /^dnat-(cluster|local)-[0-9]+(-masq)?$/;
/** A chain that keys reach through dispatch sets: an endpoint-count chain or its masquerade chain. */
export const isDispatchTarget = (chain: string): boolean => DISPATCH_TARGET.test(chain);

const VIP_SETS = new Map<string, string>(), NODEPORT_SETS = new Map<string, string>();
/** The dispatch set of a target chain (isDispatchTarget) for VIP or NodePort keys. */
export function dispatchSetName(target: string, which: 'vip' | 'nodeport'): string {
  const m = which === 'vip' ? VIP_SETS : NODEPORT_SETS;
  let name = m.get(target);
  if (name === undefined) {
    name = `${which === 'vip' ? 'service-ips' : 'service-nodeports'}-${target}`;
    if (m.size < 10_000) m.set(target, name);
  }
  return name;
}

/** The dispatch targets a group (named by its chain) brings: its chain, and its masquerade chain for a cluster group; none for a shared chain. */
export function groupDispatchTargets(group: string): readonly string[] {
  if (!isDispatchTarget(group) || group.endsWith('-masq')) return [];
  return group.startsWith('dnat-cluster-') ? [group, masqChainOf(group)] : [group];
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

// The chains that choose an endpoint for one ServicePort: one per endpoint policy some traffic
// uses (service-… for cluster-wide endpoints, local-… for this node's); with session affinity
// each also remembers the client.
import type { Protocol } from '../model/types.js';
import type { AffinityKey, Backend, Chain, DnatKey, Match, Rule, Statement } from '../ir/types.js';
import { endpointId } from '../ir/names.js';
import { SET } from './base-chains.js';
import { type GenerationOf, affinityKey } from './affinity.js';
import type { EndpointPolicy } from './traffic-decisions.js';

export interface PolicyChain {
  readonly name: string;
  readonly policy: EndpointPolicy;
  readonly backends: readonly Backend[];
  /** the packet keys that reach this chain: the renderer indexes the backends on them */
  readonly keys: readonly DnatKey[];
}

export interface EndpointChains {
  /** the policy chains in the order given */
  readonly chains: Chain[];
  /** affinity endpoints (ids) and the generation each key was made with */
  readonly affinity: [endpointId: string, generation: number][];
}

/** affinityTimeout: sessionAffinity ClientIP's timeout in seconds, undefined without affinity. */
export function endpointChains(owner: string, proto: Protocol, affinityTimeout: number | undefined, generationOf: GenerationOf, policies: readonly PolicyChain[]): EndpointChains {
  if (affinityTimeout === undefined) {
    return { chains: policies.map((p) => ({ name: p.name, owner, rules: [{ matches: [], stmts: [{ kind: 'dnat', proto, backends: p.backends, policy: p.policy, keys: p.keys }] }] })), affinity: [] };
  }
  // With affinity, each policy chain picks its endpoint itself, in two runs of one rule per
  // endpoint, each rule remembering the client (in the shared affinity set, under the
  // endpoint's key) and DNATing to that endpoint, then one rule more:
  //   1. a client remembered for an endpoint goes back to it;
  //   2. any other picks one at random: the i-th rule is taken one time in n-i, so each
  //      endpoint with chance 1/n (the last rule always);
  //   3. the same pick without remembering, as a service without affinity picks (the shared
  //      endpoint-count chain and its map): a full affinity set makes the update fail, which
  //      ends its rule, and the client must still be balanced.
  // No chain per endpoint and no anonymous map. Every commit walks all of a table's chains, and
  // chains per endpoint were three quarters of the bench's 10k-service table (a one-element
  // transaction: 0.36 ms with them, 0.13 ms without). An anonymous `numgen … vmap` bound to a
  // rule loses its elements at the commit that replaces the rule, under packets still running
  // it (test/datapath/make-before-break.datapath.test.ts, the session-affinity rows). And a
  // change of a dispatch verdict makes the kernel validate every rule the table can reach, most
  // of them in these chains: the third run as one rule (not one per endpoint) took a third off
  // that walk at 10k x 10 (one `goto` element: 20-25 ms -> 12-16 ms).
  const used = new Map<string, number>();
  const affinityRules = (p: PolicyChain): Rule[] => {
    const targets = p.backends.map((b) => {
      const eid = endpointId(owner, b.addr, b.port);
      const generation = generationOf(eid);
      if (!used.has(eid)) used.set(eid, generation);
      return { backend: b, key: affinityKey(eid, generation) };
    });
    const n = targets.length;
    const pick = (i: number): Match[] => (i < n - 1 ? [{ kind: 'one-in', n: n - i }] : []);
    const remember = (key: AffinityKey): Statement => ({ kind: 'affinity-update', set: SET.affinity, key, timeoutSeconds: affinityTimeout });
    const dnat = (b: Backend): Statement => ({ kind: 'dnat', proto, backends: [b], policy: p.policy, keys: [] });
    return [
      ...targets.map((t): Rule => ({ matches: [{ kind: 'affinity', set: SET.affinity, key: t.key }], stmts: [remember(t.key), dnat(t.backend)] })),
      ...targets.map((t, i): Rule => ({ matches: pick(i), stmts: [remember(t.key), dnat(t.backend)] })),
      { matches: [], stmts: [{ kind: 'dnat', proto, backends: p.backends, policy: p.policy, keys: p.keys }] },
    ];
  };
  return { chains: policies.map((p) => ({ name: p.name, owner, rules: affinityRules(p) })), affinity: [...used] };
}

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
  // With affinity, each policy chain picks its endpoint itself, in three runs of one rule per
  // endpoint, each rule remembering the client (in the shared affinity set, under the
  // endpoint's key) and DNATing to that endpoint:
  //   1. a client remembered for an endpoint goes back to it;
  //   2. any other picks one at random: the i-th rule is taken one time in n-i, so each
  //      endpoint with chance 1/n (the last rule always);
  //   3. the same pick without remembering: a full affinity set makes the update fail, which
  //      ends its rule, and the client must still be balanced.
  // No chain per endpoint and no map. Every commit walks all of a table's chains, and chains
  // per endpoint were three quarters of the bench's 10k-service table (a one-element
  // transaction: 0.36 ms with them, 0.13 ms without). And an anonymous `numgen … vmap` bound to
  // a rule loses its elements at the commit that replaces the rule, under packets still running
  // it (test/datapath/make-before-break.datapath.test.ts, the session-affinity rows).
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
      ...targets.map((t, i): Rule => ({ matches: pick(i), stmts: [dnat(t.backend)] })),
    ];
  };
  return { chains: policies.map((p) => ({ name: p.name, owner, rules: affinityRules(p) })), affinity: [...used] };
}

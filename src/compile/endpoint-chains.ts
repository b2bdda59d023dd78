// The chains that choose an endpoint for one ServicePort: one per endpoint policy some traffic
// uses (service-… for cluster-wide endpoints, local-… for this node's), and with session
// affinity one chain per endpoint that remembers the client.
import type { Protocol } from '../model/types.js';
import type { Backend, Chain, DnatKey, Rule } from '../ir/types.js';
import { endpointId, objectName } from '../ir/names.js';
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
  /** the policy chains in the order given, then the per-endpoint chains */
  readonly chains: Chain[];
  /** affinity endpoints (ids) and the generation each key was made with */
  readonly affinity: [endpointId: string, generation: number][];
}

/** affinityTimeout: sessionAffinity ClientIP's timeout in seconds, undefined without affinity. */
export function endpointChains(owner: string, proto: Protocol, affinityTimeout: number | undefined, generationOf: GenerationOf, policies: readonly PolicyChain[]): EndpointChains {
  if (affinityTimeout === undefined) {
    return { chains: policies.map((p) => ({ name: p.name, owner, rules: [{ matches: [], stmts: [{ kind: 'dnat', proto, backends: p.backends, policy: p.policy, keys: p.keys }] }] })), affinity: [] };
  }
  // An endpoint both policies use gets one chain, made by the first (the cluster-wide one).
  const perEndpoint = new Map<string, Chain>();
  const used = new Map<string, number>();
  const affinityRules = (p: PolicyChain): Rule[] => {
    const targets = p.backends.map((b) => {
      const eid = endpointId(owner, b.addr, b.port);
      const chain = objectName('endpoint', eid);
      const generation = generationOf(eid);
      const key = affinityKey(eid, generation);
      if (!perEndpoint.has(chain)) {
        used.set(eid, generation);
        // Two rules: a full affinity set must not stop the DNAT (a failed update ends its rule).
        perEndpoint.set(chain, { name: chain, owner, rules: [
          { matches: [], stmts: [{ kind: 'affinity-update', set: SET.affinity, key, timeoutSeconds: affinityTimeout }] },
          { matches: [], stmts: [{ kind: 'dnat', proto, backends: [b], policy: p.policy, keys: [] }] },
        ] });
      }
      return { chain, key };
    });
    // A client remembered for an endpoint goes back to it; any other picks one at random: one
    // rule per endpoint, the i-th taken with chance 1/(n-i), so each with chance 1/n. Not
    // `numgen random mod n vmap { … }`: that map is anonymous, bound to its rule, and when a
    // sync replaces the rule the kernel deactivates the map's elements at the commit, while a
    // packet that entered the base chain before it still runs the old rule and so misses
    // every element: it leaves un-NATed (test/datapath/make-before-break.datapath.test.ts,
    // the session-affinity rows). Rules hold no such state.
    const goto = (chain: string): Rule['stmts'] => [{ kind: 'verdict', verdict: { kind: 'goto', chain } }];
    return [
      ...targets.map(({ chain, key }): Rule => ({ matches: [{ kind: 'affinity', set: SET.affinity, key }], stmts: goto(chain) })),
      ...targets.map(({ chain }, i): Rule => (i < targets.length - 1 ? { matches: [{ kind: 'one-in', n: targets.length - i }], stmts: goto(chain) } : { matches: [], stmts: goto(chain) })),
    ];
  };
  const chains: Chain[] = policies.map((p) => ({ name: p.name, owner, rules: affinityRules(p) }));
  for (const c of perEndpoint.values()) chains.push(c);
  return { chains, affinity: [...used] };
}

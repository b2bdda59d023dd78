// One ServicePort in one family -> its chains, its dispatch-map elements, and the decisions
// explain reports. What happens to each class of traffic is decided in traffic-decisions.ts,
// as kube-proxy's nftables mode decides it; this module writes those decisions as IR.
import type { IP } from '../model/ip.js';
import type { Endpoint, Protocol, Service, ServicePort } from '../model/types.js';
import type { Backend, Chain, DnatKey, Rule, ServicePortInfo, SetElement, Verdict } from '../ir/types.js';
import { objectName, servicePortId } from '../ir/names.js';
import { assertNever } from '../model/result.js';
import { CHAIN, SET } from './base-chains.js';
import type { FamilyContext } from './family-context.js';
import { type Selection, selectEndpoints } from './select-endpoints.js';
import { type GenerationOf, firstGeneration } from './affinity.js';
import { type PolicyChain, endpointChains } from './endpoint-chains.js';
import {
  type Destinations, type EndpointPolicy, type ExternalSources, type ExternalVerdict, type FirewallVerdict, type InternalVerdict,
  destinationsOf, externalSources, externalVerdict, externalVIPs, firewallVerdict, internalVerdict, isExposed,
} from './traffic-decisions.js';

export interface ServicePortRules {
  readonly chains: Chain[];
  readonly elements: [setName: string, element: SetElement][];
  readonly hairpin: IP[];
  readonly info: ServicePortInfo;
  /** affinity endpoints (ids) and the generation each key was made with */
  readonly affinity: readonly (readonly [endpointId: string, generation: number])[];
}

interface Verdicts {
  readonly internal: InternalVerdict;
  readonly external: ExternalVerdict;
  readonly firewall: FirewallVerdict;
}

/**
 * A port's chain names, each made when a chain or a verdict first needs it: most ports use one
 * of the four, and each name is a SHA-256 (remembered for good, names.ts), so making all four
 * cost a cold compile of 10k services ~50k hashes and their remembered strings for nothing.
 */
class Names {
  constructor(private readonly id: string) {}
  get cluster(): string { return objectName('service', this.id); }
  get local(): string { return objectName('local', this.id); }
  get external(): string { return objectName('external', this.id); }
  get firewall(): string { return objectName('firewall', this.id); }
}

const goto = (chain: string): Verdict => ({ kind: 'goto', chain });
const DROP: Verdict = { kind: 'drop' };
const toBackend = (e: Endpoint): Backend => ({ addr: e.ip, port: e.port });

export function compileServicePort(ctx: FamilyContext, svc: Service, sp: ServicePort, endpoints: readonly Endpoint[], generationOf: GenerationOf = firstGeneration): ServicePortRules | undefined {
  const dest = destinationsOf(ctx, svc, sp);
  if (dest === undefined) return undefined;
  const { protocol: proto, port } = sp;
  const id = servicePortId(svc.ref.namespace, svc.ref.name, proto, sp.name);
  const exposed = isExposed(dest);
  const sel = selectEndpoints(svc, endpoints, exposed, ctx.nodeName, ctx.zone);
  const internal = internalVerdict(svc, sel);
  const external = externalVerdict(svc, exposed, sel);
  const sources = externalSources(external, ctx);
  const firewall = firewallVerdict(svc, dest, ctx);
  const affinityTimeout = svc.sessionAffinity.kind === 'ClientIP' ? svc.sessionAffinity.timeoutSeconds : undefined;
  const names = new Names(id);
  const backends: Record<EndpointPolicy, Backend[]> = { cluster: sel.cluster.map(toBackend), local: sel.local.map(toBackend) };

  const policies = policyChains(dest, proto, port, internal, external, names, backends);
  const ep = endpointChains(id, proto, affinityTimeout, generationOf, policies);
  const chains: Chain[] = [];
  if (firewall.kind === 'source-ranges') chains.push(firewallChain(names.firewall, id, firewall, dest.loadBalancerIPs));
  for (const c of ep.chains) chains.push(c);
  if (sources !== undefined) chains.push(externalChain(names, id, sources, external));

  return {
    chains,
    elements: dispatchElements(dest, proto, port, { internal, external, firewall }, names, id, `${svc.ref.namespace}/${svc.ref.name}:${sp.name}`),
    // Every endpoint a DNAT of this port may choose: one that reaches itself through the service
    // is masqueraded (hairpin), or its reply would not be un-DNATed.
    hairpin: [...new Set(policies.flatMap((p) => p.backends).map((b) => b.addr))],
    affinity: ep.affinity,
    info: {
      id, family: ctx.family, service: `${svc.ref.namespace}/${svc.ref.name}`, portName: sp.name, proto, port,
      decisions: explainDecisions(ctx, svc, sel, { internal, external, firewall }, exposed, affinityTimeout),
      clusterBackends: backends.cluster, localBackends: backends.local, affinityTimeout,
      vips: [dest.clusterIP, ...externalVIPs(dest)], nodePort: dest.nodePort,
      servingEndpoints: [...new Set(endpoints.filter((e) => e.conditions.serving).map((e) => e.ip))].sort(),
      nodeEndpoints: [...new Set(endpoints.filter((e) => e.nodeName !== undefined && e.nodeName === ctx.nodeName).map((e) => e.ip))].sort(),
      noLocalEndpoints: { internal: internal.kind === 'drop', external: external.kind === 'drop' },
      internalLocal: svc.internalTrafficPolicy === 'Local',
    },
  };
}

/** The endpoint-choosing chains this port needs, each with the packet keys that reach it. */
function policyChains(dest: Destinations, proto: Protocol, port: number, internal: InternalVerdict, external: ExternalVerdict, names: Names, backends: Record<EndpointPolicy, Backend[]>): PolicyChain[] {
  const vip = (addr: IP): DnatKey => ({ kind: 'vip', addr, proto, port });
  const externalKeys: DnatKey[] = [...externalVIPs(dest).map(vip), ...(dest.nodePort !== undefined ? [{ kind: 'nodeport', proto, port: dest.nodePort } as const] : [])];
  // External traffic that reaches the external chain goes on to the cluster-wide endpoints under
  // eTP Cluster, and under eTP Local too for the pods and the node it short-circuits.
  const externalReaches: Record<EndpointPolicy, boolean> = {
    cluster: external.kind === 'dnat' || external.kind === 'drop',
    local: external.kind === 'dnat' && external.policy === 'local',
  };
  const out: PolicyChain[] = [];
  for (const policy of ['cluster', 'local'] as const) {
    const keys = [...(internal.kind === 'dnat' && internal.policy === policy ? [vip(dest.clusterIP)] : []), ...(externalReaches[policy] ? externalKeys : [])];
    if (keys.length > 0) out.push({ name: names[policy], policy, backends: backends[policy], keys });
  }
  return out;
}

/** Where each destination of this port goes first: the maps the base chains look up. */
function dispatchElements(dest: Destinations, proto: Protocol, port: number, v: Verdicts, names: Names, owner: string, comment: string): [string, SetElement][] {
  const { internal, external, firewall } = v;
  const elements: [string, SetElement][] = [];
  const add = (set: string, key: (string | number)[], verdict?: Verdict): void => {
    elements.push([set, verdict ? { key, verdict, comment, owner } : { key }]);
  };
  add(SET.clusterIPs, [dest.clusterIP]);
  switch (internal.kind) {
    case 'dnat': add(SET.serviceIPs, [dest.clusterIP, proto, port], goto(names[internal.policy])); break;
    case 'reject': add(SET.noEndpointServices, [dest.clusterIP, proto, port], goto(CHAIN.reject)); break;
    case 'drop': add(SET.noEndpointServices, [dest.clusterIP, proto, port], DROP); break;
    default: assertNever(internal);
  }
  // capture: the nat dispatch (service-ips, service-nodeports). noEndpoints: the filter chains'
  // check, which runs after DNAT and so sees only what the external chain did not DNAT.
  const { capture, noEndpoints } = externalDispatch(external, names);
  for (const ip of externalVIPs(dest)) {
    if (capture) add(SET.serviceIPs, [ip, proto, port], capture);
    if (noEndpoints) add(SET.noEndpointServices, [ip, proto, port], noEndpoints);
  }
  if (dest.nodePort !== undefined) {
    if (capture) add(SET.serviceNodePorts, [proto, dest.nodePort], capture);
    if (noEndpoints) add(SET.noEndpointNodePorts, [proto, dest.nodePort], noEndpoints);
  }
  // The firewall check runs before DNAT (filter, priority -110), on LB IPs only.
  if (firewall.kind === 'source-ranges') for (const ip of dest.loadBalancerIPs) add(SET.firewallIPs, [ip, proto, port], goto(names.firewall));
  return elements;
}

function externalDispatch(external: ExternalVerdict, names: Names): { capture?: Verdict; noEndpoints?: Verdict } {
  switch (external.kind) {
    case 'not-exposed': return {};
    case 'reject': return { noEndpoints: goto(CHAIN.reject) };
    case 'dnat': return { capture: goto(names.external) };
    // Both: pods and the node are DNATed by the external chain, the rest is dropped after it.
    case 'drop': return { capture: goto(names.external), noEndpoints: DROP };
    default: return assertNever(external);
  }
}

function firewallChain(name: string, owner: string, fw: Extract<FirewallVerdict, { kind: 'source-ranges' }>, lbIPs: readonly IP[]): Chain {
  return {
    name, owner,
    rules: [{ matches: [{ kind: 'addr', field: 'saddr', op: '!=', values: [...fw.ranges, ...(fw.nodeInRanges ? lbIPs : [])] }], stmts: [{ kind: 'verdict', verdict: DROP }], comment: 'source not in loadBalancerSourceRanges' }],
  };
}

/** The chain all external destinations go to: the source handling, then the policy's endpoints. */
function externalChain(names: Names, owner: string, sources: ExternalSources, external: ExternalVerdict): Chain {
  const rules: Rule[] = [];
  switch (sources.kind) {
    case 'masquerade-all':
      rules.push({ matches: [], stmts: [{ kind: 'mark-masq' }], comment: 'externalTrafficPolicy Cluster: masquerade' });
      break;
    case 'keep-client-ip':
      if (sources.podCIDRs.length > 0) rules.push({ matches: [{ kind: 'addr', field: 'saddr', op: '==', values: sources.podCIDRs }], stmts: [{ kind: 'verdict', verdict: goto(names.cluster) }], comment: 'short-circuit pod traffic' });
      rules.push({ matches: [{ kind: 'fib-local', field: 'saddr' }], stmts: [{ kind: 'mark-masq' }], comment: 'masquerade local traffic' });
      rules.push({ matches: [{ kind: 'fib-local', field: 'saddr' }], stmts: [{ kind: 'verdict', verdict: goto(names.cluster) }], comment: 'short-circuit local traffic' });
      break;
    default: assertNever(sources);
  }
  // Without local endpoints (eTP Local) the rest falls through, not DNATed, to the filter's drop.
  if (external.kind === 'dnat') rules.push({ matches: [], stmts: [{ kind: 'verdict', verdict: goto(names[external.policy]) }] });
  return { name: names.external, owner, rules };
}

/** What explain says about this port, in the order a reader follows a packet. */
function explainDecisions(ctx: FamilyContext, svc: Service, sel: Selection, v: Verdicts, exposed: boolean, affinityTimeout: number | undefined): string[] {
  const { internal, external, firewall } = v;
  const d: string[] = [];
  const local = `this node's endpoints (${sel.local.length})`, cluster = `cluster-wide endpoints (${sel.cluster.length})`;
  d.push(`internalTrafficPolicy ${svc.internalTrafficPolicy}: ClusterIP traffic uses ${svc.internalTrafficPolicy === 'Local' ? local : cluster}`);
  if (exposed) d.push(`externalTrafficPolicy ${svc.externalTrafficPolicy}: external traffic uses ${svc.externalTrafficPolicy === 'Local' ? `${local}, client IP kept` : `${cluster}, masqueraded`}`);
  for (const n of sel.notes) d.push(n);
  switch (internal.kind) {
    case 'reject': d.push('no usable endpoint anywhere: every destination of this port is rejected'); break;
    case 'drop': d.push('internalTrafficPolicy Local and no local endpoint: ClusterIP traffic is dropped'); break;
    case 'dnat': break;
    default: assertNever(internal);
  }
  if (external.kind === 'drop') d.push('externalTrafficPolicy Local and no local endpoint: external traffic from outside is dropped');
  if (firewall.kind === 'source-ranges') {
    d.push(`loadBalancerSourceRanges ${firewall.ranges.map((r) => r.text).join(', ')} filter LB IP traffic (NodePorts are not filtered)`);
    const nodeIP = ctx.nodeIPs.length > 0 ? `node IP ${ctx.primaryIP}` : `node IP ${ctx.primaryIP} (loopback: no ${ctx.ipFamily} node address)`;
    if (firewall.nodeInRanges) d.push(`${nodeIP} is inside the ranges: LB IPs are allowed as sources too`);
  }
  if (affinityTimeout !== undefined) d.push(`sessionAffinity ClientIP: a client sticks to its endpoint for ${affinityTimeout}s after its last new connection`);
  return d;
}

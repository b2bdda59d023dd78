// What happens to each class of traffic of one ServicePort in one family, decided once, as
// kube-proxy's nftables proxier decides it (pkg/proxy/nftables/proxier.go, syncProxyRules):
// ClusterIP traffic, external traffic (externalIPs, LB IPs, the NodePort), the source ranges
// of LB traffic, and what external traffic's source becomes. Pure values; service-port.ts turns
// them into chains and map elements.
import { type Cidr, type IP, cidrContains, familyOf } from '../model/ip.js';
import type { Port, Service, ServicePort } from '../model/types.js';
import { assertNever } from '../model/result.js';
import type { FamilyContext } from './family-context.js';
import type { Selection } from './select-endpoints.js';

/** Which endpoints a DNAT chooses from: cluster-wide ones, or this node's (a Local policy). */
export type EndpointPolicy = 'cluster' | 'local';

/** Where one ServicePort receives packets in one family. */
export interface Destinations {
  readonly clusterIP: IP;
  readonly externalIPs: readonly IP[];
  readonly loadBalancerIPs: readonly IP[];
  readonly nodePort: Port | undefined;
}

/** undefined: the service has no ClusterIP of this family, so nothing of it is proxied here. */
export function destinationsOf(ctx: FamilyContext, svc: Service, sp: ServicePort): Destinations | undefined {
  const clusterIP = svc.clusterIPs.find((ip) => familyOf(ip) === ctx.ipFamily);
  if (clusterIP === undefined) return undefined;
  return {
    clusterIP,
    externalIPs: svc.externalIPs.filter((ip) => familyOf(ip) === ctx.ipFamily),
    loadBalancerIPs: svc.loadBalancerIPs.filter((ip) => familyOf(ip) === ctx.ipFamily),
    nodePort: sp.nodePort,
  };
}

/** The external destinations' addresses, externalIPs first. */
export const externalVIPs = (d: Destinations): IP[] => [...d.externalIPs, ...d.loadBalancerIPs];

/** kube-proxy's ExternallyAccessible(): only then does externalTrafficPolicy mean anything. */
export const isExposed = (d: Destinations): boolean => d.externalIPs.length > 0 || d.loadBalancerIPs.length > 0 || d.nodePort !== undefined;

/** ClusterIP traffic. */
export type InternalVerdict =
  | { readonly kind: 'dnat'; readonly policy: EndpointPolicy }
  | { readonly kind: 'reject'; readonly reason: 'no-endpoints' }
  | { readonly kind: 'drop'; readonly reason: 'no-local-endpoints' };

export function internalVerdict(svc: Pick<Service, 'internalTrafficPolicy'>, sel: Pick<Selection, 'hasEndpoints' | 'local'>): InternalVerdict {
  // No usable endpoint on any node: the client is told at once (ICMP unreachable / RST), as
  // kube-proxy's reject-chain does, rather than left to time out.
  if (!sel.hasEndpoints) return { kind: 'reject', reason: 'no-endpoints' };
  if (svc.internalTrafficPolicy === 'Cluster') return { kind: 'dnat', policy: 'cluster' };
  // internalTrafficPolicy Local never leaves the node. Without a local endpoint kube-proxy
  // drops instead of rejecting: REJECT is its answer for a service with no endpoint at all,
  // and this one has endpoints, on other nodes.
  return sel.local.length > 0 ? { kind: 'dnat', policy: 'local' } : { kind: 'drop', reason: 'no-local-endpoints' };
}

/** Traffic to the externalIPs, LB IPs and NodePort. */
export type ExternalVerdict =
  /** no external destination in this family: externalTrafficPolicy does not apply */
  | { readonly kind: 'not-exposed' }
  | { readonly kind: 'dnat'; readonly policy: EndpointPolicy }
  | { readonly kind: 'reject'; readonly reason: 'no-endpoints' }
  /**
   * externalTrafficPolicy Local without a local endpoint: traffic from outside is dropped (the
   * healthCheckNodePort tells the load balancer to send it to nodes that have one), but pods
   * and the node itself still short-circuit to cluster-wide endpoints (externalSources).
   */
  | { readonly kind: 'drop'; readonly reason: 'no-local-endpoints' };

export function externalVerdict(svc: Pick<Service, 'externalTrafficPolicy'>, exposed: boolean, sel: Pick<Selection, 'hasEndpoints' | 'local'>): ExternalVerdict {
  if (!exposed) return { kind: 'not-exposed' };
  if (!sel.hasEndpoints) return { kind: 'reject', reason: 'no-endpoints' };
  if (svc.externalTrafficPolicy === 'Cluster') return { kind: 'dnat', policy: 'cluster' };
  return sel.local.length > 0 ? { kind: 'dnat', policy: 'local' } : { kind: 'drop', reason: 'no-local-endpoints' };
}

/**
 * What external traffic that reaches the service's external chain has done to its source before
 * an endpoint is chosen. undefined: none reaches it (rejected, or not exposed).
 */
export type ExternalSources =
  /**
   * externalTrafficPolicy Cluster: every source is masqueraded, since the endpoint may be on
   * another node and its reply must come back through this one to be un-DNATed.
   */
  | { readonly kind: 'masquerade-all' }
  /**
   * externalTrafficPolicy Local: the client IP is kept, which is the point of the policy. Two
   * kinds of sources are exceptions, as in kube-proxy: pods (podCIDRs; none known means no
   * local-traffic detector, and no exception) go to cluster-wide endpoints unmasqueraded, as if
   * they had gone out to the load balancer and come back in; the node itself goes there too,
   * masqueraded, since its source address is the destination's own (the LB IP is local).
   */
  | { readonly kind: 'keep-client-ip'; readonly podCIDRs: readonly Cidr[] };

export function externalSources(v: ExternalVerdict, ctx: Pick<FamilyContext, 'podCIDRs'>): ExternalSources | undefined {
  switch (v.kind) {
    case 'not-exposed':
    case 'reject':
      return undefined;
    case 'dnat':
      return v.policy === 'cluster' ? { kind: 'masquerade-all' } : { kind: 'keep-client-ip', podCIDRs: ctx.podCIDRs };
    case 'drop':
      return { kind: 'keep-client-ip', podCIDRs: ctx.podCIDRs };
    default:
      return assertNever(v);
  }
}

/** loadBalancerSourceRanges, for traffic to the LB IPs. */
export type FirewallVerdict =
  /** no LB IP or no source range in this family: nothing filtered */
  | { readonly kind: 'open' }
  /**
   * Sources outside the ranges are dropped. nodeInRanges: kube-proxy's node IP is inside them,
   * so the LB IPs are let in as sources too: a VIP-like load balancer often puts its IP on the
   * node, and the node's own request to it then loops back with the LB IP as its source.
   */
  | { readonly kind: 'source-ranges'; readonly ranges: readonly Cidr[]; readonly nodeInRanges: boolean };

export function firewallVerdict(svc: Pick<Service, 'loadBalancerSourceRanges'>, d: Pick<Destinations, 'loadBalancerIPs'>, ctx: Pick<FamilyContext, 'ipFamily' | 'primaryIP'>): FirewallVerdict {
  // NodePorts and externalIPs are not filtered: the ranges are the load balancer's (as upstream).
  const ranges = svc.loadBalancerSourceRanges.filter((c) => c.family === ctx.ipFamily);
  if (d.loadBalancerIPs.length === 0 || ranges.length === 0) return { kind: 'open' };
  // ctx.primaryIP is loopback for a family the Node lists no address of, as kube-proxy's node
  // IP: the node is then let in only by a range that holds loopback (e.g. ::/0).
  return { kind: 'source-ranges', ranges, nodeInRanges: ranges.some((c) => cidrContains(c, ctx.primaryIP)) };
}

// The operator's configuration, validated: what the compiler needs besides the objects.
import { type Cidr, type IP, type IPFamily, familyOf } from './ip.js';
import type { Service } from './types.js';
import { type Result, ok, err } from './result.js';

export type NodePortAddresses = { readonly kind: 'primary' } | { readonly kind: 'cidrs'; readonly cidrs: readonly Cidr[] };

/** The families compiled, one table each, IPv4 first: never none, never one twice. */
export type IPFamilies = readonly ['ipv4'] | readonly ['ipv6'] | readonly ['ipv4', 'ipv6'];

export const DUAL_STACK: IPFamilies = ['ipv4', 'ipv6'];

export interface ProxyConfig {
  readonly nodeName: string;
  /** every address of the node; the first of each family is its primary */
  readonly nodeIPs: readonly IP[];
  readonly nodeLabels: Readonly<Record<string, string>>;
  /** the local-traffic detector; empty means none, as kube-proxy without --cluster-cidr */
  readonly clusterCIDRs: readonly Cidr[];
  readonly serviceCIDRs: readonly Cidr[];
  readonly nodePortAddresses: NodePortAddresses;
  readonly masqueradeAll: boolean;
  /** value of service.kubernetes.io/service-proxy-name that we accept */
  readonly proxyName: string;
  /**
   * The families that get a table, whatever families nodeIPs has: kube-proxy runs both
   * wherever the host carries both, also when the Node object lists one family only
   * (see familyContext for what stands in for the missing node IP).
   */
  readonly ipFamilies: IPFamilies;
}

export const ZONE_LABEL = 'topology.kubernetes.io/zone';

/** A set of families in canonical form (IPv4 first); undefined for none. */
export function ipFamiliesOf(fams: Iterable<IPFamily>): IPFamilies | undefined {
  const s = new Set(fams);
  if (s.has('ipv4') && s.has('ipv6')) return DUAL_STACK;
  if (s.has('ipv4')) return ['ipv4'];
  if (s.has('ipv6')) return ['ipv6'];
  return undefined;
}

/** `--ip-families`: ipv4, ipv6 or dual. */
export function parseIPFamilies(text: string, what = '--ip-families'): Result<IPFamilies, string> {
  switch (text.trim().toLowerCase()) {
    case 'ipv4': return ok(['ipv4']);
    case 'ipv6': return ok(['ipv6']);
    case 'dual': return ok(DUAL_STACK);
    default: return err(`${what} ${JSON.stringify(text)} is not one of ipv4, ipv6, dual`);
  }
}

/**
 * The families an offline compile (dump, explain) uses when not told: those of the node's
 * addresses and of the services' ClusterIPs, IPv4 when there are neither. It depends on the
 * inputs only, never on the machine running the command, so the output is reproducible.
 */
export function ipFamiliesInUse(nodeIPs: readonly IP[], services: readonly Service[]): IPFamilies {
  const seen = new Set<IPFamily>(nodeIPs.map(familyOf));
  for (const s of services) for (const ip of s.clusterIPs) seen.add(familyOf(ip));
  return ipFamiliesOf(seen) ?? ['ipv4'];
}

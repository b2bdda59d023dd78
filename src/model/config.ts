// The operator's configuration, validated: what the compiler needs besides the objects.
import type { Cidr, IP } from './ip.js';

export type NodePortAddresses = { readonly kind: 'primary' } | { readonly kind: 'cidrs'; readonly cidrs: readonly Cidr[] };

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
}

export const ZONE_LABEL = 'topology.kubernetes.io/zone';

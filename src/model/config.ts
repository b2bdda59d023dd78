// The operator's configuration, validated: what the compiler needs besides the objects.
// cli/config.ts reads flags and the KubeProxyConfiguration file into a BaseConfig; what only
// the Node object knows is filled in here, on every sync (the Node can change).
import { type Cidr, type IP, familyOf } from './ip.js';
import type { Model } from './types.js';

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

/** What the config file says, before the Node object is known. */
export interface BaseConfig {
  readonly nodeName: string;
  readonly nodeIPs: readonly IP[];
  readonly clusterCIDRs: readonly Cidr[];
  readonly serviceCIDRs: readonly Cidr[];
  readonly nodePortAddresses: NodePortAddresses;
  readonly masqueradeAll: boolean;
}

/** Fill in what only the Node object knows: addresses (when no --node-ip) and labels. */
export function resolveConfig(base: BaseConfig, model: Model, proxyName = 'nftproxy'): { config: ProxyConfig; notes: string[] } {
  const node = model.nodes.get(base.nodeName);
  const notes: string[] = [];
  let nodeIPs = base.nodeIPs;
  if (nodeIPs.length === 0) {
    nodeIPs = node?.addresses ?? [];
    if (!node) notes.push(`node ${base.nodeName} is not among the inputs and no --node-ip was given: NodePorts have no address to listen on`);
  }
  // Primary first per family: keep the order given, grouped so each family's first wins.
  const ordered = [...nodeIPs.filter((ip) => familyOf(ip) === 'ipv4'), ...nodeIPs.filter((ip) => familyOf(ip) === 'ipv6')];
  return {
    config: { ...base, nodeIPs: ordered, nodeLabels: node?.labels ?? {}, proxyName },
    notes,
  };
}

// The operator's configuration, validated: what the compiler needs besides the objects.
// cli/config.ts reads flags and the KubeProxyConfiguration file into a BaseConfig; what only
// the Node object knows is filled in here, on every sync (the Node can change).
import { type Cidr, type IP, type IPFamily, familyOf } from './ip.js';
import type { Model, Service } from './types.js';
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

/** What the config file says, before the Node object is known. */
export interface BaseConfig {
  readonly nodeName: string;
  readonly nodeIPs: readonly IP[];
  readonly clusterCIDRs: readonly Cidr[];
  readonly serviceCIDRs: readonly Cidr[];
  readonly nodePortAddresses: NodePortAddresses;
  readonly masqueradeAll: boolean;
  /**
   * The families to compile. Unset: `run` fills in what the host carries (cli/host-families.ts)
   * before the first sync; dump and explain take the families of their inputs (resolveConfig).
   */
  readonly ipFamilies?: IPFamilies;
}

/** Fill in what only the Node object knows: addresses (when no --node-ip) and labels. */
export function resolveConfig(base: BaseConfig, model: Model, proxyName = 'nftproxy'): { config: ProxyConfig; notes: string[] } {
  const node = model.nodes.get(base.nodeName);
  const notes: string[] = [];
  let nodeIPs = base.nodeIPs;
  if (nodeIPs.length === 0) {
    nodeIPs = node?.addresses ?? [];
    if (!node) notes.push(`node ${base.nodeName} is not among the inputs and no --node-ip was given: it has no node IP of either family`);
  }
  // Primary first per family: keep the order given, grouped so each family's first wins.
  const ordered = [...nodeIPs.filter((ip) => familyOf(ip) === 'ipv4'), ...nodeIPs.filter((ip) => familyOf(ip) === 'ipv6')];
  const ipFamilies = base.ipFamilies ?? ipFamiliesInUse(ordered, model.services);
  for (const fam of ipFamilies) {
    if (ordered.some((ip) => familyOf(ip) === fam)) continue;
    // What kube-proxy does for a family the Node lists no address of (detectNodeIPs).
    notes.push(`node ${base.nodeName} has no ${fam} address: as in kube-proxy, ${fam === 'ipv4' ? '127.0.0.1' : '::1'} stands in for its ${fam} node IP${base.nodePortAddresses.kind === 'primary' ? ` and ${fam} NodePorts are accepted on every local ${fam} address` : ''}`);
  }
  return {
    config: { ...base, nodeIPs: ordered, nodeLabels: node?.labels ?? {}, proxyName, ipFamilies },
    notes,
  };
}

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

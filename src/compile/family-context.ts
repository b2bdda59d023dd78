// Per-family view of the configuration: which addresses are this node's, which accept
// NodePorts, which sources count as pods.
import { type Cidr, type IP, type IPFamily, cidrContains, constCidr, familyOf, isLoopback } from '../model/ip.js';
import { type ProxyConfig, ZONE_LABEL } from '../model/config.js';
import type { Family } from '../ir/types.js';

export type NodePortTargets = { readonly kind: 'match-all' } | { readonly kind: 'ips'; readonly ips: readonly IP[] };

export interface FamilyContext {
  readonly family: Family;
  readonly ipFamily: IPFamily;
  readonly nodeName: string;
  readonly zone: string | undefined;
  /** the node's addresses of this family; may be empty (the Node lists the other family only) */
  readonly nodeIPs: readonly IP[];
  /**
   * kube-proxy's "node IP" of this family: the first of nodeIPs, or the family's loopback
   * address when there is none (cmd/kube-proxy/app/server.go, detectNodeIPs).
   */
  readonly primaryIP: IP;
  /** pod CIDRs: empty means no local-traffic detector */
  readonly podCIDRs: readonly Cidr[];
  readonly serviceCIDRs: readonly Cidr[];
  readonly nodePorts: NodePortTargets;
  readonly masqueradeAll: boolean;
  readonly notes: readonly string[];
}

// kube-proxy's stand-in node IP for a family the node has no address of.
const LOOPBACK: Record<IPFamily, IP> = { ipv4: constCidr('127.0.0.1/32').addr, ipv6: constCidr('::1/128').addr };

export function familyContext(cfg: ProxyConfig, ipFamily: IPFamily): FamilyContext {
  const family: Family = ipFamily === 'ipv4' ? 'ip' : 'ip6';
  const nodeIPs = cfg.nodeIPs.filter((ip) => familyOf(ip) === ipFamily);
  const notes: string[] = [];
  // kube-proxy turns nodePortAddresses into CIDRs per family, and a family left without one
  // gets 0.0.0.0/0 or ::/0, i.e. every local address of that family
  // (pkg/proxy/util/nodeport_addresses.go, NewNodePortAddresses). With `primary` that is the
  // case of a family whose node IP is loopback: one the Node object lists no address of.
  let nodePorts: NodePortTargets;
  if (cfg.nodePortAddresses.kind === 'primary') {
    const p = nodeIPs.find((ip) => !isLoopback(ip));
    nodePorts = p ? { kind: 'ips', ips: [p] } : { kind: 'match-all' };
    if (!p) notes.push(`no ${ipFamily} node IP: ${ipFamily} NodePorts are accepted on every local ${ipFamily} address, as kube-proxy with nodePortAddresses "primary"`);
  } else {
    const cidrs = cfg.nodePortAddresses.cidrs.filter((c) => c.family === ipFamily);
    if (cidrs.length === 0 || cidrs.some((c) => c.prefix === 0)) {
      nodePorts = { kind: 'match-all' };
      if (cidrs.length === 0) notes.push(`nodePortAddresses has no ${ipFamily} CIDR: ${ipFamily} NodePorts are accepted on every local ${ipFamily} address, as kube-proxy`);
    } else {
      // NodePorts never listen on loopback (CVE-2020-8558): skipped, as kube-proxy does.
      const ips = nodeIPs.filter((ip) => cidrs.some((c) => cidrContains(c, ip)));
      for (const ip of ips) if (isLoopback(ip)) notes.push(`nodeport address ${ip} is loopback: skipped`);
      nodePorts = { kind: 'ips', ips: ips.filter((ip) => !isLoopback(ip)) };
    }
  }
  return {
    family, ipFamily, nodeName: cfg.nodeName, zone: cfg.nodeLabels[ZONE_LABEL],
    nodeIPs, primaryIP: nodeIPs[0] ?? LOOPBACK[ipFamily],
    podCIDRs: cfg.clusterCIDRs.filter((c) => c.family === ipFamily),
    serviceCIDRs: cfg.serviceCIDRs.filter((c) => c.family === ipFamily),
    nodePorts, masqueradeAll: cfg.masqueradeAll, notes,
  };
}

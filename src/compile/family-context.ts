// Per-family view of the configuration: which addresses are this node's, which accept
// NodePorts, which sources count as pods.
import { type Cidr, type IP, type IPFamily, cidrContains, familyOf, isLoopback } from '../model/ip.js';
import { type ProxyConfig, ZONE_LABEL } from '../model/config.js';
import type { Family } from '../ir/types.js';

export type NodePortTargets = { readonly kind: 'match-all' } | { readonly kind: 'ips'; readonly ips: readonly IP[] };

export interface FamilyContext {
  readonly family: Family;
  readonly ipFamily: IPFamily;
  readonly nodeName: string;
  readonly zone: string | undefined;
  readonly nodeIPs: readonly IP[];
  readonly primaryIP: IP | undefined;
  /** pod CIDRs: empty means no local-traffic detector */
  readonly podCIDRs: readonly Cidr[];
  readonly serviceCIDRs: readonly Cidr[];
  readonly nodePorts: NodePortTargets;
  readonly masqueradeAll: boolean;
  readonly notes: readonly string[];
}

export function familyContext(cfg: ProxyConfig, ipFamily: IPFamily): FamilyContext {
  const family: Family = ipFamily === 'ipv4' ? 'ip' : 'ip6';
  const nodeIPs = cfg.nodeIPs.filter((ip) => familyOf(ip) === ipFamily);
  const notes: string[] = [];
  let nodePorts: NodePortTargets;
  if (cfg.nodePortAddresses.kind === 'primary') {
    const p = nodeIPs.find((ip) => !isLoopback(ip));
    nodePorts = { kind: 'ips', ips: p ? [p] : [] };
  } else {
    const cidrs = cfg.nodePortAddresses.cidrs.filter((c) => c.family === ipFamily);
    if (cidrs.some((c) => c.prefix === 0)) nodePorts = { kind: 'match-all' };
    else {
      // NodePorts never listen on loopback (CVE-2020-8558): skipped, as kube-proxy does.
      const ips = nodeIPs.filter((ip) => cidrs.some((c) => cidrContains(c, ip)));
      for (const ip of ips) if (isLoopback(ip)) notes.push(`nodeport address ${ip} is loopback: skipped`);
      nodePorts = { kind: 'ips', ips: ips.filter((ip) => !isLoopback(ip)) };
    }
  }
  return {
    family, ipFamily, nodeName: cfg.nodeName, zone: cfg.nodeLabels[ZONE_LABEL],
    nodeIPs, primaryIP: nodeIPs[0],
    podCIDRs: cfg.clusterCIDRs.filter((c) => c.family === ipFamily),
    serviceCIDRs: cfg.serviceCIDRs.filter((c) => c.family === ipFamily),
    nodePorts, masqueradeAll: cfg.masqueradeAll, notes,
  };
}

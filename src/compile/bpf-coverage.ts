// Which ClusterIP connections the BPF socket load balancer takes (compile/ decides coverage;
// render/bpf-entries.ts turns the result into text and map diffs, apply/ writes the maps): one
// entry per ClusterIP:port:proto with the backend set the compiler chose for ClusterIP traffic
// (iTP Local, topology and terminating fallback already applied) and the session-affinity
// timeout. Pure.
//
// Only what the socket hooks can do with kube-proxy's exact outcome goes in; everything else
// stays with the nftables rules, which are always complete:
// - TCP and UDP ClusterIPs with at least one backend (no backend: nft rejects or drops);
// - not SCTP (no socket hook for it here), not NodePorts (any local address), not external
//   or LB IPs (nft masquerades pod traffic to them, a socket rewrite cannot);
// - nothing under --masquerade-all (every ClusterIP connection is masqueraded by nft);
// - not a service with more than LOCAL_PROBE_MAX backends on this node (see below).
// Backends on this node come first, and the entry says how many: bpf/sock_lb.c probes them
// at connect() and leaves a hairpin (the caller owns one of those addresses) to nft, which
// masquerades it; so does a socket bound to a source outside --cluster-cidr (the podcidrs
// map, bpfKeptSources). The datapath test checks both against nft packet for packet.
import type { ProxyConfig } from '../model/config.js';
import type { Cidr, IP } from '../model/ip.js';
// the map ABI's constants only (native/layout.ts is pure: no FFI)
import { LOCAL_PROBE_MAX } from '../../native/layout.js';
import type { Backend, Ruleset } from '../ir/types.js';

export interface BpfService {
  readonly addr: IP;
  readonly port: number;
  readonly proto: 'tcp' | 'udp';
  /** the backends on this node first */
  readonly backends: readonly Backend[];
  /** how many of `backends` (the first ones) are on this node */
  readonly localCount: number;
  /** ClientIP affinity timeout in seconds, if any */
  readonly affinitySeconds: number | undefined;
  /** "ns/name:port", for dump and logs */
  readonly label: string;
}

export const bpfKey = (s: Pick<BpfService, 'addr' | 'port' | 'proto'>): string => `${s.addr.includes(':') ? `[${s.addr}]` : s.addr}:${s.port}/${s.proto}`;

export function bpfServices(servicePorts: Ruleset['servicePorts'], cfg: Pick<ProxyConfig, 'masqueradeAll' | 'nodeIPs'>): BpfService[] {
  if (cfg.masqueradeAll) return [];
  const out: BpfService[] = [];
  const nodeIPs = new Set(cfg.nodeIPs);
  for (const p of servicePorts) {
    if (p.proto === 'sctp') continue;
    const all = p.internalLocal ? p.localBackends : p.clusterBackends;
    const clusterIP = p.vips[0];
    if (all.length === 0 || clusterIP === undefined) continue;
    // On this node: a pod here (kube-proxy's own test, the endpoint's nodeName) or a
    // host-network endpoint on one of the node's addresses.
    const onNode = new Set(p.nodeEndpoints);
    const here = (b: Backend): boolean => nodeIPs.has(b.addr) || onNode.has(b.addr);
    const local = all.filter(here);
    if (local.length > LOCAL_PROBE_MAX) continue;
    const backends = local.length === 0 ? all : [...local, ...all.filter((b) => !here(b))];
    out.push({ addr: clusterIP, port: p.port, proto: p.proto, backends, localCount: local.length, affinitySeconds: p.affinityTimeout, label: `${p.service}:${p.portName}` });
  }
  return out.sort((a, b) => (bpfKey(a) < bpfKey(b) ? -1 : bpfKey(a) > bpfKey(b) ? 1 : 0));
}

/**
 * What nftproxy_podcidrs holds: for each prefix, whether nft's ClusterIP masquerade leaves a
 * source in it alone (keep). A family without a --cluster-cidr is never masqueraded (no
 * local-traffic detector), so its whole space is kept; the longest prefix wins.
 */
export interface KeptSource {
  readonly addr: IP;
  /** over the 16-byte address: an IPv4 /n is ::ffff:a.b.c.d/(96+n) */
  readonly prefixlen: number;
  readonly keep: boolean;
}

export function bpfKeptSources(clusterCIDRs: readonly Cidr[]): KeptSource[] {
  const has = (f: Cidr['family']): boolean => clusterCIDRs.some((c) => c.family === f);
  return [
    { addr: '::' as IP, prefixlen: 0, keep: !has('ipv6') },
    { addr: '0.0.0.0' as IP, prefixlen: 96, keep: !has('ipv4') },
    ...clusterCIDRs.map((c) => ({ addr: c.addr, prefixlen: c.family === 'ipv6' ? c.prefix : 96 + c.prefix, keep: true })),
  ];
}


// IR -> what the BPF socket load balancer holds: one entry per ClusterIP:port:proto with the
// backend set the compiler chose for ClusterIP traffic (iTP Local, topology and terminating
// fallback already applied) and the session-affinity timeout. Pure.
//
// Only what the socket hooks can do with kube-proxy's exact outcome goes in; everything else
// stays with the nftables rules, which are always complete:
// - TCP and UDP ClusterIPs with at least one backend (no backend: nft rejects or drops);
// - not SCTP (no socket hook for it here), not NodePorts (any local address), not external
//   or LB IPs (nft masquerades pod traffic to them, a socket rewrite cannot);
// - nothing under --masquerade-all (every ClusterIP connection is masqueraded by nft).
// Known deviations (source address only, asserted in test/datapath/bpf.datapath.test.ts):
// a pod reaching its own service through the BPF path connects to itself directly and sees
// its own address, where nft's hairpin masquerade shows the node's; a host-network client
// that bound a node IP keeps it, where nft with --cluster-cidr masquerades it.
import type { ProxyConfig } from '../model/config.js';
import type { IP } from '../model/ip.js';
import type { Backend, Ruleset } from '../ir/types.js';
import { fmtBackend } from '../trace/trace.js';

export interface BpfService {
  readonly addr: IP;
  readonly port: number;
  readonly proto: 'tcp' | 'udp';
  readonly backends: readonly Backend[];
  /** ClientIP affinity timeout in seconds, if any */
  readonly affinitySeconds: number | undefined;
  /** "ns/name:port", for dump and logs */
  readonly label: string;
}

export const bpfKey = (s: Pick<BpfService, 'addr' | 'port' | 'proto'>): string => `${s.addr.includes(':') ? `[${s.addr}]` : s.addr}:${s.port}/${s.proto}`;

export function bpfServices(servicePorts: Ruleset['servicePorts'], cfg: Pick<ProxyConfig, 'masqueradeAll'>): BpfService[] {
  if (cfg.masqueradeAll) return [];
  const out: BpfService[] = [];
  for (const p of servicePorts) {
    if (p.proto === 'sctp') continue;
    const backends = p.internalLocal ? p.localBackends : p.clusterBackends;
    const clusterIP = p.vips[0];
    if (backends.length === 0 || clusterIP === undefined) continue;
    out.push({ addr: clusterIP, port: p.port, proto: p.proto, backends, affinitySeconds: p.affinityTimeout, label: `${p.service}:${p.portName}` });
  }
  return out.sort((a, b) => (bpfKey(a) < bpfKey(b) ? -1 : bpfKey(a) > bpfKey(b) ? 1 : 0));
}

/** What changed between two entry sets: services to (re)write, keys to remove. */
export function diffBpfServices(prev: readonly BpfService[], next: readonly BpfService[]): { upsert: BpfService[]; remove: BpfService[] } {
  const before = new Map(prev.map((s) => [bpfKey(s), s]));
  const after = new Map(next.map((s) => [bpfKey(s), s]));
  const same = (a: BpfService, b: BpfService): boolean =>
    a.affinitySeconds === b.affinitySeconds && a.backends.length === b.backends.length && a.backends.every((x, i) => x.addr === b.backends[i]!.addr && x.port === b.backends[i]!.port);
  return {
    upsert: next.filter((s) => { const o = before.get(bpfKey(s)); return !o || !same(o, s); }),
    remove: prev.filter((s) => !after.has(bpfKey(s))),
  };
}

/** `nftproxy dump --format bpf`: one line per service entry. */
export function renderBpfText(services: readonly BpfService[]): string {
  const lines = [
    '# nftproxy BPF socket load balancer: the entries --bpf would load (map nftproxy_svcs -> nftproxy_backends).',
    '# Destinations not listed here are left to the nftables rules.',
  ];
  for (const s of services) {
    lines.push(`${bpfKey(s)}  count ${s.backends.length}${s.affinitySeconds !== undefined ? `  affinity ${s.affinitySeconds}s` : ''}  -> ${s.backends.map(fmtBackend).join(' ')}  # ${s.label}`);
  }
  return lines.join('\n') + '\n';
}

/**
 * UDP backends that left a service: connected UDP sockets still pinned to them (the socket
 * load balancer chose the backend once, at connect()) must be destroyed so their owners
 * reconnect and are balanced again. A backend still serving the same service is not dead.
 */
export function deadUdpBackends(prev: readonly BpfService[], next: readonly BpfService[]): Backend[] {
  const now = new Map(next.map((s) => [bpfKey(s), new Set(s.backends.map(fmtBackend))]));
  const dead = new Map<string, Backend>();
  for (const s of prev) {
    if (s.proto !== 'udp') continue;
    const keep = now.get(bpfKey(s));
    for (const b of s.backends) if (!keep?.has(fmtBackend(b))) dead.set(fmtBackend(b), b);
  }
  // a backend that another UDP service still uses at the same address:port stays
  for (const s of next) if (s.proto === 'udp') for (const b of s.backends) dead.delete(fmtBackend(b));
  return [...dead.values()];
}

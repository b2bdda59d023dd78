// The BPF socket load balancer's entries (compile/bpf-coverage.ts decides which) as people
// read them (`nftproxy dump --format bpf`) and as changes to its maps: what to write, what to
// remove, which connected UDP sockets to destroy. Pure.
import { type Backend, fmtBackend } from '../ir/types.js';
import { type BpfService, type KeptSource, bpfKey } from '../compile/bpf-coverage.js';

/** What changed between two entry sets: services to (re)write, keys to remove. */
export function diffBpfServices(prev: readonly BpfService[], next: readonly BpfService[]): { upsert: BpfService[]; remove: BpfService[] } {
  const before = new Map(prev.map((s) => [bpfKey(s), s]));
  const after = new Map(next.map((s) => [bpfKey(s), s]));
  const same = (a: BpfService, b: BpfService): boolean =>
    a.affinitySeconds === b.affinitySeconds && a.localCount === b.localCount && a.backends.length === b.backends.length && a.backends.every((x, i) => x.addr === b.backends[i]!.addr && x.port === b.backends[i]!.port);
  return {
    upsert: next.filter((s) => { const o = before.get(bpfKey(s)); return !o || !same(o, s); }),
    remove: prev.filter((s) => !after.has(bpfKey(s))),
  };
}

/** A kept-source prefix as an operator writes it: IPv4 ones as IPv4 CIDRs. */
export const fmtKeptSource = (k: KeptSource): string => (k.addr.includes(':') ? `${k.addr}/${k.prefixlen}` : `${k.addr}/${k.prefixlen - 96}`);

/** `nftproxy dump --format bpf`: one line per service entry, then the source prefixes. */
export function renderBpfText(services: readonly BpfService[], kept: readonly KeptSource[] = []): string {
  const lines = [
    '# nftproxy BPF socket load balancer: the entries --bpf would load (map nftproxy_svcs -> nftproxy_backends).',
    '# Destinations not listed here are left to the nftables rules. "local N": the first N backends are on',
    '# this node; a caller that owns one of their addresses (a hairpin) is left to nft, which masquerades it.',
  ];
  for (const s of services) {
    lines.push(`${bpfKey(s)}  count ${s.backends.length}${s.localCount > 0 ? `  local ${s.localCount}` : ''}${s.affinitySeconds !== undefined ? `  affinity ${s.affinitySeconds}s` : ''}  -> ${s.backends.map(fmtBackend).join(' ')}  # ${s.label}`);
  }
  if (kept.length) {
    lines.push('# Sockets bound to a source address (map nftproxy_podcidrs, longest prefix wins): "kept" ones are', '# balanced here, "masquerade" ones are left to nft, whose ClusterIP masquerade rewrites them.');
    for (const k of kept) lines.push(`source ${fmtKeptSource(k)}  ${k.keep ? 'kept' : 'masquerade'}`);
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

// The lab's network: one "node" namespace that holds nftproxy's table and routes between
// everything else, each other namespace hanging off it by one veth.
//
//                      +-- v0 -- upstream   (the node's default route: "the rest of the world")
//   node (node IPs  ---+-- v1 -- client     (pod and external client addresses)
//   on lo, forwards)   +-- v2 -- self       (clients sending to their own address, if any)
//                      +-- vN -- one namespace per endpoint (pod) address
//
// Why each piece is there:
// - Node IPs sit on the node's `lo` (no dummy driver on this kernel); /32 (/128) routes lead
//   to each pod and client, so every address plan works without subnets.
// - The node side of every veth carries GATEWAY (100.64.0.1, fd64::1). Masquerade picks the
//   address of the egress interface, so a masqueraded flow shows up at the endpoint as
//   GATEWAY: distinguishable even when the client is the node itself (it binds a node IP).
// - The upstream namespace is a router that refuses every destination with an ICMP error
//   (UPSTREAM_RULES). A real node has a default route, and kube-proxy's
//   forward-hook checks (reject a ClusterIP's unknown port, drop an unallocated ClusterIP)
//   only ever see a packet that routing sent somewhere. Unproxied traffic thus fails with
//   "unreachable": a third outcome, never mistaken for DROP (timeout) or REJECT (refused).
import { Netns } from './netns.js';

export const GATEWAY = { v4: '100.64.0.1', v6: 'fd64::1' } as const;
// Link-local next hops: the node side answers fe80::1, the upstream fe80::2.
const LL = { node: 'fe80::1', upstream: 'fe80::2' } as const;
// The upstream's own addresses: its ICMP errors need a routable source (an ICMPv6 error from a
// link-local source would never be forwarded back to the client).
const UPSTREAM = { v4: '100.64.0.2', v6: 'fd64::2' } as const;

// An ICMP error for all TCP/UDP reaching the upstream. An nft reject, not an `unreachable`
// route: ICMP errors for unroutable packets are rate limited per peer by
// net.ipv4.route.error_cost (5 per burst), a sysctl a namespace cannot change, while a reject
// follows icmp_ratelimit, which it can. admin-prohibited, because it is a "hard" error for
// UDP too (host-unreachable is ignored by a connected UDP socket): the client sees
// EHOSTUNREACH (IPv4) or EACCES (IPv6) at once.
export const UPSTREAM_RULES = [
  'add table inet nftproxy-lab-upstream',
  'table inet nftproxy-lab-upstream {',
  '\tchain prerouting {',
  '\t\ttype filter hook prerouting priority 0; policy accept;',
  '\t\tmeta l4proto { tcp, udp } reject with icmpx admin-prohibited',
  '\t}',
  '}',
  '',
].join('\n');

export const isV6 = (addr: string): boolean => addr.includes(':');
const host = (addr: string): string => `${addr}/${isV6(addr) ? 128 : 32}`;
// Without nodad a fresh IPv6 address is "tentative" for a second and cannot be used.
const addAddr = (addr: string, dev: string): string => `address add ${host(addr)} dev ${dev}${isV6(addr) ? ' nodad' : ''}`;

export interface TopologySpec {
  /** Local addresses of the node (the environment's nodeIPs). */
  readonly nodeIPs: readonly string[];
  /** One namespace per endpoint address. */
  readonly pods: readonly string[];
  /** Addresses of the ordinary client namespace (pod clients and external clients). */
  readonly clients: readonly string[];
  /** Client addresses that send to themselves (a LoadBalancer IP used as source); may be empty. */
  readonly selfAddressed: readonly string[];
}

export type Role = 'node' | 'upstream' | 'client' | 'self' | 'pod';

export interface Attachment { readonly role: Exclude<Role, 'node'>; readonly addrs: readonly string[]; readonly ns: Netns }

// Every namespace: no DAD (see addAddr), no reverse-path filter (the lab routes asymmetrically
// by design: self-addressed clients, masquerade to GATEWAY), no redirects (the node sends a
// hairpinned packet back out of the veth it came in on; a redirect would be noise).
const COMMON_SYSCTL = {
  'net.ipv6.conf.all.accept_dad': 0, 'net.ipv6.conf.default.accept_dad': 0,
  'net.ipv4.conf.all.rp_filter': 0, 'net.ipv4.conf.default.rp_filter': 0,
  'net.ipv4.conf.all.accept_redirects': 0, 'net.ipv4.conf.default.accept_redirects': 0,
  'net.ipv6.conf.all.accept_redirects': 0, 'net.ipv6.conf.default.accept_redirects': 0,
  'net.ipv4.conf.all.send_redirects': 0, 'net.ipv4.conf.default.send_redirects': 0,
};

// ICMP errors are rate limited per namespace: with parallel tries, rejects and unreachables
// beyond the limit would vanish and look like drops. Everywhere, not only on the node: a pod
// answering a UDP port nobody listens on must not be throttled either.
const NO_ICMP_LIMIT = {
  'net.ipv4.icmp_ratelimit': 0, 'net.ipv6.icmp.ratelimit': 0,
  'net.ipv4.icmp_msgs_per_sec': 1000000, 'net.ipv4.icmp_msgs_burst': 1000000,
};
const ROUTER = { 'net.ipv4.ip_forward': 1, 'net.ipv6.conf.all.forwarding': 1 };

export function sysctlsFor(role: Role): Record<string, number> {
  switch (role) {
    case 'node': case 'upstream': return { ...COMMON_SYSCTL, ...NO_ICMP_LIMIT, ...ROUTER };
    // accept_local: the answer to a self-addressed client carries its own address as source.
    // ip_nonlocal_bind: its addresses are taken out of the local table (see selfLines).
    case 'self': return { ...COMMON_SYSCTL, ...NO_ICMP_LIMIT, 'net.ipv4.conf.all.accept_local': 1, 'net.ipv4.ip_nonlocal_bind': 1 };
    case 'client': case 'pod': return { ...COMMON_SYSCTL, ...NO_ICMP_LIMIT };
  }
}

/** `ip` lines for the node: its addresses, one veth per attachment, routes to what is behind each. */
export function nodeLines(nodeIPs: readonly string[], atts: readonly Attachment[]): string[] {
  const lines = ['link set lo up', ...nodeIPs.map((a) => addAddr(a, 'lo'))];
  atts.forEach((att, i) => {
    const dev = `v${i}`; // veth names are limited to 15 characters: index, never a namespace name
    lines.push(
      `link add ${dev} type veth peer name eth0 netns ${att.ns.name}`,
      addAddr(GATEWAY.v4, dev), addAddr(GATEWAY.v6, dev), `address add ${LL.node}/64 dev ${dev} nodad`,
      `link set ${dev} up`,
    );
    if (att.role === 'upstream') {
      lines.push(`route add default via ${UPSTREAM.v4} dev ${dev} onlink`, `route add ::/0 via ${LL.upstream} dev ${dev}`);
    } else {
      for (const a of att.addrs) lines.push(`route add ${host(a)} dev ${dev}`);
    }
  });
  return lines;
}

/** `ip` lines inside an attached namespace (its end of the veth is eth0). */
export function attachmentLines(att: Attachment, all: readonly Attachment[], nodeIPs: readonly string[]): string[] {
  const toNode = [`route add default via ${GATEWAY.v4} dev eth0 onlink`, `route add ::/0 via ${LL.node} dev eth0`];
  switch (att.role) {
    case 'upstream': {
      // A router with no way on; routes only to the lab's own addresses, to send its ICMP
      // errors back.
      const back = [...nodeIPs, ...all.filter((a) => a.role !== 'upstream').flatMap((a) => a.addrs)];
      return [
        'link set lo up', 'link set eth0 up',
        addAddr(UPSTREAM.v4, 'eth0'), addAddr(UPSTREAM.v6, 'eth0'), `address add ${LL.upstream}/64 dev eth0 nodad`,
        // for what UPSTREAM_RULES does not reject (ICMP)
        'route add unreachable default', 'route add unreachable ::/0',
        ...back.map((a) => `route add ${host(a)} via ${isV6(a) ? LL.node : GATEWAY.v4} dev eth0${isV6(a) ? '' : ' onlink'}`),
      ];
    }
    case 'self': return selfLines(att.addrs, toNode);
    case 'client': case 'pod':
      return ['link set lo up', 'link set eth0 up', ...att.addrs.map((a) => addAddr(a, 'eth0')), ...toNode];
  }
}

// A client that connects to its own address through the node (src 1.2.3.4 -> dst 1.2.3.4,
// reference rows 28/29). The address stays on lo (the kernel accepts it as a source) but its
// route leaves the local table, so outgoing packets to it follow the default route to the
// node; a rule for packets coming in on eth0 puts it back as local, so the answer is
// delivered. accept_local (sysctlsFor) lets that answer carry the same address as source.
// IPv4 only: no scenario needs it for IPv6, which would need an `ip -6 rule` and its own
// (untested) local-source check.
const SELF_TABLE = 100;
function selfLines(addrs: readonly string[], toNode: string[]): string[] {
  const v6 = addrs.find(isV6);
  if (v6) throw new Error(`self-addressed client ${v6}: only IPv4 is supported`);
  return [
    'link set lo up', 'link set eth0 up',
    ...addrs.flatMap((a) => [
      addAddr(a, 'lo'),
      `route del local ${a} dev lo table local`,
      `route add local ${a} dev lo table ${SELF_TABLE}`,
    ]),
    `rule add iif eth0 lookup ${SELF_TABLE} pref 10`,
    ...toNode,
  ];
}

export interface Topology { readonly node: Netns; readonly attachments: readonly Attachment[] }

/**
 * Creates and wires the namespaces of `spec`. Every namespace is pushed to `created` as soon
 * as it exists, so the caller can remove them all even when building fails halfway.
 */
export async function buildTopology(tag: string, spec: TopologySpec, created: Netns[]): Promise<Topology> {
  const make = async (t: string): Promise<Netns> => { const ns = await Netns.create(`${tag}${t}`); created.push(ns); return ns; };
  const node = await make('n');
  const attachments: Attachment[] = [];
  const attach = async (role: Attachment['role'], t: string, addrs: readonly string[]): Promise<void> => {
    attachments.push({ role, addrs, ns: await make(t) });
  };
  // Order fixes the veth index: v0 upstream, v1 client, then self (if any) and the pods.
  await attach('upstream', 'u', []);
  await attach('client', 'c', spec.clients);
  if (spec.selfAddressed.length) await attach('self', 's', spec.selfAddressed);
  for (const addr of spec.pods) await attach('pod', 'p', [addr]);

  // sysctls first: interfaces created afterwards take the namespace defaults (no DAD).
  await Promise.all([node.sysctl(sysctlsFor('node')), ...attachments.map((a) => a.ns.sysctl(sysctlsFor(a.role)))]);
  await node.ip(nodeLines(spec.nodeIPs, attachments));
  await Promise.all(attachments.map((a) => a.ns.ip(attachmentLines(a, attachments, spec.nodeIPs))));
  await attachments.find((a) => a.role === 'upstream')!.ns.exec(['nft', '-f', '-'], UPSTREAM_RULES);
  return { node, attachments };
}

// The fixed skeleton of every nftproxy table: hooks, dispatch maps and check chains.
// Hook layout and priorities follow kube-proxy nftables mode (1.34+), so that other
// components that order themselves against kube-proxy keep working.
import type { Chain, NamedSet, Rule } from '../ir/types.js';
import type { FamilyContext } from './family-context.js';
import { constCidr } from '../model/ip.js';
import { AFFINITY_DEFAULT_TIMEOUT, AFFINITY_SET_SIZE } from './affinity.js';

export const SET = {
  clusterIPs: 'cluster-ips',
  nodePortIPs: 'nodeport-ips',
  serviceIPs: 'service-ips',
  serviceNodePorts: 'service-nodeports',
  noEndpointServices: 'no-endpoint-services',
  noEndpointNodePorts: 'no-endpoint-nodeports',
  firewallIPs: 'firewall-ips',
  hairpin: 'hairpin-endpoints',
  affinity: 'affinity',
} as const;

export const CHAIN = {
  services: 'services',
  masquerading: 'masquerading',
  firewallCheck: 'firewall-check',
  serviceEndpointsCheck: 'service-endpoints-check',
  nodePortEndpointsCheck: 'nodeport-endpoints-check',
  clusterIPsCheck: 'cluster-ips-check',
  reject: 'reject-chain',
} as const;

const newJump = (chain: string): Rule => ({ matches: [{ kind: 'ct-state-new' }], stmts: [{ kind: 'verdict', verdict: { kind: 'jump', chain } }] });
const jump = (chain: string): Rule => ({ matches: [], stmts: [{ kind: 'verdict', verdict: { kind: 'jump', chain } }] });

export function baseChains(ctx: FamilyContext): Chain[] {
  const matchAll = ctx.nodePorts.kind === 'match-all';
  const loopback = [constCidr(ctx.family === 'ip' ? '127.0.0.0/8' : '::1/128')];
  // ClusterIP masquerade for every service at once, before the dispatch (as upstream 1.36+):
  // service chains are then bare DNATs that the renderer can route straight to the shared
  // endpoint-count chains. Traffic to a ClusterIP port that is no service's is rejected in the
  // filter chains anyway, so marking it changes nothing.
  const clusterMasq: Rule[] = ctx.masqueradeAll
    ? [{ matches: [{ kind: 'addr-in-set', field: 'daddr', set: SET.clusterIPs }], stmts: [{ kind: 'mark-masq' }], comment: 'masquerade-all' }]
    : ctx.podCIDRs.length > 0
      ? [{ matches: [{ kind: 'addr-in-set', field: 'daddr', set: SET.clusterIPs }, { kind: 'addr', field: 'saddr', op: '!=', values: ctx.podCIDRs }], stmts: [{ kind: 'mark-masq' }], comment: 'masquerade ClusterIP traffic from outside the cluster' }]
      : [];
  const services: Rule[] = [
    ...clusterMasq,
    { matches: [], stmts: [{ kind: 'vmap', key: 'daddr.l4proto.dport', map: SET.serviceIPs }] },
    matchAll
      ? { matches: [{ kind: 'fib-local', field: 'daddr' }, { kind: 'addr', field: 'daddr', op: '!=', values: loopback }], stmts: [{ kind: 'vmap', key: 'l4proto.dport', map: SET.serviceNodePorts }] }
      : { matches: [{ kind: 'addr-in-set', field: 'daddr', set: SET.nodePortIPs }], stmts: [{ kind: 'vmap', key: 'l4proto.dport', map: SET.serviceNodePorts }] },
  ];
  const clusterIPsCheck: Rule[] = [
    { matches: [{ kind: 'addr-in-set', field: 'daddr', set: SET.clusterIPs }], stmts: [{ kind: 'reject' }], comment: 'Reject traffic to invalid ports of ClusterIPs' },
  ];
  if (ctx.serviceCIDRs.length > 0) {
    clusterIPsCheck.push({ matches: [{ kind: 'addr', field: 'daddr', op: '==', values: ctx.serviceCIDRs }], stmts: [{ kind: 'verdict', verdict: { kind: 'drop' } }], comment: 'Drop traffic to unallocated ClusterIPs' });
  }
  return [
    { name: 'filter-prerouting-pre-dnat', base: { type: 'filter', hook: 'prerouting', priority: -110 }, rules: [newJump(CHAIN.firewallCheck)] },
    { name: 'filter-output-pre-dnat', base: { type: 'filter', hook: 'output', priority: -110 }, rules: [newJump(CHAIN.firewallCheck)] },
    { name: 'filter-input', base: { type: 'filter', hook: 'input', priority: 0 }, rules: [newJump(CHAIN.nodePortEndpointsCheck), newJump(CHAIN.serviceEndpointsCheck)] },
    { name: 'filter-forward', base: { type: 'filter', hook: 'forward', priority: 0 }, rules: [newJump(CHAIN.serviceEndpointsCheck), newJump(CHAIN.clusterIPsCheck)] },
    { name: 'filter-output', base: { type: 'filter', hook: 'output', priority: 0 }, rules: [newJump(CHAIN.serviceEndpointsCheck), newJump(CHAIN.clusterIPsCheck)] },
    { name: 'nat-prerouting', base: { type: 'nat', hook: 'prerouting', priority: -100 }, rules: [jump(CHAIN.services)] },
    { name: 'nat-output', base: { type: 'nat', hook: 'output', priority: -100 }, rules: [jump(CHAIN.services)] },
    { name: 'nat-postrouting', base: { type: 'nat', hook: 'postrouting', priority: 100 }, rules: [jump(CHAIN.masquerading)] },
    { name: CHAIN.services, rules: services },
    {
      name: CHAIN.masquerading,
      rules: [
        // The mark is cleared before masquerading: the kernel may reuse the skb (VXLAN).
        { matches: [{ kind: 'masq-mark', set: true }], stmts: [{ kind: 'masquerade', clearMark: true }] },
        { matches: [{ kind: 'hairpin', set: SET.hairpin }], stmts: [{ kind: 'masquerade', clearMark: false }], comment: 'hairpin: an endpoint reached itself through a service' },
      ],
    },
    { name: CHAIN.firewallCheck, rules: [{ matches: [], stmts: [{ kind: 'vmap', key: 'daddr.l4proto.dport', map: SET.firewallIPs }] }] },
    { name: CHAIN.serviceEndpointsCheck, rules: [{ matches: [], stmts: [{ kind: 'vmap', key: 'daddr.l4proto.dport', map: SET.noEndpointServices }] }] },
    {
      name: CHAIN.nodePortEndpointsCheck,
      rules: [matchAll
        ? { matches: [{ kind: 'addr', field: 'daddr', op: '!=', values: loopback }], stmts: [{ kind: 'vmap', key: 'l4proto.dport', map: SET.noEndpointNodePorts }] }
        : { matches: [{ kind: 'addr-in-set', field: 'daddr', set: SET.nodePortIPs }], stmts: [{ kind: 'vmap', key: 'l4proto.dport', map: SET.noEndpointNodePorts }] }],
    },
    { name: CHAIN.clusterIPsCheck, rules: clusterIPsCheck },
    // reject cannot be a map value, hence a helper chain.
    { name: CHAIN.reject, rules: [{ matches: [], stmts: [{ kind: 'reject' }] }] },
  ];
}

export function emptySets(ctx: FamilyContext): Map<string, Omit<NamedSet, 'elements'>> {
  const sets: Omit<NamedSet, 'elements'>[] = [
    { name: SET.clusterIPs, key: 'addr', isMap: false, comment: 'Active ClusterIPs' },
    { name: SET.serviceIPs, key: 'addr.l4proto.dport', isMap: true, comment: 'ClusterIP, ExternalIP and LoadBalancer IP traffic' },
    { name: SET.serviceNodePorts, key: 'l4proto.dport', isMap: true, comment: 'NodePort traffic' },
    { name: SET.noEndpointServices, key: 'addr.l4proto.dport', isMap: true, comment: 'vmap to drop or reject packets to services with no endpoints' },
    { name: SET.noEndpointNodePorts, key: 'l4proto.dport', isMap: true, comment: 'vmap to drop or reject packets to service nodeports with no endpoints' },
    { name: SET.firewallIPs, key: 'addr.l4proto.dport', isMap: true, comment: 'destinations that are subject to LoadBalancerSourceRanges' },
    { name: SET.hairpin, key: 'addr.addr', isMap: false, comment: 'endpoint . endpoint pairs, for hairpin masquerade' },
    { name: SET.affinity, key: 'saddr.affinity', isMap: false, timeoutSeconds: AFFINITY_DEFAULT_TIMEOUT, size: AFFINITY_SET_SIZE, comment: 'session affinity: client . endpoint key, filled by the rules' },
  ];
  if (ctx.nodePorts.kind === 'ips') sets.push({ name: SET.nodePortIPs, key: 'addr', isMap: false, comment: 'IPs that accept NodePort traffic' });
  return new Map(sets.map((s) => [s.name, s]));
}

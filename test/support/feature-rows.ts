// Features beyond ../shared/reference-scenarios.md as data: each section's objects,
// configuration and rows, written by hand from kube-proxy's nftables mode (v1.34+), never
// computed from the tracer. The same rows drive real packets through nft alone
// (test/datapath/features.datapath.test.ts) and through the BPF socket load balancer
// (test/datapath/bpf.datapath.test.ts, the rows whose source is on the node).
//
// Where a cell is not obvious, the comment next to it says what it rests on; [P] is
// kubernetes/kubernetes pkg/proxy/nftables/proxier.go @b0f823e6 (syncProxyRules: "Set up
// internal traffic handling", "Set up external traffic handling", the endpoint chains) and [T]
// is pkg/proxy/topology.go @008b3652 (CategorizeEndpoints, topologyModeFromHints).
import { fmtBackend } from '../../src/ir/types.js';
import { EXT, EXT6, LAB_ENV, NODE, NODE6, POD, POD6 } from './address-plan.js';
import { type Env, type Expect, service, slice } from './builders.js';

// ---- the environment --------------------------------------------------------------------------

/** The lab plan; 192.168.99.x are externalIPs routed to this node (like the reference's .99.11). */
export const FEATURES_ENV: Env = { ...LAB_ENV, nodeIPs: [NODE, '192.168.99.11', '192.168.99.12', '192.168.99.13', NODE6] };
const ZONE_A = { 'topology.kubernetes.io/zone': 'zone-a' };

/** masquerade: yes, no */
export const Y = true, N = false;
export const ep = (addr: string, port: number): string => fmtBackend({ addr, port });
export const e80 = (...ips: string[]): string[] => ips.map((ip) => ep(ip, 80));

// ---- the tables' shape --------------------------------------------------------------------------

export interface Row { id: string; what?: string; src: string; dst: string; proto?: 'tcp' | 'udp'; want: Expect; masq?: boolean }
export interface Case { name: string; objects: unknown[]; env: Env; rows: Row[] }
export interface Section { id: string; title: string; cases: Case[] }

// ================================================================================================
// 1. Named target ports, resolved per slice. The EndpointSlice controller resolves targetPort
//    "http" pod by pod and groups pods that agree into one slice, which names the port by the
//    *service* port's name ("web") with the number it resolved to: kube-proxy (and nftproxy)
//    take the number from each slice. A slice without the port name serves another port.
// ================================================================================================
const P1 = '10.180.1.1', P2 = '10.180.1.2', P3 = '10.180.1.3', P4 = '10.180.1.4';
export const named: Case = {
  name: 'targetPort "http" is 8080 on P1, P2 and 8081 on P3',
  env: FEATURES_ENV,
  objects: [
    service('ns1', 'web', {
      type: 'NodePort', clusterIP: '172.30.1.1',
      ports: [
        { name: 'web', port: 80, targetPort: 'http', protocol: 'TCP', nodePort: 3001 },
        { name: 'dns', port: 53, targetPort: 'dns', protocol: 'UDP', nodePort: 3053 },
      ],
    }),
    slice('ns1', 'web', 'web-8080', [{ name: 'web', port: 8080 }, { name: 'dns', port: 5353, protocol: 'UDP' }], [{ ip: P1, node: 'test-node' }, { ip: P2, node: 'node2' }]),
    slice('ns1', 'web', 'web-8081', [{ name: 'web', port: 8081 }, { name: 'dns', port: 5354, protocol: 'UDP' }], [{ ip: P3, node: 'node3' }]),
    // a slice of the same service that carries neither port: P4 serves neither
    slice('ns1', 'web', 'web-metrics', [{ name: 'metrics', port: 9090 }], [{ ip: P4, node: 'test-node' }]),
  ],
  rows: [
    { id: '1.1', src: POD, dst: '172.30.1.1:80', want: [ep(P1, 8080), ep(P2, 8080), ep(P3, 8081)], masq: N },
    { id: '1.2', src: EXT, dst: `${NODE}:3001`, want: [ep(P1, 8080), ep(P2, 8080), ep(P3, 8081)], masq: Y },
    { id: '1.3', src: POD, dst: '172.30.1.1:53', proto: 'udp', want: [ep(P1, 5353), ep(P2, 5353), ep(P3, 5354)], masq: N },
    { id: '1.4', src: EXT, dst: `${NODE}:3053`, proto: 'udp', want: [ep(P1, 5353), ep(P2, 5353), ep(P3, 5354)], masq: Y },
  ],
};

// ================================================================================================
// 2. Multi-port services: each service port lands on its own target port; a port (or protocol)
//    the ClusterIP does not serve is rejected; a NodePort is proxied for its own protocol only.
// ================================================================================================
const M1 = '10.180.2.1', M2 = '10.180.2.2';
export const multi: Case = {
  name: '80->8080/TCP, 443->8443/TCP, 53->5353/UDP on one ClusterIP',
  env: FEATURES_ENV,
  objects: [
    service('ns2', 'multi', {
      type: 'NodePort', clusterIP: '172.30.2.1',
      ports: [
        { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: 3080 },
        { name: 'https', port: 443, targetPort: 8443, protocol: 'TCP', nodePort: 3443 },
        { name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP', nodePort: 3053 },
      ],
    }),
    slice('ns2', 'multi', 'multi-a', [{ name: 'http', port: 8080 }, { name: 'https', port: 8443 }, { name: 'dns', port: 5353, protocol: 'UDP' }],
      [{ ip: M1, node: 'test-node' }, { ip: M2, node: 'node2' }]),
  ],
  rows: [
    { id: '2.1', src: POD, dst: '172.30.2.1:80', want: [ep(M1, 8080), ep(M2, 8080)], masq: N },
    { id: '2.2', src: POD, dst: '172.30.2.1:443', want: [ep(M1, 8443), ep(M2, 8443)], masq: N },
    { id: '2.3', src: POD, dst: '172.30.2.1:53', proto: 'udp', want: [ep(M1, 5353), ep(M2, 5353)], masq: N },
    { id: '2.4', what: '53 is UDP only', src: POD, dst: '172.30.2.1:53', want: 'REJECT' },
    { id: '2.5', what: '80 is TCP only', src: POD, dst: '172.30.2.1:80', proto: 'udp', want: 'REJECT' },
    { id: '2.6', what: 'a target port is not a service port', src: POD, dst: '172.30.2.1:8080', want: 'REJECT' },
    { id: '2.7', src: EXT, dst: `${NODE}:3080`, want: [ep(M1, 8080), ep(M2, 8080)], masq: Y },
    { id: '2.8', src: EXT, dst: `${NODE}:3443`, want: [ep(M1, 8443), ep(M2, 8443)], masq: Y },
    { id: '2.9', src: EXT, dst: `${NODE}:3053`, proto: 'udp', want: [ep(M1, 5353), ep(M2, 5353)], masq: Y },
    // Not proxied: the node's own listener answers.
    { id: '2.10', what: 'NodePort 3053 is UDP only', src: EXT, dst: `${NODE}:3053`, want: '' },
    { id: '2.11', what: 'no service owns NodePort 3999', src: EXT, dst: `${NODE}:3999`, want: '' },
  ],
};

// ================================================================================================
// 4. Hairpin: an endpoint reaching its own service lands on itself with its source masqueraded
//    (otherwise its answer to itself would never go back through the node). The ClusterIP case
//    is reference row 8; here NodePort (eTP Cluster and eTP Local, where only the hairpin rule
//    masquerades: [P] endpoint chain "ip saddr <ep> jump mark-for-masquerade") and IPv6.
// ================================================================================================
const H4 = '10.180.4.1', H6 = 'fd00:10::4:1';
const hairpinService = (name: string, v4: string, v6: string, nodePort: number, etp: 'Cluster' | 'Local') => [
  service('ns4', name, { type: 'NodePort', clusterIPs: [v4, v6], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack', externalTrafficPolicy: etp, ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort }] }),
  slice('ns4', name, `${name}-v4`, [{ name: 'p80', port: 80 }], [{ ip: H4, node: 'test-node' }]),
  slice('ns4', name, `${name}-v6`, [{ name: 'p80', port: 80 }], [{ ip: H6, node: 'test-node' }], 'IPv6'),
];
export const hairpin: Case = {
  name: 'one local endpoint per family, eTP Cluster (NodePort 3001) and eTP Local (NodePort 3002)',
  env: FEATURES_ENV,
  objects: [...hairpinService('hp-cluster', '172.30.4.1', 'fd00:10:96::41', 3001, 'Cluster'), ...hairpinService('hp-local', '172.30.4.2', 'fd00:10:96::42', 3002, 'Local')],
  rows: [
    { id: '4.1', what: 'reference row 8', src: H4, dst: '172.30.4.1:80', want: [ep(H4, 80)], masq: Y },
    { id: '4.2', src: H4, dst: `${NODE}:3001`, want: [ep(H4, 80)], masq: Y },
    { id: '4.3', what: 'eTP Local: pod short-circuit, hairpin masquerade', src: H4, dst: `${NODE}:3002`, want: [ep(H4, 80)], masq: Y },
    { id: '4.4', src: H6, dst: '[fd00:10:96::41]:80', want: [ep(H6, 80)], masq: Y },
    { id: '4.5', src: H6, dst: `[${NODE6}]:3001`, want: [ep(H6, 80)], masq: Y },
    { id: '4.6', src: H6, dst: `[${NODE6}]:3002`, want: [ep(H6, 80)], masq: Y },
    { id: '4.7', what: 'control: another pod', src: POD, dst: '172.30.4.1:80', want: [ep(H4, 80)], masq: N },
    { id: '4.8', what: 'control: another pod', src: POD6, dst: '[fd00:10:96::41]:80', want: [ep(H6, 80)], masq: N },
    { id: '4.9', what: 'control: eTP Local from outside', src: EXT, dst: `${NODE}:3002`, want: [ep(H4, 80)], masq: N },
  ],
};

// ================================================================================================
// 5. Dual stack, the IPv6 half: ClusterIP, NodePort on the v6 node IP, LB IP, externalIP,
//    eTP Local; plus the v4 half of the same services (families do not mix).
// ================================================================================================
const D4L = '10.180.5.1', D4R = '10.180.5.2', D6L = 'fd00:10::5:1', D6R = 'fd00:10::5:2';
const dsSlices = (name: string, ports: { name: string; port: number; protocol?: 'TCP' | 'UDP' }[]) => [
  slice('ns5', name, `${name}-v4`, ports, [{ ip: D4L, node: 'test-node' }, { ip: D4R, node: 'node2' }]),
  slice('ns5', name, `${name}-v6`, ports, [{ ip: D6L, node: 'test-node' }, { ip: D6R, node: 'node2' }], 'IPv6'),
];
const V6BOTH = [ep(D6L, 80), ep(D6R, 80)], V6LOCAL = [ep(D6L, 80)];
export const dualStack: Case = {
  name: 'ds-cluster (eTP Cluster: NodePort 3001, LB 2001:db8:ff::51, externalIP 2001:db8:99::11) and ds-local (eTP Local: NodePort 3002, LB 2001:db8:ff::52)',
  env: FEATURES_ENV,
  objects: [
    service('ns5', 'ds-cluster', {
      type: 'LoadBalancer', clusterIPs: ['172.30.5.1', 'fd00:10:96::51'], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack',
      externalIPs: ['2001:db8:99::11'],
      ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }, { name: 'dns', port: 53, protocol: 'UDP', nodePort: 3053 }],
    }, { loadBalancer: { ingress: [{ ip: '1.2.3.4' }, { ip: '2001:db8:ff::51' }] } }),
    ...dsSlices('ds-cluster', [{ name: 'p80', port: 80 }, { name: 'dns', port: 53, protocol: 'UDP' }]),
    service('ns5', 'ds-local', {
      type: 'LoadBalancer', clusterIPs: ['172.30.5.2', 'fd00:10:96::52'], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack',
      externalTrafficPolicy: 'Local', healthCheckNodePort: 30000,
      ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3002 }],
    }, { loadBalancer: { ingress: [{ ip: '1.2.3.5' }, { ip: '2001:db8:ff::52' }] } }),
    ...dsSlices('ds-local', [{ name: 'p80', port: 80 }]),
  ],
  rows: [
    { id: '5.1', src: POD6, dst: '[fd00:10:96::51]:80', want: V6BOTH, masq: N },
    { id: '5.2', what: 'outside fd00:10::/64', src: EXT6, dst: '[fd00:10:96::51]:80', want: V6BOTH, masq: Y },
    { id: '5.3', src: NODE6, dst: '[fd00:10:96::51]:80', want: V6BOTH, masq: Y },
    { id: '5.4', src: POD6, dst: '[fd00:10:96::51]:53', proto: 'udp', want: [ep(D6L, 53), ep(D6R, 53)], masq: N },
    { id: '5.5', src: EXT6, dst: `[${NODE6}]:3001`, want: V6BOTH, masq: Y },
    { id: '5.6', src: EXT6, dst: `[${NODE6}]:3053`, proto: 'udp', want: [ep(D6L, 53), ep(D6R, 53)], masq: Y },
    { id: '5.7', src: EXT6, dst: '[2001:db8:ff::51]:80', want: V6BOTH, masq: Y },
    { id: '5.8', src: EXT6, dst: '[2001:db8:99::11]:80', want: V6BOTH, masq: Y },
    { id: '5.9', src: EXT6, dst: `[${NODE6}]:3002`, want: V6LOCAL, masq: N },
    { id: '5.10', src: EXT6, dst: '[2001:db8:ff::52]:80', want: V6LOCAL, masq: N },
    { id: '5.11', what: 'pod short-circuit', src: POD6, dst: '[2001:db8:ff::52]:80', want: V6BOTH, masq: N },
    { id: '5.12', what: 'node short-circuit', src: NODE6, dst: '[2001:db8:ff::52]:80', want: V6BOTH, masq: Y },
    { id: '5.13', what: 'node short-circuit', src: NODE6, dst: `[${NODE6}]:3002`, want: V6BOTH, masq: Y },
    { id: '5.14', what: 'port the v6 ClusterIP does not serve', src: EXT6, dst: '[fd00:10:96::51]:81', want: 'REJECT' },
    { id: '5.15', what: 'unallocated v6 ClusterIP', src: EXT6, dst: '[fd00:10:96::99]:80', want: 'DROP' },
    { id: '5.16', what: 'v4 half', src: EXT, dst: `${NODE}:3002`, want: [ep(D4L, 80)], masq: N },
    { id: '5.17', what: 'v4 half', src: POD, dst: '172.30.5.1:80', want: [ep(D4L, 80), ep(D4R, 80)], masq: N },
  ],
};

// ================================================================================================
// 6. Masquerade for every traffic class: {pod, node, external} x {ClusterIP, NodePort, LB IP,
//    externalIP} x {eTP Cluster, eTP Local, eTP Local without a local endpoint, iTP Local}, each
//    under three configurations. What the cells rest on, all from [P]:
//    - ClusterIP: the internal chain holds `daddr <ClusterIP> dport <port> [saddr != <cluster
//      CIDR>] jump mark-for-masquerade`, the saddr test only with a local-traffic detector, the
//      whole rule only with --masquerade-all or a detector. No --cluster-cidr: never masqueraded.
//    - --masquerade-all adds nothing for external destinations: that rule matches the ClusterIP
//      only (so eTP Local from outside keeps the client IP even with --masquerade-all).
//    - External destinations, eTP Cluster: `jump mark-for-masquerade` first, every source.
//    - eTP Local: "short-circuit pod traffic" (only with a detector) goes to the cluster chain
//      unmasqueraded; "masquerade local traffic" + "short-circuit local traffic" (fib saddr type
//      local) send the node to the cluster chain masqueraded; the rest goes to the local chain,
//      client IP kept, or, with no local endpoint, falls through and meets the
//      no-endpoint-services/-nodeports "drop" in the filter chains.
//    - iTP Local: the masquerade rule sits in the internal chain, which is then the local chain.
// ================================================================================================
const L = '10.180.6.1', R = '10.180.6.2', R2 = '10.180.6.3';
const LR = [ep(L, 80), ep(R, 80)], LOCAL = [ep(L, 80)], REMOTE = [ep(R, 80), ep(R2, 80)];
type Dst = 'ClusterIP' | 'NodePort' | 'LB IP' | 'externalIP';
type Src = 'pod' | 'node' | 'external';
const SOURCES: Record<Src, string> = { pod: POD, node: NODE, external: EXT };
interface MatrixService { title: string; dsts: Partial<Record<Dst, string>>; objects: unknown[] }
const lbService = (name: string, last: number, etp: 'Cluster' | 'Local', endpoints: { ip: string; node: string }[]): MatrixService => ({
  title: name,
  dsts: { ClusterIP: `172.30.6.${last}:80`, NodePort: `${NODE}:300${last}`, 'LB IP': `1.2.3.${3 + last}:80`, externalIP: `192.168.99.${10 + last}:80` },
  objects: [
    service('ns6', name, {
      type: 'LoadBalancer', clusterIP: `172.30.6.${last}`, externalTrafficPolicy: etp, healthCheckNodePort: etp === 'Local' ? 30000 + last : undefined,
      externalIPs: [`192.168.99.${10 + last}`], ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3000 + last }],
    }, { loadBalancer: { ingress: [{ ip: `1.2.3.${3 + last}` }] } }),
    slice('ns6', name, `${name}-a`, [{ name: 'p80', port: 80 }], endpoints),
  ],
});
const MS: Record<'eTP Cluster' | 'eTP Local' | 'eTP Local, no local endpoint' | 'iTP Local', MatrixService> = {
  'eTP Cluster': lbService('etp-cluster', 1, 'Cluster', [{ ip: L, node: 'test-node' }, { ip: R, node: 'node2' }]),
  'eTP Local': lbService('etp-local', 2, 'Local', [{ ip: L, node: 'test-node' }, { ip: R, node: 'node2' }]),
  'eTP Local, no local endpoint': lbService('etp-local-remote', 3, 'Local', [{ ip: R, node: 'node2' }, { ip: R2, node: 'node3' }]),
  'iTP Local': {
    title: 'itp-local', dsts: { ClusterIP: '172.30.6.4:80' },
    objects: [
      service('ns6', 'itp-local', { clusterIP: '172.30.6.4', internalTrafficPolicy: 'Local', ports: [{ name: 'p80', port: 80, protocol: 'TCP' }] }),
      slice('ns6', 'itp-local', 'itp-local-a', [{ name: 'p80', port: 80 }], [{ ip: L, node: 'test-node' }, { ip: R, node: 'node2' }]),
    ],
  },
};

type Cell = 'DROP' | [string[], boolean];
type Line = [keyof typeof MS, Src, Dst, Cell, Cell, Cell];
const CONFIGS: { key: string; name: string; env: Env }[] = [
  { key: 'cidr', name: 'with --cluster-cidr', env: FEATURES_ENV },
  { key: 'nocidr', name: 'without --cluster-cidr (no local-traffic detector)', env: { ...FEATURES_ENV, clusterCIDRs: [] } },
  { key: 'all', name: 'with --masquerade-all (and --cluster-cidr)', env: { ...FEATURES_ENV, masqueradeAll: true } },
];
const MATRIX: Line[] = [
  // service                        source      destination    --cluster-cidr   none           --masquerade-all
  ['eTP Cluster',                   'pod',      'ClusterIP',   [LR, N],         [LR, N],       [LR, Y]],
  ['eTP Cluster',                   'pod',      'NodePort',    [LR, Y],         [LR, Y],       [LR, Y]],
  ['eTP Cluster',                   'pod',      'LB IP',       [LR, Y],         [LR, Y],       [LR, Y]],
  ['eTP Cluster',                   'pod',      'externalIP',  [LR, Y],         [LR, Y],       [LR, Y]],
  ['eTP Cluster',                   'node',     'ClusterIP',   [LR, Y],         [LR, N],       [LR, Y]],
  ['eTP Cluster',                   'node',     'NodePort',    [LR, Y],         [LR, Y],       [LR, Y]],
  ['eTP Cluster',                   'node',     'LB IP',       [LR, Y],         [LR, Y],       [LR, Y]],
  ['eTP Cluster',                   'node',     'externalIP',  [LR, Y],         [LR, Y],       [LR, Y]],
  ['eTP Cluster',                   'external', 'ClusterIP',   [LR, Y],         [LR, N],       [LR, Y]],
  ['eTP Cluster',                   'external', 'NodePort',    [LR, Y],         [LR, Y],       [LR, Y]],
  ['eTP Cluster',                   'external', 'LB IP',       [LR, Y],         [LR, Y],       [LR, Y]],
  ['eTP Cluster',                   'external', 'externalIP',  [LR, Y],         [LR, Y],       [LR, Y]],

  ['eTP Local',                     'pod',      'ClusterIP',   [LR, N],         [LR, N],       [LR, Y]],
  ['eTP Local',                     'pod',      'NodePort',    [LR, N],         [LOCAL, N],    [LR, N]],
  ['eTP Local',                     'pod',      'LB IP',       [LR, N],         [LOCAL, N],    [LR, N]],
  ['eTP Local',                     'pod',      'externalIP',  [LR, N],         [LOCAL, N],    [LR, N]],
  ['eTP Local',                     'node',     'ClusterIP',   [LR, Y],         [LR, N],       [LR, Y]],
  ['eTP Local',                     'node',     'NodePort',    [LR, Y],         [LR, Y],       [LR, Y]],
  ['eTP Local',                     'node',     'LB IP',       [LR, Y],         [LR, Y],       [LR, Y]],
  ['eTP Local',                     'node',     'externalIP',  [LR, Y],         [LR, Y],       [LR, Y]],
  ['eTP Local',                     'external', 'ClusterIP',   [LR, Y],         [LR, N],       [LR, Y]],
  ['eTP Local',                     'external', 'NodePort',    [LOCAL, N],      [LOCAL, N],    [LOCAL, N]],
  ['eTP Local',                     'external', 'LB IP',       [LOCAL, N],      [LOCAL, N],    [LOCAL, N]],
  ['eTP Local',                     'external', 'externalIP',  [LOCAL, N],      [LOCAL, N],    [LOCAL, N]],

  ['eTP Local, no local endpoint',  'pod',      'ClusterIP',   [REMOTE, N],     [REMOTE, N],   [REMOTE, Y]],
  ['eTP Local, no local endpoint',  'pod',      'NodePort',    [REMOTE, N],     'DROP',        [REMOTE, N]],
  ['eTP Local, no local endpoint',  'pod',      'LB IP',       [REMOTE, N],     'DROP',        [REMOTE, N]],
  ['eTP Local, no local endpoint',  'pod',      'externalIP',  [REMOTE, N],     'DROP',        [REMOTE, N]],
  ['eTP Local, no local endpoint',  'node',     'ClusterIP',   [REMOTE, Y],     [REMOTE, N],   [REMOTE, Y]],
  ['eTP Local, no local endpoint',  'node',     'NodePort',    [REMOTE, Y],     [REMOTE, Y],   [REMOTE, Y]],
  ['eTP Local, no local endpoint',  'node',     'LB IP',       [REMOTE, Y],     [REMOTE, Y],   [REMOTE, Y]],
  ['eTP Local, no local endpoint',  'node',     'externalIP',  [REMOTE, Y],     [REMOTE, Y],   [REMOTE, Y]],
  ['eTP Local, no local endpoint',  'external', 'ClusterIP',   [REMOTE, Y],     [REMOTE, N],   [REMOTE, Y]],
  ['eTP Local, no local endpoint',  'external', 'NodePort',    'DROP',          'DROP',        'DROP'],
  ['eTP Local, no local endpoint',  'external', 'LB IP',       'DROP',          'DROP',        'DROP'],
  ['eTP Local, no local endpoint',  'external', 'externalIP',  'DROP',          'DROP',        'DROP'],

  ['iTP Local',                     'pod',      'ClusterIP',   [LOCAL, N],      [LOCAL, N],    [LOCAL, Y]],
  ['iTP Local',                     'node',     'ClusterIP',   [LOCAL, Y],      [LOCAL, N],    [LOCAL, Y]],
  ['iTP Local',                     'external', 'ClusterIP',   [LOCAL, Y],      [LOCAL, N],    [LOCAL, Y]],
];

const matrixObjects = Object.values(MS).flatMap((s) => s.objects);
export const matrixCases: Case[] = CONFIGS.map((cfg, ci) => ({
  name: cfg.name,
  env: cfg.env,
  objects: matrixObjects,
  rows: MATRIX.map(([svc, src, dst, ...cells], i): Row => {
    const cell = cells[ci]!;
    const to = MS[svc].dsts[dst];
    if (!to) throw new Error(`${svc} has no ${dst}`);
    return {
      id: `6.${cfg.key}.${i + 1}`, what: `${svc}: ${src} -> ${dst}`, src: SOURCES[src], dst: to,
      ...(cell === 'DROP' ? { want: 'DROP' as const } : { want: cell[0], masq: cell[1] }),
    };
  }),
}));

// ================================================================================================
// 7. Topology hints ([T]): with every *ready* endpoint hinted and one hint for this node (zone),
//    cluster traffic (ClusterIP, and external traffic with eTP Cluster, and the eTP Local
//    short-circuits, which all use the cluster endpoints) goes to the hinted endpoints only;
//    node hints first (PreferSameNode), then zone hints; Local policies ignore hints.
// ================================================================================================
// Nine services whose endpoints carry zone and node hints, on nodes node2..node5 and test-node.
const A1 = '10.180.7.1', A2 = '10.180.7.2', B1 = '10.180.7.3', X = '10.180.7.4', TL = '10.180.7.5';
type Hinted = { ip: string; node: string; ready?: boolean; forZones?: string[]; forNodes?: string[] };
const topoService = (n: number, eps: Hinted[], extra: Record<string, unknown> = {}) => [
  service('ns7', `t${n}`, { clusterIP: `172.30.7.${n}`, ports: [{ name: 'p80', port: 80, protocol: 'TCP', ...(extra.type ? { nodePort: 3000 + n } : {}) }], ...extra }),
  slice('ns7', `t${n}`, `t${n}-a`, [{ name: 'p80', port: 80 }], eps.map((e) => ({ ...e, serving: e.ready ?? true }))),
];
const zoneA = ['zone-a'], zoneB = ['zone-b'], zoneC = ['zone-c'];
const topoObjects: unknown[] = [
  ...topoService(1, [{ ip: A1, node: 'node2', forZones: zoneA }, { ip: A2, node: 'node3', forZones: zoneA }, { ip: B1, node: 'node4', forZones: zoneB }], { type: 'NodePort' }),
  ...topoService(2, [{ ip: A1, node: 'node2', forZones: zoneA }, { ip: A2, node: 'node3' }, { ip: B1, node: 'node4', forZones: zoneB }]),
  ...topoService(3, [{ ip: A1, node: 'node2', forZones: zoneA }, { ip: B1, node: 'node4', forZones: zoneB }, { ip: X, node: 'node5', ready: false }]),
  ...topoService(4, [{ ip: A1, node: 'node2', forZones: zoneB }, { ip: B1, node: 'node4', forZones: zoneC }]),
  ...topoService(5, [{ ip: TL, node: 'test-node', forZones: zoneB }, { ip: A1, node: 'node2', forZones: zoneA }], { internalTrafficPolicy: 'Local' }),
  ...topoService(6, [{ ip: TL, node: 'test-node', forZones: zoneB }, { ip: A1, node: 'node2', forZones: zoneA }], { type: 'NodePort', externalTrafficPolicy: 'Local' }),
  ...topoService(7, [{ ip: TL, node: 'test-node', forNodes: ['test-node'], forZones: zoneA }, { ip: A1, node: 'node2', forNodes: ['node2'], forZones: zoneA }]),
  ...topoService(8, [{ ip: A1, node: 'node2', forNodes: ['node2'], forZones: zoneA }, { ip: B1, node: 'node4', forNodes: ['node4'], forZones: zoneB }]),
  ...topoService(9, [{ ip: TL, node: 'test-node', forNodes: ['test-node'], forZones: zoneA }, { ip: A1, node: 'node2', forZones: zoneA }, { ip: B1, node: 'node4', forZones: zoneB }]),
];
export const topologyZoneA: Case = {
  name: 'node labelled topology.kubernetes.io/zone=zone-a',
  env: { ...FEATURES_ENV, nodeLabels: ZONE_A },
  objects: topoObjects,
  rows: [
    { id: '7.1', what: 't1 all hinted, two for zone-a', src: POD, dst: '172.30.7.1:80', want: e80(A1, A2), masq: N },
    { id: '7.2', what: 't1 NodePort, eTP Cluster', src: EXT, dst: `${NODE}:3001`, want: e80(A1, A2), masq: Y },
    { id: '7.3', what: 't2 one ready endpoint without hints: all', src: POD, dst: '172.30.7.2:80', want: e80(A1, A2, B1), masq: N },
    { id: '7.4', what: 't3 only a not-ready endpoint lacks hints: zone-a', src: POD, dst: '172.30.7.3:80', want: e80(A1), masq: N },
    { id: '7.5', what: 't4 no hint for zone-a: all', src: POD, dst: '172.30.7.4:80', want: e80(A1, B1), masq: N },
    { id: '7.6', what: 't5 iTP Local ignores hints', src: POD, dst: '172.30.7.5:80', want: e80(TL), masq: N },
    { id: '7.7', what: 't6 eTP Local from outside ignores hints', src: EXT, dst: `${NODE}:3006`, want: e80(TL), masq: N },
    { id: '7.8', what: 't6 ClusterIP (iTP Cluster) honours hints', src: POD, dst: '172.30.7.6:80', want: e80(A1), masq: N },
    { id: '7.9', what: 't6 pod short-circuit: cluster endpoints, hints honoured', src: POD, dst: `${NODE}:3006`, want: e80(A1), masq: N },
    { id: '7.10', what: 't6 node short-circuit: cluster endpoints, hints honoured', src: NODE, dst: `${NODE}:3006`, want: e80(A1), masq: Y },
    { id: '7.11', what: 't7 forNodes: PreferSameNode', src: POD, dst: '172.30.7.7:80', want: e80(TL), masq: N },
    { id: '7.12', what: 't8 no node hint for this node: zone hints', src: POD, dst: '172.30.7.8:80', want: e80(A1), masq: N },
    { id: '7.13', what: 't9 node hints incomplete: zone hints', src: POD, dst: '172.30.7.9:80', want: e80(TL, A1), masq: N },
  ],
};
export const topologyNoZone: Case = {
  name: 'node without a zone label',
  env: FEATURES_ENV,
  objects: topoObjects,
  rows: [
    { id: '7.14', what: 't1 zone hints ignored', src: POD, dst: '172.30.7.1:80', want: e80(A1, A2, B1), masq: N },
    { id: '7.15', what: 't3 zone hints ignored, not-ready endpoint still out', src: POD, dst: '172.30.7.3:80', want: e80(A1, B1), masq: N },
    { id: '7.16', what: 't7 node hints need no zone label', src: POD, dst: '172.30.7.7:80', want: e80(TL), masq: N },
  ],
};

export const SECTIONS: readonly Section[] = [
  { id: 'f1', title: '1. named target ports resolved per slice', cases: [named] },
  { id: 'f2', title: '2. multi-port services', cases: [multi] },
  { id: 'f4', title: '4. hairpin', cases: [hairpin] },
  { id: 'f5', title: '5. dual stack: IPv6', cases: [dualStack] },
  { id: 'f6', title: '6. masquerade for every traffic class', cases: matrixCases },
  { id: 'f7', title: '7. topology hints', cases: [topologyZoneA, topologyNoZone] },
];

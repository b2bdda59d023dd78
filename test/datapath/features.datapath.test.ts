// Features beyond ../shared/reference-scenarios.md, with real packets: named target ports,
// multi-port services, session affinity, hairpin, IPv6, the masquerade matrix and topology
// hints. Every row is a flow sent as real TCP/UDP connections through a real kernel holding
// the compiled table (test/lab/), and its outcome must equal the row AND explain's tracer on
// the same ruleset, as in reference-scenarios.datapath.test.ts.
//
// The expected outcomes are written by hand from kube-proxy's nftables mode (v1.34+), never
// computed from the tracer. Where a cell is not obvious, the comment next to it says what it
// rests on; [P] is kubernetes/kubernetes pkg/proxy/nftables/proxier.go @b0f823e6 (syncProxyRules:
// "Set up internal traffic handling", "Set up external traffic handling", the endpoint chains)
// and [T] is pkg/proxy/topology.go @008b3652 (CategorizeEndpoints, topologyModeFromHints).
//
// Each section gets its own lab; sections run concurrently, the cases of a section one after
// the other (reload, forget conntrack), a bounded number of rows of a case at once. Measuring
// starts in beforeAll; each row's `it` waits for its own result.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, type LabSpec, parseDst } from '../lab/lab.js';
import { canUseKernel, KERNEL_SKIP_REASON, liveNetns, netnsOfThisProcess } from '../lab/netns.js';
import type { Observed } from '../lab/outcome.js';
import { type Env, type Expect, compileObjects, probe, service, slice } from '../support/builders.js';
import { A1, A2, B1, TL, topoObjects } from '../support/topology-fixture.js';

// Every port a row connects to or a DNAT may choose: every pod and the node listen on all of
// them (TCP and UDP), so a packet sent to the wrong place is answered and seen, not lost.
const PORTS = [53, 80, 443, 3001, 3002, 3003, 3006, 3053, 3080, 3443, 3999, 5353, 5354, 8080, 8081, 8443];
// As in the reference test: 40 tries miss one of 3 endpoints with probability < 1e-6; 1.5 s
// outlasts the 1 s SYN retransmit after which an IPv6 TCP reject is reported.
const TRIES = 40;
const TIMEOUT_MS = 1500;
// Rows of one case in flight at once (40 connections each). The masquerade matrix has 39 rows
// per ruleset: all at once would be 1,560 simultaneous connections, mostly to one pod.
const ROWS_IN_FLIGHT = 8;

// ---- the environment --------------------------------------------------------------------------

// The sources every section uses: a pod (inside --cluster-cidr), the node itself (host network:
// it binds a node IP), and a client outside the cluster.
const POD = '10.0.0.2', NODE = '192.168.0.2', EXT = '203.0.113.2';
const POD6 = 'fd00:10::2', NODE6 = '2001:db8::1', EXT6 = '2600:5200::1';

const ENV: Env = {
  nodeName: 'test-node',
  // 192.168.99.x: externalIPs routed to this node (assigned to it, like the reference's .99.11)
  nodeIPs: [NODE, '192.168.99.11', '192.168.99.12', '192.168.99.13', NODE6],
  clusterCIDRs: ['10.0.0.0/8', 'fd00:10::/64'],
  serviceCIDRs: ['172.30.0.0/16', 'fd00:10:96::/112'],
  nodePortAddresses: [`${NODE}/32`, `${NODE6}/128`],
};
const ZONE_A = { 'topology.kubernetes.io/zone': 'zone-a' };

const Y = true, N = false;
const ep = (addr: string, port: number): string => (addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);

// ---- the tables' shape --------------------------------------------------------------------------

interface Row { id: string; what?: string; src: string; dst: string; proto?: 'tcp' | 'udp'; want: Expect; masq?: boolean }
interface Case { name: string; objects: unknown[]; env: Env; rows: Row[] }
interface Section { id: string; title: string; cases: Case[] }

// ================================================================================================
// 1. Named target ports, resolved per slice. The EndpointSlice controller resolves targetPort
//    "http" pod by pod and groups pods that agree into one slice, which names the port by the
//    *service* port's name ("web") with the number it resolved to: kube-proxy (and nftproxy)
//    take the number from each slice. A slice without the port name serves another port.
// ================================================================================================
const P1 = '10.180.1.1', P2 = '10.180.1.2', P3 = '10.180.1.3', P4 = '10.180.1.4';
const named: Case = {
  name: 'targetPort "http" is 8080 on P1, P2 and 8081 on P3',
  env: ENV,
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
const multi: Case = {
  name: '80->8080/TCP, 443->8443/TCP, 53->5353/UDP on one ClusterIP',
  env: ENV,
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
const hairpin: Case = {
  name: 'one local endpoint per family, eTP Cluster (NodePort 3001) and eTP Local (NodePort 3002)',
  env: ENV,
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
const dualStack: Case = {
  name: 'ds-cluster (eTP Cluster: NodePort 3001, LB 2001:db8:ff::51, externalIP 2001:db8:99::11) and ds-local (eTP Local: NodePort 3002, LB 2001:db8:ff::52)',
  env: ENV,
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
  { key: 'cidr', name: 'with --cluster-cidr', env: ENV },
  { key: 'nocidr', name: 'without --cluster-cidr (no local-traffic detector)', env: { ...ENV, clusterCIDRs: [] } },
  { key: 'all', name: 'with --masquerade-all (and --cluster-cidr)', env: { ...ENV, masqueradeAll: true } },
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
const matrixCases: Case[] = CONFIGS.map((cfg, ci) => ({
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
const e80 = (...ips: string[]): string[] => ips.map((ip) => ep(ip, 80));
const topologyZoneA: Case = {
  name: 'node labelled topology.kubernetes.io/zone=zone-a',
  env: { ...ENV, nodeLabels: ZONE_A },
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
const topologyNoZone: Case = {
  name: 'node without a zone label',
  env: ENV,
  objects: topoObjects,
  rows: [
    { id: '7.14', what: 't1 zone hints ignored', src: POD, dst: '172.30.7.1:80', want: e80(A1, A2, B1), masq: N },
    { id: '7.15', what: 't3 zone hints ignored, not-ready endpoint still out', src: POD, dst: '172.30.7.3:80', want: e80(A1, B1), masq: N },
    { id: '7.16', what: 't7 node hints need no zone label', src: POD, dst: '172.30.7.7:80', want: e80(TL), masq: N },
  ],
};

const SECTIONS: readonly Section[] = [
  { id: 'f1', title: '1. named target ports resolved per slice', cases: [named] },
  { id: 'f2', title: '2. multi-port services', cases: [multi] },
  { id: 'f4', title: '4. hairpin', cases: [hairpin] },
  { id: 'f5', title: '5. dual stack: IPv6', cases: [dualStack] },
  { id: 'f6', title: '6. masquerade for every traffic class', cases: matrixCases },
  { id: 'f7', title: '7. topology hints', cases: [topologyZoneA, topologyNoZone] },
];

// ================================================================================================
// 3. Session affinity (ClientIP), timeoutSeconds 2. kube-proxy ([P] writeServiceToEndpointRules
//    and the endpoint chains): a per-endpoint set `flags dynamic,timeout; timeout 2s`, a
//    `saddr @affinity-<ep> goto <ep chain>` rule per endpoint before the random choice, and
//    `update @affinity-<ep> { saddr }` in the endpoint chain: every *new* connection of a client
//    refreshes its 2 s. So a client sticks while its connections are less than 2 s apart, even
//    for longer than 2 s in all, and is balanced afresh after 2 s without one.
//    These are not single outcomes: the table (and the tracer, which follows every branch of a
//    first connection) says where a connection *may* land; the kernel must land every connection
//    of one client on one endpoint of that set.
// ================================================================================================
const AFFINITY_TIMEOUT_S = 2;
const S1 = '10.180.3.1', S2 = '10.180.3.2', S3 = '10.180.3.3';
const STICKY_ALL = e80(S1, S2, S3);
const affinityCase: Case = {
  name: 'ClientIP, timeoutSeconds 2, three endpoints',
  env: ENV,
  objects: [
    service('ns3', 'sticky', {
      type: 'NodePort', clusterIP: '172.30.3.1', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: AFFINITY_TIMEOUT_S } },
      ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }],
    }),
    slice('ns3', 'sticky', 'sticky-a', [{ name: 'p80', port: 80 }], [{ ip: S1, node: 'test-node' }, { ip: S2, node: 'node2' }, { ip: S3, node: 'node3' }]),
  ],
  rows: [],
};
// Clients of the independence check: 8 addresses, so that all of them picking the same endpoint
// by chance (a false failure) has probability 3 * (1/3)^8 = 1/3^7.
const PER_CLIENT = Array.from({ length: 8 }, (_, i) => `10.0.3.${11 + i}`);
const REFRESH = { src: '10.0.3.21', tries: 6, spacingMs: 500 };
// 8 tries, each after an idle time longer than the timeout: all on one endpoint by chance with
// probability 3 * (1/3)^8 = 1/3^7.
const EXPIRY = { src: '10.0.3.31', tries: 8, idleMs: AFFINITY_TIMEOUT_S * 1000 + 600 };

interface StickyCheck { id: string; what: string; srcs: string[]; dst: string; masq: boolean }
const STICKY: Record<'sticks' | 'nodePort' | 'perClient' | 'refresh' | 'expiry', StickyCheck> = {
  sticks: { id: '3.1', what: 'one client, 20 new connections: all on one endpoint', srcs: [POD], dst: '172.30.3.1:80', masq: N },
  nodePort: { id: '3.2', what: 'from outside via the NodePort, 20 connections: all on one endpoint', srcs: [EXT], dst: `${NODE}:3001`, masq: Y },
  perClient: { id: '3.3', what: `${PER_CLIENT.length} client addresses, 10 connections each: each sticks to one endpoint of its own, not all to the same`, srcs: PER_CLIENT, dst: '172.30.3.1:80', masq: N },
  refresh: { id: '3.4', what: `${REFRESH.tries} connections ${REFRESH.spacingMs} ms apart (longer than the ${AFFINITY_TIMEOUT_S} s timeout in all): every new connection refreshes it, all on one endpoint`, srcs: [REFRESH.src], dst: '172.30.3.1:80', masq: N },
  expiry: { id: '3.5', what: `${EXPIRY.tries} connections, each after ${EXPIRY.idleMs} ms idle (past the timeout): balanced afresh, more than one endpoint`, srcs: [EXPIRY.src], dst: '172.30.3.1:80', masq: N },
};

// ---- where every address of a section lives ----------------------------------------------------

const unique = <T>(xs: Iterable<T>): T[] => [...new Set(xs)];

function endpointAddresses(objects: unknown[]): string[] {
  return objects.flatMap((o) => {
    const obj = o as { kind?: string; endpoints?: { addresses: string[] }[] };
    return obj.kind === 'EndpointSlice' ? (obj.endpoints ?? []).flatMap((e) => e.addresses) : [];
  });
}

/** A pod for every endpoint of every case, the node IPs on the node, every other source a client. */
function labSpec(cases: readonly Case[], moreSources: readonly string[] = []): LabSpec {
  const nodeIPs = unique(cases.flatMap((c) => c.env.nodeIPs ?? []));
  const pods = unique(cases.flatMap((c) => endpointAddresses(c.objects)));
  const sources = unique([...cases.flatMap((c) => c.rows.map((r) => r.src)), ...moreSources]).filter((s) => !nodeIPs.includes(s) && !pods.includes(s));
  // A client namespace sending to its own address needs the lab's "self" attachment: none here.
  if (cases.some((c) => c.rows.some((r) => parseDst(r.dst).host === r.src && !nodeIPs.includes(r.src)))) throw new Error('a client sends to its own address');
  return { nodeIPs, pods, clients: sources, selfAddressed: [], ports: PORTS };
}

/** The compiled ruleset, refusing objects the model skipped (a typo would silently test less). */
function compiled(c: Case): ReturnType<typeof compileObjects> {
  const r = compileObjects(c.objects, c.env);
  if (r.diagnostics.length > 0) throw new Error(`${c.name}: objects skipped: ${JSON.stringify(r.diagnostics)}`);
  return r;
}

// ---- kernel results, measured in the background -------------------------------------------------

interface Pending<T> { promise: Promise<T>; resolve: (o: T) => void; reject: (e: unknown) => void }
function pending<T>(): Pending<T> {
  let resolve!: (o: T) => void, reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej; });
  promise.catch(() => {}); // the row's `it` reports it; never an unhandled rejection
  return { promise, resolve, reject };
}

const kernel = new Map<Row, Pending<Observed>>(SECTIONS.flatMap((s) => s.cases.flatMap((c) => c.rows.map((r) => [r, pending<Observed>()] as const))));

/** Runs `fn` on every item, at most `n` at a time. */
async function pool<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

async function runSection(section: Section): Promise<void> {
  const rows = section.cases.flatMap((c) => c.rows);
  try {
    const lab = await Lab.create(section.id, labSpec(section.cases));
    try {
      for (const c of section.cases) {
        await lab.load(compiled(c).ruleset);
        await lab.forgetConnections();
        await pool(c.rows, ROWS_IN_FLIGHT, async (row) => {
          kernel.get(row)!.resolve(await lab.probe({ src: row.src, dst: row.dst, proto: row.proto ?? 'tcp', count: TRIES, timeoutMs: TIMEOUT_MS }));
        });
      }
    } finally {
      await lab.destroy();
    }
  } catch (e) {
    // Rows already resolved keep their result; the rest report why they have none.
    for (const row of rows) kernel.get(row)!.reject(e);
  }
}

/** What the kernel did for one affinity check: the outcome of each client's tries, in order. */
interface StickyResult { perSource: Map<string, Observed[]>; gapsMs: number[] }
const stickyKernel = new Map<StickyCheck, Pending<StickyResult>>(Object.values(STICKY).map((c) => [c, pending<StickyResult>()] as const));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function runAffinity(): Promise<void> {
  try {
    const lab = await Lab.create('f3', labSpec([affinityCase], Object.values(STICKY).flatMap((c) => c.srcs)));
    const tcp = (src: string, dst: string, count: number) => lab.probe({ src, dst, proto: 'tcp', count, timeoutMs: TIMEOUT_MS });
    // The first connection alone, so that it has recorded the client before the others
    // arrive; then the rest at once.
    const burst = async (check: StickyCheck, rest: number): Promise<void> => {
      const perSource = new Map<string, Observed[]>();
      await Promise.all(check.srcs.map(async (src) => { perSource.set(src, [await tcp(src, check.dst, 1), await tcp(src, check.dst, rest)]); }));
      stickyKernel.get(check)!.resolve({ perSource, gapsMs: [] });
    };
    // One connection at a time, `pauseMs` between the end of one and the start of the next.
    // gapsMs: for `refresh` an upper bound on the time between two connections' first packets
    // (end of this try - start of the previous), for `expiry` a lower bound (start of this try
    // - end of the previous), so the test can tell whether the timing it relies on held.
    const spaced = async (check: StickyCheck, tries: number, pauseMs: number, bound: 'upper' | 'lower'): Promise<void> => {
      const src = check.srcs[0]!;
      const results: Observed[] = [], gapsMs: number[] = [];
      let prev: { start: number; end: number } | undefined;
      for (let i = 0; i < tries; i++) {
        if (prev) await sleep(pauseMs);
        const start = performance.now();
        results.push(await tcp(src, check.dst, 1));
        const end = performance.now();
        if (prev) gapsMs.push(Math.round(bound === 'upper' ? end - prev.start : start - prev.end));
        prev = { start, end };
      }
      stickyKernel.get(check)!.resolve({ perSource: new Map([[src, results]]), gapsMs });
    };
    try {
      await lab.load(compiled(affinityCase).ruleset);
      await lab.forgetConnections();
      await Promise.all([
        (async () => { await burst(STICKY.sticks, 19); await burst(STICKY.nodePort, 19); await burst(STICKY.perClient, 9); })(),
        spaced(STICKY.refresh, REFRESH.tries, REFRESH.spacingMs, 'upper'),
        spaced(STICKY.expiry, EXPIRY.tries, EXPIRY.idleMs, 'lower'),
      ]);
    } finally {
      await lab.destroy();
    }
  } catch (e) {
    for (const p of stickyKernel.values()) p.reject(e);
  }
}

// ---- the rows ------------------------------------------------------------------------------------

/** The table row in the notation both the kernel and the tracer are read in. */
function tableOutcome(row: { want: Expect; masq?: boolean }): Observed {
  const got = Array.isArray(row.want) ? [...row.want].sort() : row.want;
  // A packet nftproxy leaves alone ("") is not masqueraded: the table says "no".
  return { got, masq: row.masq ?? (row.want === '' ? false : undefined) };
}

function tracerOutcome(c: Case, src: string, dst: string, proto: 'tcp' | 'udp' = 'tcp'): Observed {
  const { ruleset, cfg } = compiled(c);
  const r = probe(ruleset, cfg, src, dst, proto);
  // The tracer names no masquerade for a packet it leaves alone; untouched means "no".
  return { got: r.got, masq: r.got === '' ? false : r.masq };
}

const fmtWant = (want: Expect): string => (Array.isArray(want) ? want.join(', ') : want === '' ? '"" (not proxied)' : want);
const label = (r: Row): string =>
  `${r.id}${r.what ? ` ${r.what}:` : ''} ${r.src} -> ${r.dst}${r.proto === 'udp' ? ' udp' : ''} => ${fmtWant(r.want)}${r.masq === undefined ? '' : ` (masq ${r.masq ? 'yes' : 'no'})`}`;

function rowTests(c: Case): void {
  for (const row of c.rows) {
    it(label(row), async () => {
      const table = tableOutcome(row);
      const tracer = tracerOutcome(c, row.src, row.dst, row.proto);
      const observed = await kernel.get(row)!.promise;
      // One assertion, so a failure shows the table, the tracer and the kernel side by side.
      expect({ tracer, kernel: observed }).toEqual({ tracer: table, kernel: table });
    }, 90_000);
  }
}

/** Endpoints and masquerade seen over several outcomes of one client, or why they are not usable. */
function landings(outcomes: readonly Observed[]): { endpoints: string[]; masq: unknown[] } | string {
  const bad = outcomes.find((o) => !Array.isArray(o.got));
  if (bad) return `a try failed or was not proxied: ${JSON.stringify(bad)}`;
  return { endpoints: unique(outcomes.flatMap((o) => o.got as string[])).sort(), masq: unique(outcomes.map((o) => o.masq)) };
}

function affinityTests(): void {
  const table = tableOutcome({ want: STICKY_ALL, masq: N });
  const tableFor = (check: StickyCheck): Observed => ({ ...table, masq: check.masq });
  const stickLabel = (check: StickyCheck): string => `${check.id} ${check.what}: ${check.srcs.length > 1 ? `${check.srcs[0]}..${check.srcs.at(-1)}` : check.srcs[0]} -> ${check.dst} => one of ${STICKY_ALL.join(', ')} (masq ${check.masq ? 'yes' : 'no'})`;
  const tracerAgrees = (check: StickyCheck): void => {
    for (const src of check.srcs) expect(tracerOutcome(affinityCase, src, check.dst), `tracer, first connection from ${src}`).toEqual(tableFor(check));
  };
  /** Each client's connections all on one endpoint of the table, with the table's masquerade. */
  const eachSticks = (check: StickyCheck, r: StickyResult): string[] => {
    const chosen: string[] = [];
    for (const [src, outcomes] of r.perSource) {
      const seen = landings(outcomes);
      expect(typeof seen === 'string' ? seen : { endpoints: seen.endpoints.length, inTable: seen.endpoints.every((e) => STICKY_ALL.includes(e)), masq: seen.masq },
        `kernel, client ${src}: ${JSON.stringify(seen)}`).toEqual({ endpoints: 1, inTable: true, masq: [check.masq] });
      chosen.push((seen as { endpoints: string[] }).endpoints[0]!);
    }
    return chosen;
  };

  it(stickLabel(STICKY.sticks), async () => {
    tracerAgrees(STICKY.sticks);
    eachSticks(STICKY.sticks, await stickyKernel.get(STICKY.sticks)!.promise);
  }, 90_000);
  it(stickLabel(STICKY.nodePort), async () => {
    tracerAgrees(STICKY.nodePort);
    eachSticks(STICKY.nodePort, await stickyKernel.get(STICKY.nodePort)!.promise);
  }, 90_000);
  it(stickLabel(STICKY.perClient), async () => {
    tracerAgrees(STICKY.perClient);
    const chosen = eachSticks(STICKY.perClient, await stickyKernel.get(STICKY.perClient)!.promise);
    expect(unique(chosen).length, `endpoints chosen by the clients: ${chosen.join(', ')}`).toBeGreaterThan(1);
  }, 90_000);
  it(stickLabel(STICKY.refresh), async () => {
    tracerAgrees(STICKY.refresh);
    const r = await stickyKernel.get(STICKY.refresh)!.promise;
    // Only conclusive if no two connections were a timeout apart (a badly stalled machine).
    expect(Math.max(...r.gapsMs), `upper bounds on the gaps between connections (ms): ${r.gapsMs.join(', ')}`).toBeLessThan(AFFINITY_TIMEOUT_S * 1000);
    eachSticks(STICKY.refresh, r);
  }, 90_000);
  it(stickLabel(STICKY.expiry), async () => {
    tracerAgrees(STICKY.expiry);
    const r = await stickyKernel.get(STICKY.expiry)!.promise;
    expect(Math.min(...r.gapsMs), `lower bounds on the idle times (ms): ${r.gapsMs.join(', ')}`).toBeGreaterThan(AFFINITY_TIMEOUT_S * 1000);
    const seen = landings(r.perSource.get(EXPIRY.src)!);
    expect(typeof seen === 'string' ? seen : { inTable: seen.endpoints.every((e) => STICKY_ALL.includes(e)), balanced: seen.endpoints.length > 1, masq: seen.masq },
      `kernel: ${JSON.stringify(seen)}`).toEqual({ inTable: true, balanced: true, masq: [N] });
  }, 90_000);
}

describe.skipIf(!canUseKernel)(`features with real packets${canUseKernel ? '' : ` [skipped: ${KERNEL_SKIP_REASON}]`}`, () => {
  let running: Promise<unknown> | undefined;
  beforeAll(() => { running = Promise.all([...SECTIONS.map(runSection), runAffinity()]); });
  // The runners remove their labs in finally; this only keeps vitest from leaving before that.
  afterAll(async () => { await running; }, 90_000);

  const sectionTests = (s: Section): void => {
    describe(s.title, () => {
      for (const c of s.cases) describe(c.name, () => rowTests(c));
    });
  };
  sectionTests(SECTIONS[0]!);
  sectionTests(SECTIONS[1]!);
  describe('3. session affinity (ClientIP)', () => { describe(affinityCase.name, affinityTests); });
  for (const s of SECTIONS.slice(2)) sectionTests(s);

  it('removes every namespace it created', async () => {
    await running;
    expect(liveNetns()).toEqual([]);
    expect(await netnsOfThisProcess()).toEqual([]);
  }, 90_000);
});

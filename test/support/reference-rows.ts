// ../shared/reference-scenarios.md as data: every section's objects, environment and rows.
// The same rows drive explain's tracer (test/compile/reference-scenarios.test.ts) and real
// packets through the kernel (test/datapath/reference-scenarios.datapath.test.ts).
import { LAB_ENV, NODE, NODE6 } from './address-plan.js';
import { type Env, type Expect, service, slice } from './builders.js';

/** The lab plan, with the document's second address per family and its externalIP on the node. */
const ENV: Env = { ...LAB_ENV, nodeIPs: [NODE, '192.168.1.2', '192.168.99.11', NODE6, '2001:db8:1::2'] };

/** One flow of a table: `want` in the table's notation, `masq` only where the table says. */
export interface Row { n: number; src: string; dst: string; proto?: 'tcp' | 'udp' | 'sctp'; want: Expect; masq?: boolean }
/** One set of objects (one ruleset) and the flows checked against it. */
export interface Case { name?: string; objects: unknown[]; env: Env; rows: Row[] }
export interface Section { id: string; title: string; cases: Case[] }

const one = (objects: unknown[], rows: Row[], env: Env = ENV): Case[] => [{ objects, env, rows }];

const lbSvc = (extra: Record<string, unknown>, status: Record<string, unknown> = {}) =>
  service('ns1', 'svc1', { type: 'LoadBalancer', clusterIP: '172.30.0.41', ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }], ...extra }, status);

const c1: Section = {
  id: 'c.1', title: 'no endpoints: reject',
  cases: one([lbSvc({ externalIPs: ['192.168.99.11'] }, { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } })], [
    { n: 1, src: '10.0.0.2', dst: '172.30.0.41:80', want: 'REJECT' },
    { n: 2, src: '203.0.113.2', dst: '192.168.99.11:80', want: 'REJECT' },
    { n: 3, src: '10.0.0.2', dst: '192.168.0.2:3001', want: 'REJECT' },
    { n: 4, src: '203.0.113.2', dst: '192.168.0.2:3001', want: 'REJECT' },
    { n: 5, src: '10.0.0.2', dst: '1.2.3.4:80', want: 'REJECT' },
    { n: 6, src: '203.0.113.2', dst: '1.2.3.4:80', want: 'REJECT' },
  ]),
};

const svc2Ports = [
  { name: 'http', port: 80, protocol: 'TCP' }, { name: 'https', port: 443, targetPort: 8443, protocol: 'TCP' },
  { name: 'dns-udp', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, targetPort: 5353, protocol: 'TCP' },
  { name: 'dns-sctp', port: 53, protocol: 'SCTP' },
];
const c2: Section = {
  id: 'c.2', title: 'ClusterIP general',
  cases: one([
    service('ns1', 'svc1', { clusterIP: '172.30.0.41', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] }),
    slice('ns1', 'svc1', 'svc1-a', [{ name: 'http', port: 80 }], [{ ip: '10.180.0.1', node: 'test-node' }]),
    service('ns2', 'svc2', { clusterIP: '172.30.0.42', ports: svc2Ports }),
    slice('ns2', 'svc2', 'svc2-a', [
      { name: 'http', port: 80 }, { name: 'https', port: 8443 }, { name: 'dns-udp', port: 53, protocol: 'UDP' },
      { name: 'dns-tcp', port: 5353 }, { name: 'dns-sctp', port: 53, protocol: 'SCTP' },
    ], [{ ip: '10.180.0.1', node: 'test-node' }, { ip: '10.180.2.1', node: 'node2' }]),
  ], [
    { n: 7, src: '10.180.0.2', dst: '172.30.0.41:80', want: ['10.180.0.1:80'], masq: false },
    { n: 8, src: '10.180.0.1', dst: '172.30.0.41:80', want: ['10.180.0.1:80'], masq: true },
    { n: 9, src: '10.180.0.2', dst: '172.30.0.42:80', want: ['10.180.0.1:80', '10.180.2.1:80'], masq: false },
    { n: 10, src: '10.180.0.2', dst: '172.30.0.42:443', want: ['10.180.0.1:8443', '10.180.2.1:8443'], masq: false },
    { n: 11, src: '10.180.0.2', dst: '172.30.0.42:53', want: ['10.180.0.1:5353', '10.180.2.1:5353'], masq: false },
    { n: 12, src: '10.180.0.2', dst: '172.30.0.42:53', proto: 'udp', want: ['10.180.0.1:53', '10.180.2.1:53'], masq: false },
    { n: 13, src: '10.180.0.2', dst: '172.30.0.42:53', proto: 'sctp', want: ['10.180.0.1:53', '10.180.2.1:53'], masq: false },
    { n: 14, src: '10.180.0.2', dst: '172.30.0.42:80', proto: 'udp', want: 'REJECT' },
    { n: 15, src: '10.180.0.2', dst: '172.30.0.41:443', want: 'REJECT' },
    { n: 16, src: '10.180.0.2', dst: '172.30.0.50:80', want: 'DROP' },
  ]),
};

const c3Want = ['10.180.0.1:80'];
const c3: Section = {
  id: 'c.3', title: 'LoadBalancer with source ranges',
  cases: one([
    lbSvc({ loadBalancerSourceRanges: ['192.168.0.0/24', ' 203.0.113.0/25'] }, { loadBalancer: { ingress: [{ ip: '1.2.3.4' }, { ip: '5.6.7.8' }] } }),
    slice('ns1', 'svc1', 'svc1-a', [{ name: 'p80', port: 80 }], [{ ip: '10.180.0.1' }]),
  ], [
    { n: 17, src: '10.0.0.2', dst: '172.30.0.41:80', want: c3Want, masq: false },
    { n: 18, src: '203.0.113.2', dst: '192.168.0.2:3001', want: c3Want, masq: true },
    { n: 19, src: '203.0.113.130', dst: '192.168.0.2:3001', want: c3Want, masq: true },
    { n: 20, src: '203.0.113.2', dst: '1.2.3.4:80', want: c3Want, masq: true },
    { n: 21, src: '203.0.113.2', dst: '5.6.7.8:80', want: c3Want, masq: true },
    { n: 22, src: '203.0.113.130', dst: '1.2.3.4:80', want: 'DROP' },
    { n: 23, src: '203.0.113.130', dst: '5.6.7.8:80', want: 'DROP' },
    { n: 24, src: '10.0.0.2', dst: '1.2.3.4:80', want: 'DROP' },
    { n: 25, src: '10.0.0.2', dst: '5.6.7.8:80', want: 'DROP' },
    { n: 26, src: '192.168.0.2', dst: '1.2.3.4:80', want: c3Want, masq: true },
    { n: 27, src: '192.168.0.2', dst: '5.6.7.8:80', want: c3Want, masq: true },
    { n: 28, src: '1.2.3.4', dst: '1.2.3.4:80', want: c3Want, masq: true },
    { n: 29, src: '5.6.7.8', dst: '5.6.7.8:80', want: c3Want, masq: true },
  ]),
};

const c4Objects = [
  service('ns1', 'svc1', { type: 'NodePort', clusterIPs: ['172.30.0.41', 'fd00:172:30::41'], ipFamilies: ['IPv4', 'IPv6'], ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }] }),
  slice('ns1', 'svc1', 'svc1-v4', [{ name: 'p80', port: 80 }], [{ ip: '10.180.0.1' }, { ip: '10.180.2.1', node: 'test-node' }]),
  slice('ns1', 'svc1', 'svc1-v6', [{ name: 'p80', port: 80 }], [{ ip: 'fd00:10:180::1' }, { ip: 'fd00:10:180::2:1', node: 'test-node' }], 'IPv6'),
];
const c4v4 = ['10.180.0.1:80', '10.180.2.1:80'];
const c4v6 = ['[fd00:10:180::1]:80', '[fd00:10:180::2:1]:80'];
const c4Rows = (alt: boolean): Row[] => [
  { n: 30, src: '10.0.0.2', dst: '172.30.0.41:80', want: c4v4, masq: false },
  { n: 30, src: 'fd00:10::2', dst: '[fd00:172:30::41]:80', want: c4v6, masq: false },
  { n: 31, src: '203.0.113.2', dst: '192.168.0.2:3001', want: c4v4, masq: true },
  { n: 31, src: '2600:5200::1', dst: '[2001:db8::1]:3001', want: c4v6, masq: true },
  { n: 32, src: '192.168.0.2', dst: '192.168.0.2:3001', want: c4v4, masq: true },
  { n: 32, src: '2001:db8::1', dst: '[2001:db8::1]:3001', want: c4v6, masq: true },
  { n: alt ? 34 : 33, src: '203.0.113.2', dst: '192.168.1.2:3001', want: alt ? c4v4 : '', masq: alt ? true : undefined },
  { n: alt ? 34 : 33, src: '2600:5200::1', dst: '[2001:db8:1::2]:3001', want: alt ? c4v6 : '', masq: alt ? true : undefined },
];
const c4: Section = {
  id: 'c.4', title: 'NodePorts',
  cases: [
    { name: '(a, c) default: primary node IP', objects: c4Objects, env: { ...ENV, nodePortAddresses: 'primary' }, rows: c4Rows(false) },
    { name: '(b, d) CIDRs', objects: c4Objects, env: { ...ENV, nodePortAddresses: ['192.168.0.0/24', '192.168.1.0/24', '2001:db8::/64', '2001:db8:1::2/128'] }, rows: c4Rows(true) },
  ],
};

const etpObjects = (policy: 'Local' | 'Cluster') => [
  lbSvc({ externalTrafficPolicy: policy, externalIPs: ['192.168.99.11'], healthCheckNodePort: policy === 'Local' ? 30000 : undefined }, { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } }),
  slice('ns1', 'svc1', 'svc1-a', [{ name: 'p80', port: 80 }], [{ ip: '10.180.0.1' }, { ip: '10.180.2.1', node: 'test-node' }]),
];
const BOTH = ['10.180.0.1:80', '10.180.2.1:80'];

const c5: Section = {
  id: 'c.5', title: 'externalTrafficPolicy Local',
  cases: one(etpObjects('Local'), [
    { n: 35, src: '10.0.0.2', dst: '172.30.0.41:80', want: BOTH, masq: false },
    { n: 36, src: '10.0.0.2', dst: '192.168.99.11:80', want: BOTH, masq: false },
    { n: 37, src: '203.0.113.2', dst: '192.168.99.11:80', want: ['10.180.2.1:80'], masq: false },
    { n: 38, src: '10.0.0.2', dst: '1.2.3.4:80', want: BOTH, masq: false },
    { n: 39, src: '203.0.113.2', dst: '1.2.3.4:80', want: ['10.180.2.1:80'], masq: false },
    { n: 40, src: '10.0.0.2', dst: '192.168.0.2:3001', want: BOTH, masq: false },
    { n: 41, src: '203.0.113.2', dst: '192.168.0.2:3001', want: ['10.180.2.1:80'], masq: false },
  ]),
};

const c6: Section = {
  id: 'c.6', title: 'externalTrafficPolicy Cluster',
  cases: one(etpObjects('Cluster'), [
    { n: 42, src: '10.0.0.2', dst: '172.30.0.41:80', want: BOTH, masq: false },
    { n: 43, src: '10.0.0.2', dst: '192.168.99.11:80', want: BOTH, masq: true },
    { n: 44, src: '203.0.113.2', dst: '192.168.99.11:80', want: BOTH, masq: true },
    { n: 45, src: '10.0.0.2', dst: '1.2.3.4:80', want: BOTH, masq: true },
    { n: 46, src: '203.0.113.2', dst: '1.2.3.4:80', want: BOTH, masq: true },
    { n: 47, src: '10.0.0.2', dst: '192.168.0.2:3001', want: BOTH, masq: true },
    { n: 48, src: '203.0.113.2', dst: '192.168.0.2:3001', want: BOTH, masq: true },
  ]),
};

const itpObjects = (policy: string, nodes: [string, string, string], withSlice = true) => [
  service('ns1', 'svc1', { clusterIP: '172.30.1.1', internalTrafficPolicy: policy, ports: [{ name: '', port: 80, protocol: 'TCP' }] }),
  ...(withSlice ? [slice('ns1', 'svc1', 'svc1-a', [{ name: '', port: 80 }], [{ ip: '10.0.1.1', node: nodes[0] }, { ip: '10.0.1.2', node: nodes[1] }, { ip: '10.0.1.3', node: nodes[2] }])] : []),
];
const itpFlow = { src: '10.0.0.2', dst: '172.30.1.1:80' };
const c7: Section = {
  id: 'c.7', title: 'internalTrafficPolicy',
  cases: [
    { name: '#49 Cluster', objects: itpObjects('Cluster', ['test-node', 'node1', 'node2']), env: ENV, rows: [{ n: 49, ...itpFlow, want: ['10.0.1.1:80', '10.0.1.2:80', '10.0.1.3:80'], masq: false }] },
    { name: '#50 Local', objects: itpObjects('Local', ['test-node', 'node1', 'node2']), env: ENV, rows: [{ n: 50, ...itpFlow, want: ['10.0.1.1:80'], masq: false }] },
    { name: '#51 Local, two local', objects: itpObjects('Local', ['test-node', 'test-node', 'node2']), env: ENV, rows: [{ n: 51, ...itpFlow, want: ['10.0.1.1:80', '10.0.1.2:80'], masq: false }] },
    { name: '#52 Local, none local', objects: itpObjects('Local', ['node0', 'node1', 'node2']), env: ENV, rows: [{ n: 52, ...itpFlow, want: 'DROP' }] },
    { name: '#53 slice deleted, Cluster', objects: itpObjects('Cluster', ['a', 'b', 'c'], false), env: ENV, rows: [{ n: 53, ...itpFlow, want: 'REJECT' }] },
    { name: '#53 slice deleted, Local', objects: itpObjects('Local', ['a', 'b', 'c'], false), env: ENV, rows: [{ n: 53, ...itpFlow, want: 'REJECT' }] },
  ],
};

// Conditions written (Ready, Serving, Terminating) as in the reference table.
type Cond = [boolean, boolean, boolean];
const ep = (last: number, c: Cond, node?: string) => ({ ip: `10.0.1.${last}`, ready: c[0], serving: c[1], terminating: c[2], node });
const T = true, F = false;
const L = 'test-node';

/** c.8 / c.9: one case per endpoint set, each checked pod -> ClusterIP and external -> LB IP. */
function terminatingCase(name: string, policy: 'Local' | 'Cluster', eps: ReturnType<typeof ep>[][], rows: [{ n: number; want: Expect; masq?: boolean }, { n: number; want: Expect; masq?: boolean }]): Case {
  const objects = [
    service('ns1', 'svc1', { type: 'LoadBalancer', clusterIP: '172.30.1.1', externalTrafficPolicy: policy, healthCheckNodePort: policy === 'Local' ? 30000 : undefined, allocateLoadBalancerNodePorts: false, ports: [{ name: '', port: 80, targetPort: 80, protocol: 'TCP' }] }, { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } }),
    ...eps.map((list, i) => slice('ns1', 'svc1', `svc1-${i}`, [{ name: '', port: 80 }], list)),
  ];
  return { name, objects, env: ENV, rows: [{ ...rows[0], src: '10.0.0.2', dst: '172.30.1.1:80' }, { ...rows[1], src: '203.0.113.2', dst: '1.2.3.4:80' }] };
}

const c8: Section = {
  id: 'c.8', title: 'terminating endpoints, eTP Local',
  cases: [
    terminatingCase('#54/55', 'Local', [[ep(1, [T, T, F], L), ep(2, [T, T, F], L), ep(3, [F, T, T], L), ep(4, [F, F, T], L), ep(5, [T, T, F], 'node-1')]],
      [{ n: 54, want: ['10.0.1.1:80', '10.0.1.2:80', '10.0.1.5:80'], masq: false }, { n: 55, want: ['10.0.1.1:80', '10.0.1.2:80'], masq: false }]),
    terminatingCase('#56/57', 'Local', [[ep(2, [F, T, T], L), ep(3, [F, T, T], L), ep(4, [F, F, T], L), ep(5, [T, T, F], 'node-1')]],
      [{ n: 56, want: ['10.0.1.5:80'], masq: false }, { n: 57, want: ['10.0.1.2:80', '10.0.1.3:80'], masq: false }]),
    terminatingCase('#58/59', 'Local', [[ep(5, [F, T, T], 'node-1')]],
      [{ n: 58, want: ['10.0.1.5:80'], masq: false }, { n: 59, want: 'DROP' }]),
    terminatingCase('#60/61', 'Local', [[ep(5, [F, F, T], L)], [ep(5, [F, F, T], 'node-1')]],
      [{ n: 60, want: 'REJECT' }, { n: 61, want: 'REJECT' }]),
    terminatingCase('#62', 'Local', [], [{ n: 62, want: 'REJECT' }, { n: 62, want: 'REJECT' }]),
  ],
};

const three = ['10.0.1.1:80', '10.0.1.2:80', '10.0.1.5:80'];
const servingTerminating = ['10.0.1.2:80', '10.0.1.3:80', '10.0.1.5:80'];
const c9: Section = {
  id: 'c.9', title: 'terminating endpoints, eTP Cluster',
  cases: [
    terminatingCase('#63/64', 'Cluster', [[ep(1, [T, T, F], L), ep(2, [T, T, F], L), ep(3, [F, T, T], 'another'), ep(4, [F, F, T], 'another'), ep(5, [T, T, F], 'another')]],
      [{ n: 63, want: three, masq: false }, { n: 64, want: three, masq: true }]),
    terminatingCase('#65/66', 'Cluster', [[ep(2, [F, T, T], L), ep(3, [F, T, T], L), ep(4, [F, F, T], 'another'), ep(5, [F, T, T], 'another')]],
      [{ n: 65, want: servingTerminating, masq: false }, { n: 66, want: servingTerminating, masq: true }]),
    terminatingCase('#67/68', 'Cluster', [[ep(5, [F, T, T], 'node-1')]],
      [{ n: 67, want: ['10.0.1.5:80'], masq: false }, { n: 68, want: ['10.0.1.5:80'], masq: true }]),
    terminatingCase('#69', 'Cluster', [[ep(5, [F, F, T], L)], [ep(5, [F, F, T], 'node-1')]],
      [{ n: 69, want: 'REJECT' }, { n: 69, want: 'REJECT' }]),
    terminatingCase('#70', 'Cluster', [], [{ n: 70, want: 'REJECT' }, { n: 70, want: 'REJECT' }]),
  ],
};

export const SECTIONS: readonly Section[] = [c1, c2, c3, c4, c5, c6, c7, c8, c9];

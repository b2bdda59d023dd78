// Which families get a table, and what each table serves, when the Node object lists addresses
// of one family only (or none). kube-proxy runs both families wherever the host carries both,
// whatever the Node lists (cmd/kube-proxy/app/server.go: "kube-proxy normally runs as
// dual-stack if the backend is capable of supporting both IP families, regardless of whether
// the node is *actually* configured as dual-stack"). For a family the Node lists no address of,
// detectNodeIPs takes the family's loopback address as the node IP; `nodePortAddresses: primary`
// then gives that family no CIDR, and a family without one accepts NodePorts on every local
// address (pkg/proxy/util/nodeport_addresses.go, NewNodePortAddresses); and the
// loadBalancerSourceRanges node check (pkg/proxy/nftables/proxier.go, allowFromNode) asks
// whether a range holds that loopback address.
import { describe, expect, it } from 'vitest';
import { type Env, compileObjects, probe, service, slice } from '../support/builders.js';
import type { IPFamily } from '../../src/model/ip.js';
import type { IPFamilies } from '../../src/model/config.js';
import type { Family, Ruleset } from '../../src/ir/types.js';

// The families a config names cannot be none, repeat one, or put IPv6 first (checked where
// test/ is type-checked).
// @ts-expect-error no family
export const NO_FAMILY: IPFamilies = [];
// @ts-expect-error one family twice
export const TWICE: IPFamilies = ['ipv4', 'ipv4'];
// @ts-expect-error IPv6 first
export const V6_FIRST: IPFamilies = ['ipv6', 'ipv4'];

// ---- the address plan ---------------------------------------------------------------------------
const N4 = '192.168.0.2', N6 = '2001:db8::2';
const POD4 = '10.244.9.9', POD6 = 'fd00:10:244::9:9';
const EP4 = '10.244.1.4', EP6 = 'fd00:10:244::1:6';
const HOST: readonly IPFamily[] = ['ipv4', 'ipv6']; // what the daemon finds on a host with IPv6 on

const nodePortService = (name: string, spec: Record<string, unknown>, nodePort: number, fams: readonly IPFamily[]): unknown[] => [
  service('ds', name, { type: 'NodePort', ports: [{ name: 'p', port: 80, nodePort }], ...spec }),
  ...fams.map((f) => slice('ds', name, `${name}-${f}`, [{ name: 'p', port: 80 }], [{ ip: f === 'ipv4' ? EP4 : EP6, node: 'node-b' }], f === 'ipv4' ? 'IPv4' : 'IPv6')),
];

/** What one table serves: each ClusterIP and where a pod's connection to it lands, the NodePorts and where they are accepted. */
interface Served { clusterIPs: Record<string, string[]>; nodePorts: number[]; nodePortsOn: string[] | 'every local address' }
type Tables = Partial<Record<Family, Served>>;

const ep4 = `${EP4}:80`, ep6 = `[${EP6}]:80`;
const SERVICES = [
  { name: 'single-stack IPv4', objects: nodePortService('v4', { clusterIP: '10.96.0.4' }, 30004, ['ipv4']),
    ip: { clusterIPs: { '10.96.0.4': [ep4] }, nodePorts: [30004] }, ip6: { clusterIPs: {}, nodePorts: [] } },
  { name: 'single-stack IPv6', objects: nodePortService('v6', { clusterIP: 'fd00:10:96::6', clusterIPs: ['fd00:10:96::6'], ipFamilies: ['IPv6'] }, 30006, ['ipv6']),
    ip: { clusterIPs: {}, nodePorts: [] }, ip6: { clusterIPs: { 'fd00:10:96::6': [ep6] }, nodePorts: [30006] } },
  { name: 'RequireDualStack', objects: nodePortService('dual', { clusterIP: '10.96.0.46', clusterIPs: ['10.96.0.46', 'fd00:10:96::46'], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack' }, 30046, ['ipv4', 'ipv6']),
    ip: { clusterIPs: { '10.96.0.46': [ep4] }, nodePorts: [30046] }, ip6: { clusterIPs: { 'fd00:10:96::46': [ep6] }, nodePorts: [30046] } },
];
const EVERY = 'every local address' as const;
const NODES: { name: string; nodeIPs: string[]; ip: Served['nodePortsOn']; ip6: Served['nodePortsOn'] }[] = [
  { name: 'lists IPv4 only', nodeIPs: [N4], ip: [N4], ip6: EVERY },
  { name: 'lists IPv6 only', nodeIPs: [N6], ip: EVERY, ip6: [N6] },
  { name: 'lists both', nodeIPs: [N4, N6], ip: [N4], ip6: [N6] },
  { name: 'lists none', nodeIPs: [], ip: EVERY, ip6: EVERY },
];

/** The tables of a ruleset, read back from the IR (and ClusterIPs through explain's tracer). */
function served(rs: Ruleset, cfg: Parameters<typeof probe>[1]): Tables {
  const out: Tables = {};
  for (const t of rs.tables) {
    const set = (name: string) => t.sets.find((s) => s.name === name);
    const clusterIPs: Record<string, string[]> = {};
    for (const el of set('cluster-ips')?.elements ?? []) {
      const ip = String(el.key[0]);
      const got = probe(rs, cfg, t.family === 'ip' ? POD4 : POD6, t.family === 'ip' ? `${ip}:80` : `[${ip}]:80`).got;
      clusterIPs[ip] = Array.isArray(got) ? got : [got];
    }
    const nodePortIPs = set('nodeport-ips');
    out[t.family] = {
      clusterIPs,
      nodePorts: (set('service-nodeports')?.elements ?? []).map((e) => Number(e.key[1])).sort(),
      // no nodeport-ips set: the base chain matches `fib daddr type local` (minus loopback)
      nodePortsOn: nodePortIPs ? nodePortIPs.elements.map((e) => String(e.key[0])) : EVERY,
    };
  }
  return out;
}

describe('a host that carries both families compiles both, whatever the Node lists', () => {
  const rows = NODES.flatMap((node) => SERVICES.map((svc) => ({ node, svc, title: `Node ${node.name}, ${svc.name} service` })));
  it.each(rows)('$title', ({ node, svc }) => {
    const { ruleset, cfg, diagnostics } = compileObjects(svc.objects, { nodeName: 'node-a', nodeIPs: node.nodeIPs, ipFamilies: HOST });
    expect(diagnostics).toEqual([]);
    expect(served(ruleset, cfg)).toEqual({
      ip: { ...svc.ip, nodePortsOn: node.ip },
      ip6: { ...svc.ip6, nodePortsOn: node.ip6 },
    });
  });
});

describe('--ip-families limits the families', () => {
  const dual = SERVICES[2]!.objects;
  it.each([
    { name: 'ipv4 on a Node that lists both: no ip6 table, the IPv6 ClusterIP is not proxied', nodeIPs: [N4, N6], ipFamilies: ['ipv4'] as const,
      want: { ip: { clusterIPs: { '10.96.0.46': [ep4] }, nodePorts: [30046], nodePortsOn: [N4] } }, v6: '' },
    { name: 'ipv6 on a Node that lists IPv4 only: the ip6 table alone, NodePorts on every local IPv6 address', nodeIPs: [N4], ipFamilies: ['ipv6'] as const,
      want: { ip6: { clusterIPs: { 'fd00:10:96::46': [ep6] }, nodePorts: [30046], nodePortsOn: EVERY } }, v6: [ep6] },
  ])('$name', ({ nodeIPs, ipFamilies, want, v6 }) => {
    const { ruleset, cfg } = compileObjects(dual, { nodeName: 'node-a', nodeIPs, ipFamilies });
    expect(served(ruleset, cfg)).toEqual(want);
    expect(probe(ruleset, cfg, POD6, '[fd00:10:96::46]:80').got).toEqual(v6);
  });
});

describe('nodePortAddresses CIDRs of one family: the other family accepts NodePorts on every local address, as kube-proxy', () => {
  it.each([
    { name: 'IPv4 CIDR only, Node lists both', nodePortAddresses: ['192.168.0.0/24'], ip: [N4], ip6: EVERY },
    { name: 'IPv6 CIDR only, Node lists both', nodePortAddresses: ['2001:db8::/64'], ip: EVERY, ip6: [N6] },
    { name: 'a CIDR of each family that no node IP is in: NodePorts nowhere', nodePortAddresses: ['10.1.0.0/16', '2001:db8:1::/64'], ip: [], ip6: [] },
  ])('$name', ({ nodePortAddresses, ip, ip6 }) => {
    const { ruleset, cfg } = compileObjects(SERVICES[2]!.objects, { nodeName: 'node-a', nodeIPs: [N4, N6], nodePortAddresses, ipFamilies: HOST });
    const t = served(ruleset, cfg);
    expect({ ip: t.ip?.nodePortsOn, ip6: t.ip6?.nodePortsOn }).toEqual({ ip, ip6 });
  });
});

// A LoadBalancer with source ranges: traffic to the LB IP from a source outside the ranges is
// dropped; the node's own traffic, which a VIP-on-the-node setup sends with the LB IP as its
// source, is let in when the node IP is inside a range. For a family the Node lists no address
// of, kube-proxy's node IP is that family's loopback.
describe('loadBalancerSourceRanges: the node check uses loopback for a family the Node lists no address of', () => {
  const LB6 = '2001:db8:ff::1';
  const lb = (ranges: string[]): unknown[] => [
    service('ds', 'lb', {
      type: 'LoadBalancer', clusterIPs: ['10.96.0.50', 'fd00:10:96::50'], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack',
      loadBalancerSourceRanges: ranges, ports: [{ name: 'p', port: 80, nodePort: 30050 }],
    }, { loadBalancer: { ingress: [{ ip: '1.2.3.4' }, { ip: LB6 }] } }),
    slice('ds', 'lb', 'lb-v6', [{ name: 'p', port: 80 }], [{ ip: EP6, node: 'node-b' }], 'IPv6'),
  ];
  /** the IPv6 firewall chain's allowed sources */
  const allowed = (env: Env, ranges: string[]): string[] => {
    const { ruleset } = compileObjects(lb(ranges), { ...env, ipFamilies: HOST });
    const fw = ruleset.tables.find((t) => t.family === 'ip6')!.chains.find((c) => c.owner !== undefined && c.name.startsWith('firewall-'));
    const m = fw?.rules[0]?.matches[0];
    return m && m.kind === 'addr' ? m.values.map((v) => (typeof v === 'string' ? v : v.text)) : [];
  };
  it.each([
    { name: 'Node lists IPv4 only, range 2001:db8::/32: ::1 is outside, the LB IP is not let in', nodeIPs: [N4], ranges: ['2001:db8::/32'], want: ['2001:db8::/32'] },
    { name: 'Node lists IPv4 only, range ::/0: ::1 is inside, the LB IP is let in', nodeIPs: [N4], ranges: ['::/0'], want: ['::/0', LB6] },
    { name: 'Node lists IPv4 only, range ::1/128: let in (kube-proxy does the same)', nodeIPs: [N4], ranges: ['::1/128'], want: ['::1/128', LB6] },
    { name: 'Node lists both, its IPv6 address inside the range: let in', nodeIPs: [N4, N6], ranges: ['2001:db8::/32'], want: ['2001:db8::/32', LB6] },
  ])('$name', ({ nodeIPs, ranges, want }) => {
    expect(allowed({ nodeName: 'node-a', nodeIPs }, ranges)).toEqual(want);
  });
});

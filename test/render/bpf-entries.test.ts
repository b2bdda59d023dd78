// What the BPF socket load balancer is given: exactly the ClusterIP destinations whose
// outcome a connect()-time rewrite reproduces; everything else stays with nftables.
import { describe, expect, it } from 'vitest';
import { LOCAL_PROBE_MAX } from '../../native/layout.js';
import { bpfKeptSources, bpfServices } from '../../src/compile/bpf-coverage.js';
import { deadUdpBackends, diffBpfServices, fmtKeptSource, renderBpfText } from '../../src/render/bpf-entries.js';
import { type Cidr, parseCidr } from '../../src/model/ip.js';
import { CLUSTER_ENV } from '../support/address-plan.js';
import { compileObjects, service, slice, type Env } from '../support/builders.js';
import { must } from '../support/must.js';

const ENV = CLUSTER_ENV;
const svc = (name: string, spec: Record<string, unknown>, status?: Record<string, unknown>) => service('ns', name, { clusterIP: '10.96.0.10', ports: [{ name: 'p', port: 80 }], ...spec }, status);
const eps = (name: string, list: { ip: string; node?: string; ready?: boolean; serving?: boolean; terminating?: boolean }[], proto: 'TCP' | 'UDP' | 'SCTP' = 'TCP') =>
  slice('ns', name, `${name}-1`, [{ name: 'p', port: 8080, protocol: proto }], list);

const rows: { title: string; objects: unknown[]; env?: Env; want: string[] }[] = [
  { title: 'ClusterIP: every cluster endpoint', objects: [svc('a', {}), eps('a', [{ ip: '10.244.1.1' }, { ip: '10.244.2.1' }])], want: ['10.96.0.10:80/tcp -> 10.244.1.1:8080 10.244.2.1:8080'] },
  { title: 'UDP is covered', objects: [svc('a', { ports: [{ name: 'p', port: 53, protocol: 'UDP' }] }), eps('a', [{ ip: '10.244.1.1' }], 'UDP')], want: ['10.96.0.10:53/udp -> 10.244.1.1:8080'] },
  { title: 'SCTP is left to nft', objects: [svc('a', { ports: [{ name: 'p', port: 53, protocol: 'SCTP' }] }), eps('a', [{ ip: '10.244.1.1' }], 'SCTP')], want: [] },
  { title: 'no endpoints: left to nft (REJECT)', objects: [svc('a', {})], want: [] },
  { title: 'iTP Local: only this node\'s endpoints', objects: [svc('a', { internalTrafficPolicy: 'Local' }), eps('a', [{ ip: '10.244.1.1', node: 'node-a' }, { ip: '10.244.2.1', node: 'node-b' }])], want: ['10.96.0.10:80/tcp local 1 -> 10.244.1.1:8080'] },
  { title: 'iTP Local, none here: left to nft (DROP)', objects: [svc('a', { internalTrafficPolicy: 'Local' }), eps('a', [{ ip: '10.244.2.1', node: 'node-b' }])], want: [] },
  { title: 'terminating fallback as the compiler chose', objects: [svc('a', {}), eps('a', [{ ip: '10.244.1.1', ready: false, serving: true, terminating: true }, { ip: '10.244.1.2', ready: false, serving: false, terminating: true }])], want: ['10.96.0.10:80/tcp -> 10.244.1.1:8080'] },
  { title: 'affinity carries its timeout', objects: [svc('a', { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }), eps('a', [{ ip: '10.244.1.1' }])], want: ['10.96.0.10:80/tcp affinity 60s -> 10.244.1.1:8080'] },
  { title: 'external, LB IPs and NodePorts stay with nft; the ClusterIP is covered', objects: [svc('a', { type: 'LoadBalancer', externalIPs: ['192.0.2.1'], ports: [{ name: 'p', port: 80, nodePort: 30080 }] }, { loadBalancer: { ingress: [{ ip: '198.51.100.1' }] } }), eps('a', [{ ip: '10.244.1.1' }])], want: ['10.96.0.10:80/tcp -> 10.244.1.1:8080'] },
  { title: '--masquerade-all: nothing (nft masquerades every ClusterIP connection)', objects: [svc('a', {}), eps('a', [{ ip: '10.244.1.1' }])], env: { ...ENV, masqueradeAll: true }, want: [] },
  { title: 'backends on this node come first, and are counted (the hairpin probe)', objects: [svc('a', {}), eps('a', [{ ip: '10.244.2.1', node: 'node-b' }, { ip: '10.244.1.2', node: 'node-a' }, { ip: '10.244.1.1', node: 'node-a' }])], want: ['10.96.0.10:80/tcp local 2 -> 10.244.1.1:8080 10.244.1.2:8080 10.244.2.1:8080'] },
  { title: 'a host-network endpoint on a node IP is on this node, whatever its nodeName', objects: [svc('a', {}), eps('a', [{ ip: '10.244.2.1', node: 'node-b' }, { ip: '192.168.0.2', node: 'node-b' }])], want: ['10.96.0.10:80/tcp local 1 -> 192.168.0.2:8080 10.244.2.1:8080'] },
  { title: `${LOCAL_PROBE_MAX} backends on this node: covered`, objects: [svc('a', {}), eps('a', Array.from({ length: LOCAL_PROBE_MAX }, (_, i) => ({ ip: `10.244.1.${i + 1}`, node: 'node-a' })))], want: [`10.96.0.10:80/tcp local ${LOCAL_PROBE_MAX} -> ${Array.from({ length: LOCAL_PROBE_MAX }, (_, i) => `10.244.1.${i + 1}`).sort().map((ip) => `${ip}:8080`).join(' ')}`] },
  { title: `${LOCAL_PROBE_MAX + 1} backends on this node: left to nft (each one is probed per connect())`, objects: [svc('a', {}), eps('a', Array.from({ length: LOCAL_PROBE_MAX + 1 }, (_, i) => ({ ip: `10.244.1.${i + 1}`, node: 'node-a' })))], want: [] },
  { title: 'IPv6 ClusterIP', objects: [svc('a', { clusterIP: 'fd00:10:96::a', ipFamilies: ['IPv6'] }), slice('ns', 'a', 'a-6', [{ name: 'p', port: 8080 }], [{ ip: 'fd00:10:244::1' }], 'IPv6')], want: ['[fd00:10:96::a]:80/tcp -> [fd00:10:244::1]:8080'] },
];

const short = (text: string): string[] => text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.replace(/ {2}count \d+/, '').replace(/ {2}/g, ' ').replace(/ +# .*$/, ''));

describe('bpfServices', () => {
  it.each(rows)('$title', ({ objects, env, want }) => {
    const { ruleset, cfg, diagnostics } = compileObjects(objects, env ?? ENV);
    expect(diagnostics).toEqual([]);
    expect(short(renderBpfText(bpfServices(ruleset.servicePorts, cfg)))).toEqual(want);
  });

  it('diff: a changed backend set is rewritten, a gone service removed, an unchanged one left alone', () => {
    const a = compileObjects([svc('a', {}), eps('a', [{ ip: '10.244.1.1' }]), svc('b', { clusterIP: '10.96.0.11' }), eps('b', [{ ip: '10.244.1.2' }]), svc('c', { clusterIP: '10.96.0.12' }), eps('c', [{ ip: '10.244.1.3' }])], ENV);
    const b = compileObjects([svc('a', {}), eps('a', [{ ip: '10.244.1.1' }, { ip: '10.244.1.9' }]), svc('c', { clusterIP: '10.96.0.12' }), eps('c', [{ ip: '10.244.1.3' }])], ENV);
    const d = diffBpfServices(bpfServices(a.ruleset.servicePorts, a.cfg), bpfServices(b.ruleset.servicePorts, b.cfg));
    expect(d.upsert.map((s) => s.label)).toEqual(['ns/a:p']);
    expect(d.remove.map((s) => s.label)).toEqual(['ns/b:p']);
  });
});

describe('bpfKeptSources: which bound sources nft\'s ClusterIP masquerade leaves alone (the rest go to nft)', () => {
  const cidrs = (...c: string[]): Cidr[] => c.map((x) => must(parseCidr(x)));
  it.each([
    { title: 'no --cluster-cidr: nothing is masqueraded, every source is kept', cidrs: [], want: ['::/0 kept', '0.0.0.0/0 kept'] },
    { title: 'an IPv4 cluster CIDR: it is kept, the rest of IPv4 masqueraded, IPv6 (no detector) kept', cidrs: ['10.244.0.0/16'], want: ['::/0 kept', '0.0.0.0/0 masquerade', '10.244.0.0/16 kept'] },
    { title: 'dual stack', cidrs: ['10.244.0.0/16', 'fd00:10:244::/56'], want: ['::/0 masquerade', '0.0.0.0/0 masquerade', '10.244.0.0/16 kept', 'fd00:10:244::/56 kept'] },
  ])('$title', ({ cidrs: c, want }) => {
    expect(bpfKeptSources(cidrs(...c)).map((k) => `${fmtKeptSource(k)} ${k.keep ? 'kept' : 'masquerade'}`)).toEqual(want);
  });
  it('dump --format bpf lists them after the services', () => {
    const text = renderBpfText([], bpfKeptSources(cidrs('10.244.0.0/16')));
    expect(text.split('\n').filter((l) => l.startsWith('source '))).toEqual(['source ::/0  kept', 'source 0.0.0.0/0  masquerade', 'source 10.244.0.0/16  kept']);
  });
});

describe('deadUdpBackends', () => {
  const entry = (addr: string, proto: 'tcp' | 'udp', backends: string[]) => ({ addr, port: 53, proto, backends: backends.map((b) => ({ addr: b, port: 5353 })), affinitySeconds: undefined, label: 'x' });
  it.each([
    { title: 'a UDP backend that left is dead', prev: [entry('10.96.0.10', 'udp', ['10.244.0.1', '10.244.0.2'])], next: [entry('10.96.0.10', 'udp', ['10.244.0.2'])], want: ['10.244.0.1'] },
    { title: 'a whole UDP service gone: all its backends', prev: [entry('10.96.0.10', 'udp', ['10.244.0.1'])], next: [], want: ['10.244.0.1'] },
    { title: 'TCP is never destroyed (connections finish, as with conntrack)', prev: [entry('10.96.0.10', 'tcp', ['10.244.0.1'])], next: [], want: [] },
    { title: 'still serving another UDP service at the same address:port: alive', prev: [entry('10.96.0.10', 'udp', ['10.244.0.1']), entry('10.96.0.11', 'udp', ['10.244.0.1'])], next: [entry('10.96.0.11', 'udp', ['10.244.0.1'])], want: [] },
    { title: 'unchanged: nothing', prev: [entry('10.96.0.10', 'udp', ['10.244.0.1'])], next: [entry('10.96.0.10', 'udp', ['10.244.0.1'])], want: [] },
  ])('$title', ({ prev, next, want }) => {
    expect(deadUdpBackends(prev as never, next as never).map((b) => b.addr)).toEqual(want);
  });
});

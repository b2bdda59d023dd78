// Every class of bad input: the object is skipped with a sentence naming it, the rest compiles.
import { describe, expect, it } from 'vitest';
import { buildModel } from '../../src/model/build-model.js';
import { type DiagnosticCode, formatDiagnostic } from '../../src/model/diagnostic.js';
import { service, slice } from '../support/builders.js';

const good = service('ok', 'fine', { clusterIP: '10.96.0.1', ports: [{ port: 80 }] });
const svc = (spec: Record<string, unknown>, name = 'bad') => service('ns', name, { clusterIP: '10.96.0.2', ports: [{ port: 80 }], ...spec });

// A code is one the model produces: a typo here, in a metric label or in the manifest
// watcher's comparisons does not compile.
// @ts-expect-error 'nodeport-conflicts' is not a DiagnosticCode
const typo: DiagnosticCode = 'nodeport-conflicts';
void typo;

describe('bad objects are skipped with a reason naming them', () => {
  it.each<{ name: string; obj: unknown; code: DiagnosticCode; reason: RegExp }>([
    { name: 'bad clusterIP', obj: svc({ clusterIP: '10.96.0.999' }), code: 'invalid-ip', reason: /clusterIP "10.96.0.999" is not an IP address/ },
    { name: 'port out of range', obj: svc({ ports: [{ port: 70000 }] }), code: 'invalid-port', reason: /port 70000 is not in 1-65535/ },
    { name: 'port zero', obj: svc({ ports: [{ port: 0 }] }), code: 'invalid-port', reason: /not in 1-65535/ },
    { name: 'port as a string', obj: svc({ ports: [{ port: '80' }] }), code: 'invalid-port', reason: /not in 1-65535/ },
    { name: 'unknown protocol', obj: svc({ ports: [{ port: 80, protocol: 'ICMP' }] }), code: 'invalid-protocol', reason: /protocol ICMP is not TCP, UDP or SCTP/ },
    { name: 'duplicate ports', obj: svc({ ports: [{ name: 'a', port: 80 }, { name: 'b', port: 80 }] }), code: 'duplicate-port', reason: /80\/TCP is listed twice/ },
    { name: 'duplicate port names', obj: svc({ ports: [{ name: 'a', port: 80 }, { name: 'a', port: 81 }] }), code: 'duplicate-port', reason: /port name a is used twice/ },
    { name: 'absurdly long name', obj: svc({}, 'x'.repeat(300)), code: 'invalid-name', reason: /not a valid DNS-1123 label/ },
    { name: 'name with nft syntax', obj: svc({}, 'a"; flush ruleset; #'), code: 'invalid-name', reason: /not a valid DNS-1123 label/ },
    { name: 'bad externalIP', obj: svc({ externalIPs: ['::g'] }), code: 'invalid-ip', reason: /externalIPs/ },
    { name: 'bad source range', obj: svc({ type: 'LoadBalancer', loadBalancerSourceRanges: ['10.0.0.0/33'] }), code: 'invalid-cidr', reason: /prefix too long/ },
    { name: 'bad traffic policy', obj: svc({ externalTrafficPolicy: 'Sometimes' }), code: 'invalid-policy', reason: /externalTrafficPolicy Sometimes/ },
    { name: 'affinity timeout out of range', obj: svc({ sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } } }), code: 'invalid-affinity', reason: /timeoutSeconds 0/ },
  ])('$name', ({ obj, code, reason }) => {
    const { model, diagnostics } = buildModel([{ object: obj }, { object: good }]);
    expect(diagnostics).toHaveLength(1);
    expect(diagnostics[0]!.code).toBe(code);
    expect(diagnostics[0]!.reason).toMatch(reason);
    expect(formatDiagnostic(diagnostics[0]!)).toMatch(/^skip Service ns\//);
    expect(model.services.map((s) => s.ref.name)).toEqual(['fine']);
  });

  it('a nodePort collision skips the later service and names the owner', () => {
    const a = service('ns', 'a', { type: 'NodePort', clusterIP: '10.96.0.3', ports: [{ port: 80, nodePort: 30080 }] });
    const b = service('ns', 'b', { type: 'NodePort', clusterIP: '10.96.0.4', ports: [{ port: 80, nodePort: 30080 }] });
    const { model, diagnostics } = buildModel([{ object: b }, { object: a }]);
    expect(model.services.map((s) => s.ref.name)).toEqual(['a']);
    expect(formatDiagnostic(diagnostics[0]!)).toBe('skip Service ns/b: nodePort 30080/TCP already used by ns/a');
  });

  it('a slice with a bad endpoint address is skipped, its service stays', () => {
    const s = slice('ok', 'fine', 'fine-x', [{ port: 80 }], [{ ip: '10.1.1.300' }]);
    const { model, diagnostics } = buildModel([{ object: good }, { object: s }]);
    expect(formatDiagnostic(diagnostics[0]!)).toMatch(/^skip EndpointSlice ok\/fine-x: endpoint "10.1.1.300" is not an IP address/);
    expect(model.services).toHaveLength(1);
  });
});

describe('never a reason to skip', () => {
  it('annotations and labels full of JSON and nft syntax', () => {
    const o = service('ns', 'web', { clusterIP: '10.96.0.5', ports: [{ port: 80 }] });
    (o.metadata as Record<string, unknown>).annotations = { 'kubectl.kubernetes.io/last-applied-configuration': '{}":,{"a":"; flush ruleset; }' };
    (o.metadata as Record<string, unknown>).labels = { junk: '{}":,' };
    const { model, diagnostics } = buildModel([{ object: o }]);
    expect(diagnostics).toEqual([]);
    expect(model.services).toHaveLength(1);
  });
});

describe('ignored on purpose, as kube-proxy', () => {
  it.each([
    { name: 'headless', obj: service('ns', 'h', { clusterIP: 'None', ports: [{ port: 80 }] }) },
    { name: 'ExternalName', obj: service('ns', 'e', { type: 'ExternalName', externalName: 'example.com' }) },
    { name: 'another proxy', obj: { ...service('ns', 'p', { clusterIP: '10.96.0.6', ports: [{ port: 80 }] }), metadata: { namespace: 'ns', name: 'p', labels: { 'service.kubernetes.io/service-proxy-name': 'other' } } } },
  ])('$name', ({ obj }) => {
    const { model, diagnostics, ignored } = buildModel([{ object: obj }]);
    expect(model.services).toEqual([]);
    expect(diagnostics).toEqual([]);
    expect(ignored).toHaveLength(1);
  });

  it('a service labelled with our own proxy name is ours', () => {
    const o = { ...service('ns', 'p', { clusterIP: '10.96.0.6', ports: [{ port: 80 }] }), metadata: { namespace: 'ns', name: 'p', labels: { 'service.kubernetes.io/service-proxy-name': 'nftproxy' } } };
    expect(buildModel([{ object: o }]).model.services).toHaveLength(1);
  });
});

describe('normalization (TestBadIPs)', () => {
  it.each([
    ['172.30.0.041', '172.30.0.41'], ['1.2.3.004', '1.2.3.4'], ['192.168.099.022', '192.168.99.22'], ['10.180.00.001', '10.180.0.1'],
  ])('clusterIP %s -> %s', (raw, want) => {
    const { model } = buildModel([{ object: service('ns', 's', { clusterIP: raw, ports: [{ port: 80 }] }) }]);
    expect(model.services[0]!.clusterIPs[0]).toBe(want);
  });
  it('source range 203.0.113.000/025 -> 203.0.113.0/25, spaces tolerated', () => {
    const { model } = buildModel([{ object: service('ns', 's', { type: 'LoadBalancer', clusterIP: '10.96.0.7', ports: [{ port: 80 }], loadBalancerSourceRanges: [' 203.0.113.000/025 '] }) }]);
    expect(model.services[0]!.loadBalancerSourceRanges[0]!.text).toBe('203.0.113.0/25');
  });
  it('an LB ingress with ipMode Proxy is not programmed', () => {
    const { model } = buildModel([{ object: service('ns', 's', { type: 'LoadBalancer', clusterIP: '10.96.0.8', ports: [{ port: 80 }] }, { loadBalancer: { ingress: [{ ip: '1.2.3.4', ipMode: 'Proxy' }, { ip: '5.6.7.8', ipMode: 'VIP' }, { ip: '9.9.9.9' }] } }) }]);
    expect(model.services[0]!.loadBalancerIPs).toEqual(['5.6.7.8', '9.9.9.9']);
  });
});

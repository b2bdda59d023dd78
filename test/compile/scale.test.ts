// Scale without a stack overflow: pushing a 250,000-element array with push(...array)
// overflowed V8's call stack in the compiler (found by make bench at 5k services x 50
// endpoints). One service with 150,000 endpoints exercises every path that grows with the
// table: the hairpin set, the endpoint-count map, the full transaction (kernel objects, the
// netlink batch and its text), JSON.
import { describe, expect, it } from 'vitest';
import { encodeBatch } from '../../src/apply/netlink/encode.js';
import { renderJson } from '../../src/render/nft-json.js';
import { kernelFamilyOfTable } from '../../src/render/kernel/family.js';
import { fullOps } from '../../src/render/kernel/ops.js';
import { tablesText } from '../../src/render/kernel/text.js';
import { compileObjects, service } from '../support/builders.js';

describe('scale', () => {
  it('a service with 150,000 endpoints compiles and renders', () => {
    const N = 150_000;
    const slice = {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { namespace: 'big', name: 'web-1', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      endpoints: Array.from({ length: N }, (_, i) => ({ addresses: [`10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`], nodeName: 'node-a', conditions: { ready: true } })),
    };
    const { ruleset, diagnostics } = compileObjects([service('big', 'web', { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80 }] }), slice], { nodeName: 'node-a', nodeIPs: ['192.168.0.2'] });
    expect(diagnostics).toEqual([]);
    const t = ruleset.tables[0]!;
    expect(t.sets.find((s) => s.name === 'hairpin-endpoints')!.elements).toHaveLength(N);
    const fams = ruleset.tables.map(kernelFamilyOfTable);
    const batch = encodeBatch(fullOps(fams, fams.map((f) => f.head)), 1);
    expect(batch.ops).toBeGreaterThan(2 * N);
    expect(batch.chunks.length).toBeGreaterThan(1);
    expect(tablesText(fams).split('\n').length).toBeGreaterThan(2 * N);
    expect(renderJson(ruleset).length).toBeGreaterThan(N);
  }, 60_000);
});

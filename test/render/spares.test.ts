// Spare endpoint-count groups (render/kernel/spares.ts): which groups a set of groups in use
// wants made beside it. One row: the groups in use, the spares.
import { describe, expect, it } from 'vitest';
import { countGroupObjects, spareGroupNames } from '../../src/render/kernel/spares.js';

const ROWS: { what: string; live: string[]; spares: string[] }[] = [
  { what: 'one count: the counts one below and one above', live: ['dnat-cluster-10'], spares: ['dnat-cluster-9', 'dnat-cluster-11'] },
  { what: 'count 1: no count 0', live: ['dnat-cluster-1'], spares: ['dnat-cluster-2'] },
  { what: 'neighbours in use are no spares', live: ['dnat-cluster-2', 'dnat-cluster-3', 'dnat-cluster-4'], spares: ['dnat-cluster-1', 'dnat-cluster-5'] },
  { what: 'two counts apart: the count between is one spare', live: ['dnat-cluster-2', 'dnat-cluster-4'], spares: ['dnat-cluster-1', 'dnat-cluster-3', 'dnat-cluster-5'] },
  { what: 'per policy: a local count wants local spares', live: ['dnat-cluster-3', 'dnat-local-1'], spares: ['dnat-cluster-2', 'dnat-cluster-4', 'dnat-local-2'] },
  { what: 'shared chains and masquerade chains bring none', live: ['external-shared-0123456789abcdef', 'dnat-cluster-2-masq'], spares: [] },
  { what: 'nothing in use, nothing spare', live: [], spares: [] },
];

describe('spare groups', () => {
  it.each(ROWS)('$what', ({ live, spares }) => {
    expect([...spareGroupNames(live)].sort()).toEqual([...spares].sort());
  });

  it('a spare is made as the group of its count: two maps, four dispatch sets, the chain and its masquerade chain', () => {
    const g = countGroupObjects('ip', 'dnat-cluster-4');
    expect(g.maps.map((m) => m.name)).toEqual(['endpoints-cluster-4', 'nodeport-endpoints-cluster-4', 'service-ips-dnat-cluster-4', 'service-nodeports-dnat-cluster-4', 'service-ips-dnat-cluster-4-masq', 'service-nodeports-dnat-cluster-4-masq']);
    expect(g.chains.map((c) => c.name)).toEqual(['dnat-cluster-4', 'dnat-cluster-4-masq']);
    expect(countGroupObjects('ip6', 'dnat-local-2').chains.map((c) => c.name)).toEqual(['dnat-local-2']);
    expect(() => countGroupObjects('ip', 'external-shared-01')).toThrow(/not an endpoint-count group/);
  });
});

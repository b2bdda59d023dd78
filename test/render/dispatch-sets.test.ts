// Dispatch sets (render/lower-dnat.ts: DISPATCH_CHAIN) and the ordered transactions that move a
// key between them (render/kernel/diff.ts). Each row is a partial sync: the services' endpoint
// counts before and after, and the ops of each transaction, summarized as `op object`. What
// the rows say: a move between counts in use adds no rule and no verdict, so the kernel never
// validates the table for it; the old dispatch entry goes one transaction after the new one
// came (retire), its endpoints one after that (clean); a count next to one in use has its
// group made already (a spare), so moving there is data alone too; a new count's group and its
// dispatch rule are made together, before any key points at them; a group's rules go before
// its sets, deleted one by one (a deletion never makes the kernel validate).
import { describe, expect, it } from 'vitest';
import { compileParts } from '../../src/compile/compile.js';
import { buildModel } from '../../src/model/build-model.js';
import { AppliedFamily, PHASE_ORDER, asOneTransaction } from '../../src/render/kernel/diff.js';
import { kernelFamily } from '../../src/render/kernel/family.js';
import type { Op } from '../../src/render/kernel/ops.js';
import { config, service, slice } from '../support/builders.js';
import { CLUSTER_ENV } from '../support/address-plan.js';

const ENV = { ...CLUSTER_ENV, ipFamilies: ['ipv4' as const] };

/** ClusterIP services, each with its endpoint count (name -> count), as the daemon's path makes them */
function family(counts: Record<string, number>) {
  const objects = Object.entries(counts).flatMap(([name, n], i) => [
    service('shop', name, { clusterIP: `10.96.7.${i + 1}`, ports: [{ name: 'http', port: 80 }] }),
    slice('shop', name, `${name}-1`, [{ name: 'http', port: 8080 }], Array.from({ length: n }, (_, k) => ({ ip: `10.244.${i + 1}.${k + 1}` }))),
  ]);
  const { model, diagnostics } = buildModel(objects.map((object) => ({ object })));
  expect(diagnostics).toEqual([]);
  return kernelFamily(compileParts(model, config(ENV))[0]!);
}

/** `op object` per op (elements counted), a run of the same written once with its length */
function summary(ops: readonly Op[]): string[] {
  const out: string[] = [];
  let last = '', n = 0;
  const flush = (): void => { if (n) out.push(n > 1 ? `${last} x${n}` : last); };
  for (const op of ops) {
    const s = op.op === 'add-elements' || op.op === 'delete-elements' ? `${op.op} ${op.set} (${[...op.elements].length})`
      : op.op === 'add-set' ? `add-set ${op.set.name}`
        : op.op === 'add-chain' ? `add-chain ${op.chain.name}`
          : op.op === 'add-rule' ? `add-rule ${op.chain}`
            : op.op === 'delete-rule' ? `delete-rule ${op.chain} @${op.lookup}`
            : op.op === 'flush-chain' || op.op === 'delete-chain' || op.op === 'delete-set' ? `${op.op} ${op.name}` : op.op;
    if (s === last) { n++; continue; }
    flush();
    last = s; n = 1;
  }
  flush();
  return out;
}

/** ops that make the kernel validate the whole table at their commit (a rule, or a verdict that goes somewhere) */
const validates = (ops: readonly Op[]): boolean =>
  ops.some((op) => op.op === 'add-rule' || (op.op === 'add-elements' && [...op.elements].some((e) => e.data?.kind === 'verdict' && 'chain' in e.data.verdict)));

/** the ops that make count n's group (a cluster group: its chain and its masquerade chain, two maps, four dispatch sets) */
const groupMade = (n: number): string[] => [
  `add-set endpoints-cluster-${n}`, `add-set nodeport-endpoints-cluster-${n}`,
  `add-set service-ips-dnat-cluster-${n}`, `add-set service-nodeports-dnat-cluster-${n}`, `add-set service-ips-dnat-cluster-${n}-masq`, `add-set service-nodeports-dnat-cluster-${n}-masq`,
  `add-chain dnat-cluster-${n}`, `add-chain dnat-cluster-${n}-masq`, `add-rule dnat-cluster-${n} x2`, `add-rule dnat-cluster-${n}-masq x2`,
];

// Every count in use has the groups of the counts next to it made as spares
// (render/kernel/spares.ts): in these rows, counts 2 and 3 in use make 1 and 4 spares.
// `spares` is what the applier makes after the change was acknowledged (spareWork): the
// spares the new counts want and the kernel does not hold yet.
const ROWS: { what: string; before: Record<string, number>; after: Record<string, number>; make: string[]; switch: string[]; retire: string[]; clean: string[]; validated: string[]; spares: string[] }[] = [
  {
    what: 'into a count another service uses: data alone',
    before: { a: 3, b: 2, c: 2 }, after: { a: 3, b: 3, c: 2 },
    make: ['add-elements endpoints-cluster-3 (3)'],
    switch: ['add-elements hairpin-endpoints (1)', 'add-elements service-ips-dnat-cluster-3 (1)'],
    retire: ['delete-elements service-ips-dnat-cluster-2 (1)'],
    clean: ['delete-elements endpoints-cluster-2 (2)'],
    validated: [], spares: [],
  },
  {
    what: 'out of a count others still use, into one in use: data alone',
    before: { a: 3, b: 3, c: 2 }, after: { a: 3, b: 2, c: 2 },
    make: ['add-elements endpoints-cluster-2 (2)'],
    switch: ['add-elements service-ips-dnat-cluster-2 (1)'],
    retire: ['delete-elements service-ips-dnat-cluster-3 (1)'],
    clean: ['delete-elements hairpin-endpoints (1)', 'delete-elements endpoints-cluster-3 (3)'],
    validated: [], spares: [],
  },
  {
    what: 'into a count no other service uses, one above a count in use: its spare group is there, data alone; the spare it wants next is made after',
    before: { a: 3, b: 2, c: 2 }, after: { a: 3, b: 4, c: 2 },
    make: ['add-elements endpoints-cluster-4 (4)'],
    switch: ['add-elements hairpin-endpoints (2)', 'add-elements service-ips-dnat-cluster-4 (1)'],
    retire: ['delete-elements service-ips-dnat-cluster-2 (1)'],
    clean: ['delete-elements endpoints-cluster-2 (2)'],
    validated: [],
    spares: [
      ...groupMade(5),
      // groups 1 to 5, each with its -masq chain, then the NodePort rule; the NodePort lookup, then the same ten
      'flush-chain service-groups', 'add-rule service-groups x11', 'flush-chain nodeport-services', 'add-rule nodeport-services x11',
    ],
  },
  {
    what: 'into a count with no group (two above any in use): its group and dispatch rule made together, one validation',
    before: { a: 3, b: 2, c: 2 }, after: { a: 3, b: 5, c: 2 },
    make: [
      ...groupMade(5),
      'flush-chain service-groups', 'add-rule service-groups x11', 'flush-chain nodeport-services', 'add-rule nodeport-services x11',
      'add-elements endpoints-cluster-5 (5)',
    ],
    switch: ['add-elements hairpin-endpoints (3)', 'add-elements service-ips-dnat-cluster-5 (1)'],
    retire: ['delete-elements service-ips-dnat-cluster-2 (1)'],
    clean: ['delete-elements endpoints-cluster-2 (2)'],
    validated: ['make'],
    spares: [
      ...groupMade(6),
      'flush-chain service-groups', 'add-rule service-groups x13', 'flush-chain nodeport-services', 'add-rule nodeport-services x13',
    ],
  },
  {
    what: 'the last service leaves a count next to one in use: its group stays, a spare; the spare nobody neighbours any more goes (rules by handle, no validation)',
    before: { a: 3, b: 4, c: 2 }, after: { a: 3, b: 2, c: 2 },
    make: ['add-elements endpoints-cluster-2 (2)'],
    switch: ['add-elements service-ips-dnat-cluster-2 (1)'],
    retire: ['delete-elements service-ips-dnat-cluster-4 (1)'],
    clean: [
      'delete-rule service-groups @service-ips-dnat-cluster-5', 'delete-rule nodeport-services @service-nodeports-dnat-cluster-5',
      'delete-rule service-groups @service-ips-dnat-cluster-5-masq', 'delete-rule nodeport-services @service-nodeports-dnat-cluster-5-masq',
      'delete-elements hairpin-endpoints (2)', 'delete-elements endpoints-cluster-4 (4)',
      'flush-chain dnat-cluster-5', 'flush-chain dnat-cluster-5-masq', 'delete-chain dnat-cluster-5', 'delete-chain dnat-cluster-5-masq',
      'delete-set endpoints-cluster-5', 'delete-set nodeport-endpoints-cluster-5',
      'delete-set service-ips-dnat-cluster-5', 'delete-set service-nodeports-dnat-cluster-5', 'delete-set service-ips-dnat-cluster-5-masq', 'delete-set service-nodeports-dnat-cluster-5-masq',
    ],
    validated: [], spares: [],
  },
  {
    what: 'the last service leaves a count nobody neighbours: its group goes with its spare, rules before sets and chains',
    before: { a: 1, b: 3 }, after: { a: 1, b: 1 },
    make: ['add-elements endpoints-cluster-1 (1)'],
    switch: ['add-elements service-ips-dnat-cluster-1 (1)'],
    retire: ['delete-elements service-ips-dnat-cluster-3 (1)'],
    clean: [
      'delete-rule service-groups @service-ips-dnat-cluster-3', 'delete-rule nodeport-services @service-nodeports-dnat-cluster-3',
      'delete-rule service-groups @service-ips-dnat-cluster-3-masq', 'delete-rule nodeport-services @service-nodeports-dnat-cluster-3-masq',
      'delete-rule service-groups @service-ips-dnat-cluster-4', 'delete-rule nodeport-services @service-nodeports-dnat-cluster-4',
      'delete-rule service-groups @service-ips-dnat-cluster-4-masq', 'delete-rule nodeport-services @service-nodeports-dnat-cluster-4-masq',
      'delete-elements hairpin-endpoints (2)', 'delete-elements endpoints-cluster-3 (3)',
      'flush-chain dnat-cluster-3', 'flush-chain dnat-cluster-3-masq', 'flush-chain dnat-cluster-4', 'flush-chain dnat-cluster-4-masq',
      'delete-chain dnat-cluster-3', 'delete-chain dnat-cluster-3-masq', 'delete-chain dnat-cluster-4', 'delete-chain dnat-cluster-4-masq',
      'delete-set endpoints-cluster-3', 'delete-set nodeport-endpoints-cluster-3',
      'delete-set service-ips-dnat-cluster-3', 'delete-set service-nodeports-dnat-cluster-3', 'delete-set service-ips-dnat-cluster-3-masq', 'delete-set service-nodeports-dnat-cluster-3-masq',
      'delete-set endpoints-cluster-4', 'delete-set nodeport-endpoints-cluster-4',
      'delete-set service-ips-dnat-cluster-4', 'delete-set service-nodeports-dnat-cluster-4', 'delete-set service-ips-dnat-cluster-4-masq', 'delete-set service-nodeports-dnat-cluster-4-masq',
    ],
    validated: [], spares: [],
  },
];

describe('dispatch sets: the transactions of a move between endpoint counts', () => {
  it.each(ROWS)('$what', (row) => {
    const applied = AppliedFamily.of(family(row.before));
    const delta = applied.diff(family(row.after));
    expect(delta).toBeDefined();
    const p = delta!.phases;
    expect({ make: summary(p.make), switch: summary(p.switch), retire: summary(p.retire), clean: summary(p.clean) })
      .toEqual({ make: row.make, switch: row.switch, retire: row.retire, clean: row.clean });
    expect((['make', 'switch', 'retire', 'clean'] as const).filter((k) => validates(p[k]))).toEqual(row.validated);
    delta!.commit();
    expect(summary(applied.spareWork()?.ops ?? [])).toEqual(row.spares);
  });

  it('after the spares are made, nothing is missing: a full sync of the same state holds the same groups', () => {
    const applied = AppliedFamily.of(family({ a: 3, b: 2, c: 2 }));
    const delta = applied.diff(family({ a: 3, b: 4, c: 2 }))!;
    delta.commit();
    applied.spareWork()!.commit();
    expect(applied.spareWork()).toBeUndefined();
    const fresh = AppliedFamily.of(family({ a: 3, b: 4, c: 2 }));
    expect(fresh.spareWork()).toBeUndefined();
  });
});

describe('the same moves as one transaction (the tests\' control: what the order prevents)', () => {
  it('a group that comes and one that goes: the refill leaves out the rules the clean would delete by handle (no handle exists yet)', () => {
    // counts 2 and 3 in use (spares 1 and 4) -> 3 and 6: group 6 is made, spare 1 goes (2, 4, 5 and 7 are wanted)
    const delta = AppliedFamily.of(family({ a: 3, b: 2 })).diff(family({ a: 3, b: 6 }))!;
    const ordered = PHASE_ORDER.flatMap((k) => delta.phases[k]);
    expect(summary(ordered).filter((s) => s.startsWith('delete-rule'))).toHaveLength(4);
    const one = asOneTransaction(ordered);
    expect(summary(one).filter((s) => s.includes('service-groups') || s.includes('nodeport-services'))).toEqual([
      // groups 2, 3, 4 and 6 with their -masq chains, the NodePort rule; the NodePort lookup, the same eight
      'flush-chain service-groups', 'add-rule service-groups x9', 'flush-chain nodeport-services', 'add-rule nodeport-services x9',
    ]);
    expect(one.length).toBe(ordered.length - 4 - 4);
  });
});

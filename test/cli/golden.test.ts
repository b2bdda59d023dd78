// What `explain` and `dump --format bpf` print for the README's examples (examples/, compiled
// for node-a), reviewed like code: a diff in test/cli/__golden__/ is a behaviour change.
// Regenerate on purpose only: npx vitest run test/cli/golden.test.ts -u
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { CLUSTER, CLUSTER_ENV, envFlags } from '../support/address-plan.js';

const FLAGS = ['-f', 'examples/', ...envFlags(CLUSTER_ENV)];
const POD = '10.244.1.5', OUTSIDE = '203.0.113.7';

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await main(args, { out: (s) => { out += s; }, err: (s) => { err += s; } });
  return { code, out, err };
}

// One row per kind of answer explain gives (examples/ holds the services).
const EXPLAIN = [
  { name: 'clusterip-endpoints', what: 'a pod to a ClusterIP with endpoints (shop/web, named targetPort)', src: POD, dst: '10.96.0.10:80' },
  { name: 'nodeport-masquerade', what: 'a client outside the cluster to a NodePort: masqueraded', src: OUTSIDE, dst: `${CLUSTER.node}:30080` },
  { name: 'no-endpoints-reject', what: 'a ClusterIP without endpoints: rejected', src: POD, dst: '10.96.0.90:80' },
  { name: 'unallocated-drop', what: 'an address in --service-cidr no service has: dropped', src: POD, dst: '10.96.0.99:80' },
  { name: 'etp-local', what: 'outside to an eTP Local LB IP: this node\'s endpoint only, client IP kept', src: OUTSIDE, dst: '203.0.113.40:80' },
];

describe('explain', () => {
  for (const row of EXPLAIN) {
    describe(`${row.name}: ${row.what}`, () => {
      const args = ['explain', ...FLAGS, '--src', row.src, '--dst', row.dst];
      it('text', async () => {
        const r = await run(args);
        expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: '' });
        await expect(r.out).toMatchFileSnapshot(`__golden__/explain-${row.name}.txt`);
      });
      it('--json', async () => {
        const r = await run([...args, '--json']);
        expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: '' });
        await expect(r.out).toMatchFileSnapshot(`__golden__/explain-${row.name}.json`);
      });
    });
  }
});

describe('dump --format bpf', () => {
  it('the socket load balancer\'s entries for examples/', async () => {
    const r = await run(['dump', ...FLAGS, '--format', 'bpf']);
    expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: '' });
    await expect(r.out).toMatchFileSnapshot('__golden__/dump-bpf.txt');
  });
});

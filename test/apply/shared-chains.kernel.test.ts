// Shared chains in the real kernel, as partial syncs make and delete them: an
// externalTrafficPolicy=Local port's external chain, once both its targets are endpoint-count
// chains, is `external-shared-<hash of its rules>`, one for every port whose chain would be the
// same, made with the first port that needs it and deleted with the last (lower-dnat.ts:
// sharedName). Each row is the cluster's state after a sync and the chains the kernel then holds.
import { describe, expect, it } from 'vitest';
import { Applier } from '../../src/apply/applier.js';
import { NetlinkWriter } from '../../src/apply/netlink/writer.js';
import { canUseKernel, KERNEL_SKIP_REASON, withNetns } from '../lab/netns.js';
import { compileObjects, service, slice } from '../support/builders.js';
import { CLUSTER, CLUSTER_ENV } from '../support/address-plan.js';

const ENV = { ...CLUSTER_ENV, ipFamilies: ['ipv4' as const] };

/** An eTP=Local LoadBalancer service: `cluster` endpoints elsewhere, `local` on this node. */
function etpLocal(name: string, n: number, cluster: number, local: number): Record<string, unknown>[] {
  return [
    service('shop', name, {
      type: 'LoadBalancer', clusterIP: `10.96.1.${n}`, externalTrafficPolicy: 'Local', healthCheckNodePort: 32000 + n,
      ports: [{ name: 'http', port: 80, nodePort: 31000 + n }],
    }, { loadBalancer: { ingress: [{ ip: `203.0.113.${n}` }] } }),
    slice('shop', name, `${name}-1`, [{ name: 'http', port: 8080 }], [
      ...Array.from({ length: local }, (_, i) => ({ ip: `10.244.${n}.${i + 1}`, node: CLUSTER.nodeName })),
      ...Array.from({ length: cluster - local }, (_, i) => ({ ip: `10.244.${n}.${i + 101}`, node: 'elsewhere' })),
    ]),
  ];
}

// one row per sync: the services and their endpoint counts (cluster-wide, this node's) ->
// how many shared external chains, and whether any service still has an external chain of its own
const ROWS: { what: string; services: [string, number, number, number][]; shared: number }[] = [
  { what: 'two ports with the same counts share one chain', services: [['a', 1, 3, 1], ['b', 2, 3, 1]], shared: 1 },
  { what: 'one port\'s cluster-wide count changes: a second chain, the first still used', services: [['a', 1, 2, 1], ['b', 2, 3, 1]], shared: 2 },
  { what: 'the other follows: the first chain has no user left and goes', services: [['a', 1, 2, 1], ['b', 2, 2, 1]], shared: 1 },
  { what: 'no local endpoint: a chain that ends without a goto, shared too', services: [['a', 1, 2, 0], ['b', 2, 2, 0]], shared: 1 },
  { what: 'one port removed: its chain stays for the other', services: [['b', 2, 2, 0]], shared: 1 },
  { what: 'the last port removed: no shared chain left', services: [], shared: 0 },
];

describe.skipIf(!canUseKernel)(`shared external chains${canUseKernel ? '' : ` (${KERNEL_SKIP_REASON})`}`, () => {
  it('are made with their first port and deleted with their last, by partial syncs', async () => {
    await withNetns('shared', async (exec) => {
      const ns = (await exec(['ip', 'netns', 'identify'])).stdout.trim();
      const writer = new NetlinkWriter({ netns: `/run/netns/${ns}` });
      const applier = new Applier(writer);
      const chains = async (): Promise<string[]> => {
        const r = await exec(['nft', '-j', 'list', 'chains', 'ip']);
        return (JSON.parse(r.stdout) as { nftables: { chain?: { table: string; name: string } }[] }).nftables.flatMap((o) => (o.chain?.table === 'nftproxy' ? [o.chain.name] : []));
      };
      try {
        for (const [i, row] of ROWS.entries()) {
          const objects = row.services.flatMap(([name, n, cluster, local]) => etpLocal(name, n, cluster, local));
          const r = await applier.syncRuleset(compileObjects(objects, ENV).ruleset);
          expect(r.kind, row.what).toBe(i === 0 ? 'full' : 'partial');
          // the spare groups the change left wanted, as the daemon makes them after it (render/kernel/spares.ts)
          await applier.makeSpares();
          const names = await chains();
          expect(names.filter((c) => c.startsWith('external-shared-')), row.what).toHaveLength(row.shared);
          expect(names.filter((c) => c.startsWith('external-') && !c.startsWith('external-shared-')), row.what).toEqual([]);
          // the kernel holds what a full sync of the same state would: nothing stale, nothing missing
          const fresh = new Applier(writer);
          expect((await fresh.syncRuleset(compileObjects(objects, ENV).ruleset)).kind).toBe('full');
          expect((await chains()).sort(), row.what).toEqual([...names].sort());
        }
      } finally {
        await writer.close();
      }
    });
  });
});

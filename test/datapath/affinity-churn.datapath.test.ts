// Session affinity across endpoint churn, with real packets and partial syncs (the daemon's
// path: compileParts -> AffinityGenerations -> Applier.sync), in the shared affinity set.
//
// kube-proxy deletes an endpoint's affinity set when the endpoint goes. So a client that was
// stuck to A, moved to B when A went, stays on B when A comes back (a readiness flap): its
// memory of A is gone. In one shared set the memory of A outlives A; A's rule comes first in
// the service chain (10.180.9.1 sorts before .2), so without generations the client would
// jump back to A. The negative control shows exactly that.
import { kernelFamily } from '../../src/render/kernel/family.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../lab/lab.js';
import { canUseKernel, KERNEL_SKIP_REASON, liveNetns, netnsOfThisProcess } from '../lab/netns.js';
import type { Observed } from '../lab/outcome.js';
import { LAB_ENV, NODE } from '../support/address-plan.js';
import { config, service, slice } from '../support/builders.js';
import { buildModel } from '../../src/model/build-model.js';
import { compileParts } from '../../src/compile/compile.js';
import { AffinityGenerations } from '../../src/daemon/affinity-generations.js';
import { firstGeneration } from '../../src/compile/affinity.js';
import { execa } from 'execa';

const CLIENT = '10.0.9.2';
const A = '10.180.9.1', B = '10.180.9.2';
const ENV = LAB_ENV;
const VIP = '172.30.9.1:80';

const objects = (eps: string[]): unknown[] => [
  service('ns9', 'sticky', { clusterIP: '172.30.9.1', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } }, ports: [{ name: 'p80', port: 80 }] }),
  slice('ns9', 'sticky', 'sticky-a', [{ name: 'p80', port: 80 }], eps.map((ip) => ({ ip, node: 'node2' }))),
];

/** Where each of `n` connections of the client landed, after A, B-only, then A and B again. */
interface Story { first: Observed; alone: Observed; back: Observed }

async function story(lab: Lab, gens: { generationOf: (eid: string) => number; settle?: AffinityGenerations['settle'] }): Promise<Story> {
  const cfg = config(ENV);
  const sync = async (eps: string[], full = false): Promise<void> => {
    const parts = compileParts(buildModel(objects(eps).map((object) => ({ object }))).model, cfg, gens.generationOf);
    gens.settle?.(parts, performance.now());
    await lab.applier.sync(parts.map(kernelFamily), { full });
  };
  const tcp = (count: number): Promise<Observed> => lab.probe({ src: CLIENT, dst: VIP, proto: 'tcp', count, timeoutMs: 1500 });
  await sync([A], true);
  const first = await tcp(3);
  await sync([B]);
  const alone = await tcp(3);
  await sync([A, B]);
  const back = await tcp(20);
  return { first, alone, back };
}

describe.skipIf(!canUseKernel)(`session affinity across endpoint churn${canUseKernel ? '' : ` [skipped: ${KERNEL_SKIP_REASON}]`}`, () => {
  let lab: Lab | undefined;
  beforeAll(async () => {
    lab = await Lab.create('ac', { nodeIPs: [NODE], pods: [A, B], clients: [CLIENT], selfAddressed: [], ports: [80] });
  }, 90_000);
  afterAll(async () => { await lab?.destroy(); }, 90_000);

  it('stuck to A, moved to B when A went, stays on B when A comes back (A returns under a new key)', async () => {
    const s = await story(lab!, new AffinityGenerations());
    expect(s).toEqual({ first: { got: [`${A}:80`], masq: false }, alone: { got: [`${B}:80`], masq: false }, back: { got: [`${B}:80`], masq: false } });
  }, 90_000);

  it('negative control: with A under its old key, the client jumps back to A', async () => {
    const s = await story(lab!, { generationOf: firstGeneration });
    expect(s.back).toEqual({ got: [`${A}:80`], masq: false });
  }, 90_000);

  // kube-proxy keeps its affinity sets across full syncs; nftproxy's full sync replaces the
  // table, so it reads the set back and re-adds the clients (src/apply/affinity-carry.ts).
  it('a full sync (start, --sync-period) keeps the remembered clients: the client stays on its endpoint', async () => {
    const cfg = config(ENV);
    const gens = new AffinityGenerations();
    const parts = (): ReturnType<typeof compileParts> => compileParts(buildModel(objects([A, B]).map((object) => ({ object }))).model, cfg, gens.generationOf);
    const remembered = async (): Promise<{ key: string; timeout: number; expires: number }[]> => {
      const r = await execa('ip', ['netns', 'exec', lab!.nodeNetns, 'nft', '-j', 'list', 'set', 'ip', 'nftproxy', 'affinity']);
      const set = (JSON.parse(r.stdout) as { nftables: { set?: { elem?: { elem: { val: { concat: unknown[] }; timeout: number; expires: number } }[] } }[] }).nftables.find((o) => o.set)!.set!;
      return (set.elem ?? []).filter((e) => e.elem.val.concat[0] === CLIENT).map((e) => ({ key: e.elem.val.concat.slice(1).join('.'), timeout: e.elem.timeout, expires: e.elem.expires }));
    };
    // start clean: no endpoints, no key in use, so the earlier tests' clients are not carried
    await lab!.applier.sync(compileParts(buildModel(objects([]).map((object) => ({ object }))).model, cfg).map(kernelFamily), { full: true });
    expect(await remembered()).toEqual([]);
    expect((await lab!.applier.sync(parts().map(kernelFamily), { full: true })).carriedAffinity).toBe(0);
    const first = await lab!.probe({ src: CLIENT, dst: VIP, proto: 'tcp', count: 1, timeoutMs: 1500 });
    const before = await remembered();
    expect(before).toHaveLength(1);

    const again = await lab!.applier.sync(parts().map(kernelFamily), { full: true });
    expect(again).toMatchObject({ kind: 'full', carriedAffinity: 1 });
    const after = await remembered();
    expect(after.map((e) => ({ key: e.key, timeout: e.timeout }))).toEqual(before.map((e) => ({ key: e.key, timeout: e.timeout })));
    expect(after[0]!.expires).toBeLessThanOrEqual(600);
    expect(after[0]!.expires).toBeGreaterThan(500);
    expect(await lab!.probe({ src: CLIENT, dst: VIP, proto: 'tcp', count: 20, timeoutMs: 1500 })).toEqual(first);

    // an endpoint that is gone takes its clients with it: B alone, a full sync carries nothing of A
    const stuckToA = JSON.stringify(first.got) === JSON.stringify([`${A}:80`]);
    const onlyOther = stuckToA ? [B] : [A];
    const p2 = compileParts(buildModel(objects(onlyOther).map((object) => ({ object }))).model, cfg, gens.generationOf);
    expect((await lab!.applier.sync(p2.map(kernelFamily), { full: true })).carriedAffinity).toBe(0);
    expect(await remembered()).toEqual([]);
  }, 90_000);

  it('removes every namespace it created', async () => {
    await lab?.destroy();
    lab = undefined;
    expect(liveNetns()).toEqual([]);
    expect(await netnsOfThisProcess()).toEqual([]);
  }, 90_000);
});

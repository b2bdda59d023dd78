// What compileServicePort returns, for every service port of examples/ and of a fixed sample of
// the property test's random snapshots, on a few nodes. The goldens in __golden__/service-port-*
// were written by the implementation before the per-traffic-class split (issue 15), and the
// split must reproduce them exactly. The comparison is deeper than toEqual: each result is
// printed with its properties in order and a property that is present but undefined marked as
// such, so a renderer or differ that looked at either would see no change either.
//
// A diff here is a behaviour change of the compiler: review it like code, regenerate on purpose
// only: npx vitest run test/compile/service-port-golden.test.ts -u
// The sample is drawn with a fixed seed: a change to the generators (test/support/hostile-snapshots.ts)
// or a fast-check upgrade that draws differently changes the inputs and so the digests; accept
// that only after checking that the compiler did not change (run this test before and after
// the compiler change on the same inputs).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { buildModel, type SourceObject } from '../../src/model/build-model.js';
import type { ProxyConfig } from '../../src/model/config.js';
import type { Model } from '../../src/model/types.js';
import { familyContext } from '../../src/compile/family-context.js';
import { endpointsForPort } from '../../src/compile/endpoints-for-port.js';
import { compileServicePort } from '../../src/compile/service-port.js';
import { type GenerationOf, firstGeneration } from '../../src/compile/affinity.js';
import { type ManifestError, formatManifestError, listManifestFiles, readManifests } from '../../src/sources/manifests.js';
import type { Result as Res } from '../../src/model/result.js';
import { CLUSTER, CLUSTER_ENV } from '../support/address-plan.js';
import { config } from '../support/builders.js';
import { maxLengthExample, snapshotArb, sources } from '../support/hostile-snapshots.js';

// Nodes chosen so that every input meets each context the compiler reads: this node's endpoints
// or another's (nodeName), a zone or none (topology hints), a pod CIDR or none (eTP Local's
// short-circuit of pod traffic), a node IP of the family or kube-proxy's loopback stand-in
// (loadBalancerSourceRanges letting the node in), and both families.
const NODES: Record<string, ProxyConfig> = {
  'node-a': config({ ...CLUSTER_ENV, nodeLabels: { 'topology.kubernetes.io/zone': 'zone-a' }, ipFamilies: ['ipv4', 'ipv6'] }),
  'node-b-v4-only-no-pod-cidr': config({ nodeName: 'node-b', nodeIPs: ['192.168.0.3'], serviceCIDRs: [CLUSTER.serviceCIDR, CLUSTER.serviceCIDR6], nodeLabels: { 'topology.kubernetes.io/zone': 'zone-b' }, ipFamilies: ['ipv4', 'ipv6'] }),
  'node-c-v6-only-no-zone': config({ ...CLUSTER_ENV, nodeName: 'node-c', nodeIPs: [CLUSTER.node6], ipFamilies: ['ipv6', 'ipv4'] }),
};

// An affinity endpoint that went away and came back is keyed by a later generation: a made-up
// but fixed one per endpoint, so that keys other than generation 0 are covered too.
const someGenerations: GenerationOf = (eid) => createHash('sha256').update(eid).digest()[0]! % 3;

/** Properties in order, undefined ones marked: what the renderers and the differ could tell apart. */
const print = (v: unknown, indent?: number): string => JSON.stringify(v, (_k, x: unknown) => (x === undefined ? '<undefined>' : x), indent);

interface Result {
  readonly head: string;
  readonly rules: unknown;
  readonly printed: string;
}

function compileEveryPort(model: Model): Result[] {
  const out: Result[] = [];
  for (const [node, cfg] of Object.entries(NODES)) {
    for (const fam of cfg.ipFamilies) {
      const ctx = familyContext(cfg, fam);
      for (const svc of model.services) {
        const slices = model.slices.get(`${svc.ref.namespace}/${svc.ref.name}`) ?? [];
        for (const sp of svc.ports) {
          const endpoints = endpointsForPort(slices, ctx.ipFamily, sp, ctx.nodeName);
          const gens: [string, GenerationOf][] = svc.sessionAffinity.kind === 'ClientIP' ? [['gen0', firstGeneration], ['gen*', someGenerations]] : [['gen0', firstGeneration]];
          for (const [gen, generationOf] of gens) {
            const rules = compileServicePort(ctx, svc, sp, endpoints, generationOf);
            out.push({
              head: `${node} ${ctx.family} ${gen} ${svc.ref.namespace}/${svc.ref.name} ${sp.protocol}/${sp.port} ${JSON.stringify(sp.name)}`,
              rules, printed: rules === undefined ? 'undefined' : print(rules),
            });
          }
        }
      }
    }
  }
  return out;
}

const must = <T>(r: Res<T, ManifestError>): T => {
  if (!r.ok) throw new Error(formatManifestError(r.error));
  return r.value;
};
const modelOf = (objects: readonly SourceObject[]): Model => buildModel(objects, 'nftproxy').model;
const full = (results: readonly Result[]): string => results.map((r) => `# ${r.head}\n${r.rules === undefined ? 'undefined' : print(r.rules, 1)}\n`).join('');
// Printed whole, the snapshots' results take megabytes (names of 63 characters, affinity
// chains per endpoint, three nodes): a digest per result still tells any difference apart,
// and names the node, family and service port it is in.
const digests = (results: readonly Result[]): string => results.map((r) => `${createHash('sha256').update(r.printed).digest('hex').slice(0, 16)} ${r.head}\n`).join('');

describe('compileServicePort', async () => {
  const files = must(await listManifestFiles('examples/'));

  it('examples/, every file together (the CLI\'s view), printed whole', async () => {
    expect(files.length, 'examples/ holds the README\'s manifests').toBeGreaterThan(5);
    const model = modelOf(must(await readManifests(['examples/'])));
    await expect(full(compileEveryPort(model))).toMatchFileSnapshot('__golden__/service-port-examples.txt');
  });

  it('each file of examples/ alone (a Service without the slices of another file), and the property test\'s snapshots', async () => {
    const parts: string[] = [];
    for (const f of files) parts.push(`## ${f}\n${digests(compileEveryPort(modelOf(must(await readManifests([f])))))}`);
    // 40 random snapshots (fixed seed), and the one with every name at its longest.
    const snapshots = [...fc.sample(snapshotArb, { seed: 15, numRuns: 40 }), maxLengthExample()];
    snapshots.forEach((s, i) => parts.push(`## snapshot ${i}\n${digests(compileEveryPort(modelOf(sources(s.entries))))}`));
    await expect(parts.join('')).toMatchFileSnapshot('__golden__/service-port-digests.txt');
  });
});

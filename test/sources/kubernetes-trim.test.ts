// Trim on receive: the API source caches only what nftproxy reads. First the whitelist on its
// own (the model built from trimmed objects is the one built from whole objects, for every
// example and for hostile junk anywhere), then through the source's cache, with the real
// client-node informers against the fake API server: a Service carrying 200 KB of
// annotations and managedFields costs the daemon what the same Service without them costs.
import { KubeConfig } from '@kubernetes/client-node';
import fc from 'fast-check';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ModelStore } from '../../src/model/model-store.js';
import { buildModel, type SourceObject } from '../../src/model/build-model.js';
import { KubernetesSource } from '../../src/sources/kubernetes.js';
import { SHAPES, TRIGGER_TIME_ANNOTATION, trimObject } from '../../src/sources/kubernetes-trim.js';
import { readManifests } from '../../src/sources/manifests.js';
import { eventually, sleep } from '../support/eventually.js';
import { FakeApiServer } from '../fake-apiserver/server.js';

type Kind = 'Service' | 'EndpointSlice' | 'Node';
const API_VERSION: Record<Kind, 'v1' | 'discovery.k8s.io/v1'> = { Service: 'v1', EndpointSlice: 'discovery.k8s.io/v1', Node: 'v1' };
const NODE = 'node-a';

const kindOf = (o: unknown): Kind | undefined => {
  const k = (o as { kind?: unknown }).kind;
  return k === 'Service' || k === 'EndpointSlice' || k === 'Node' ? k : undefined;
};
/** What the API source would cache of each object: trimmed, as from a list (kind and all). */
const trimAll = (objects: readonly SourceObject[]): SourceObject[] =>
  objects.map(({ object, origin }) => {
    const kind = kindOf(object);
    return { object: kind ? trimObject({ kind, apiVersion: API_VERSION[kind] }, object) : object, ...(origin ? { origin } : {}) };
  });

const EXAMPLES = await readManifests([new URL('../../examples/', import.meta.url).pathname]);
if (!EXAMPLES.ok) throw new Error(JSON.stringify(EXAMPLES.error));
const examples = EXAMPLES.value;

describe('the whitelist', () => {
  it('the model of every example is the same from trimmed objects', () => {
    expect(examples.length).toBeGreaterThan(30);
    expect(buildModel(trimAll(examples))).toEqual(buildModel(examples));
  });

  it('keeps what the daemon reads besides the model: versions and the slice trigger time', () => {
    const slice = { kind: 'EndpointSlice', metadata: { namespace: 'shop', name: 'web-1', resourceVersion: '7', labels: { 'kubernetes.io/service-name': 'web', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' }, annotations: { [TRIGGER_TIME_ANNOTATION]: '2025-01-02T03:04:05Z', other: 'x' } }, addressType: 'IPv4', endpoints: [] };
    const trimmed = trimObject({ kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1' }, slice);
    expect(trimmed.metadata).toEqual({ namespace: 'shop', name: 'web-1', resourceVersion: '7', labels: { 'kubernetes.io/service-name': 'web' }, annotations: { [TRIGGER_TIME_ANNOTATION]: '2025-01-02T03:04:05Z' } });
    expect(new ModelStore().update([{ object: trimmed }]).changes).toEqual({ services: 0, endpointSlices: 1, triggers: [Date.parse('2025-01-02T03:04:05Z')] });
  });

  // Junk anywhere, also in the place of a field the model reads (a string where a list of
  // ports goes, a number for the metadata): the model must decide the same either way. The
  // keys tried are the ones the model and the daemon were seen to read (READS, below), so a
  // field missing from the whitelist is tried too.
  const PLACES: Record<Kind, string[][]> = {
    Service: [[], ['metadata'], ['metadata', 'labels'], ['spec'], ['spec', 'ports', '0'], ['spec', 'sessionAffinityConfig'], ['status'], ['status', 'loadBalancer'], ['status', 'loadBalancer', 'ingress', '0']],
    EndpointSlice: [[], ['metadata'], ['metadata', 'labels'], ['ports', '0'], ['endpoints', '0'], ['endpoints', '0', 'conditions'], ['endpoints', '0', 'hints']],
    Node: [[], ['metadata'], ['metadata', 'labels'], ['spec'], ['spec', 'taints', '0'], ['status'], ['status', 'addresses', '0']],
  };
  it.each(['Service', 'EndpointSlice', 'Node'] as const)('%s: junk in any place leaves the model as it was', (kind) => {
    const KEYS = [...new Set([...READS[kind]].map((p) => (JSON.parse(p) as string[]).at(-1)!).concat('managedFields', 'annotations', 'selector', 'conditions', 'targetRef'))];
    const samples = examples.filter((o) => kindOf(o.object) === kind);
    expect(samples.length).toBeGreaterThan(0);
    const edit = fc.record({
      sample: fc.nat({ max: samples.length - 1 }),
      place: fc.constantFrom(...PLACES[kind]),
      key: fc.oneof(fc.constantFrom(...KEYS), fc.string()),
      value: fc.anything(),
    });
    fc.assert(fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
      const objects = structuredClone(samples);
      for (const e of edits) {
        let at: unknown = objects[e.sample]!.object;
        for (const step of e.place) at = typeof at === 'object' && at !== null ? (at as Record<string, unknown>)[step] : undefined;
        if (typeof at === 'object' && at !== null) (at as Record<string, unknown>)[e.key] = e.value;
      }
      // Copies with the same content: the model's per-object cache must not answer for them.
      expect(buildModel(trimAll(objects))).toEqual(buildModel(structuredClone(objects)));
    }), { numRuns: 300 });
  });
});

// ---- through the source's cache --------------------------------------------------------

const BIG = 200 * 1024;

const leanService = (): Record<string, unknown> => ({
  metadata: { namespace: 'shop', name: 'web', labels: { 'service.kubernetes.io/service-proxy-name': 'nftproxy' } },
  spec: { type: 'LoadBalancer', clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080, nodePort: 30080 }], externalTrafficPolicy: 'Local', healthCheckNodePort: 32000, sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } } },
  status: { loadBalancer: { ingress: [{ ip: '203.0.113.10', ipMode: 'VIP' }] } },
});
const leanSlice = (): Record<string, unknown> => ({
  metadata: { namespace: 'shop', name: 'web-abcde', labels: { 'kubernetes.io/service-name': 'web' }, annotations: { [TRIGGER_TIME_ANNOTATION]: '2025-01-02T03:04:05Z' } },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: [{ addresses: ['10.244.1.5'], conditions: { ready: true, serving: true, terminating: false }, nodeName: NODE, zone: 'zone-a', hints: { forZones: [{ name: 'zone-a' }] } }],
});
const leanNode = (): Record<string, unknown> => ({
  metadata: { name: NODE, labels: { 'topology.kubernetes.io/zone': 'zone-a', 'kubernetes.io/hostname': NODE } },
  spec: { taints: [{ key: 'example.com/dedicated' }] },
  status: { addresses: [{ type: 'InternalIP', address: '192.168.1.1' }, { type: 'Hostname', address: NODE }] },
});

/** What real API objects carry besides: 200 KB of annotations, managedFields, status nobody here reads. */
function fat(kind: Kind, o: Record<string, unknown>): Record<string, unknown> {
  const meta = o.metadata as Record<string, unknown>;
  const managedFields = Array.from({ length: 4 }, (_, i) => ({ manager: `controller-${i}`, operation: 'Update', apiVersion: 'v1', time: '2025-01-02T03:04:05Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:annotations': Object.fromEntries(Array.from({ length: 200 }, (_, k) => [`f:note-${k}`, {}])) } } }));
  const annotations = { ...(meta.annotations as object), 'kubectl.kubernetes.io/last-applied-configuration': 'x'.repeat(BIG), 'example.com/owner': 'team-a' };
  const metadata = { ...meta, labels: { ...(meta.labels as object), 'app.kubernetes.io/name': 'web', 'example.com/cost-center': '42' }, annotations, managedFields, finalizers: ['example.com/keep'], ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: 'web', uid: 'u' }] };
  switch (kind) {
    case 'Service': {
      const spec = o.spec as Record<string, unknown>;
      const status = o.status as { loadBalancer: { ingress: Record<string, unknown>[] } };
      return { ...o, metadata, spec: { ...spec, selector: { app: 'web' }, ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack', allocateLoadBalancerNodePorts: true, publishNotReadyAddresses: false }, status: { loadBalancer: { ingress: status.loadBalancer.ingress.map((i) => ({ ...i, hostname: 'lb.example.com', ports: [{ port: 80, protocol: 'TCP', error: 'none' }] })) }, conditions: [{ type: 'Ready', status: 'True', reason: 'x'.repeat(1000) }] } };
    }
    case 'EndpointSlice': {
      const endpoints = (o.endpoints as Record<string, unknown>[]).map((e) => ({ ...e, hostname: 'web-0', targetRef: { kind: 'Pod', namespace: 'shop', name: 'web-0', uid: 'u' }, deprecatedTopology: { 'kubernetes.io/hostname': NODE } }));
      return { ...o, metadata: { ...metadata, labels: { ...metadata.labels, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } }, endpoints };
    }
    case 'Node': {
      // A Node's labels are all kept (the model hands them on): its extras go elsewhere.
      const status = o.status as Record<string, unknown>;
      return {
        ...o, metadata: { ...metadata, labels: meta.labels },
        spec: { ...(o.spec as object), podCIDR: '10.244.1.0/24', taints: [{ key: 'example.com/dedicated', effect: 'NoSchedule', value: 'x' }] },
        status: { ...status, conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: '2025-01-02T03:04:05Z' }], images: Array.from({ length: 50 }, (_, i) => ({ names: [`registry.example.com/image-${i}:v1`], sizeBytes: 1e8 })), nodeInfo: { kubeletVersion: 'v1.34.0' }, capacity: { cpu: '8' } },
      };
    }
  }
}

// ---- every field read is kept ----------------------------------------------------------

/** `value`, with every property read of it (and of what it holds) recorded as a path. */
function recording(value: unknown, path: readonly string[], reads: Set<string>): unknown {
  if (typeof value !== 'object' || value === null) return value;
  return new Proxy(value, {
    get(target, key, receiver) {
      const v: unknown = Reflect.get(target, key, receiver);
      if (typeof key === 'symbol') return v;
      if (Array.isArray(target) && !/^\d+$/.test(key)) return v; // length, map, …
      const p = [...path, Array.isArray(target) ? '*' : key];
      reads.add(JSON.stringify(p));
      return recording(v, p, reads);
    },
  });
}

/** Is a read of `path` answered by what `shape` keeps? */
function kept(path: readonly string[], shape: unknown): boolean {
  let s = shape;
  for (const step of path) {
    if (s === true) return true;
    if (Array.isArray(s)) {
      if (step !== '*') return false;
      s = s[0];
    } else if (typeof s === 'object' && s !== null && Object.hasOwn(s, step)) s = (s as Record<string, unknown>)[step];
    else return false;
  }
  return true;
}

/** Every path the model and its change counting read, per kind, over the examples and one object with every part present. */
const READS: Record<Kind, Set<string>> = { Service: new Set(), EndpointSlice: new Set(), Node: new Set() };
{
  const all = [...examples.map((e) => e.object), { kind: 'Service', ...leanService() }, { kind: 'EndpointSlice', ...leanSlice() }, { kind: 'Node', ...leanNode() }, { kind: 'Node', ...leanNode(), metadata: { name: 'gone', deletionTimestamp: '2025-01-02T03:04:05Z' } }];
  const proxied = all.map((o) => ({ object: recording(o, [], READS[kindOf(o)!]) }));
  buildModel(proxied);
  new ModelStore().update(proxied);
}

describe('every field read is kept', () => {
  it.each(['Service', 'EndpointSlice', 'Node'] as const)('%s', (kind) => {
    const paths = [...READS[kind]].map((p) => JSON.parse(p) as string[]);
    expect(paths.length).toBeGreaterThan(5);
    // kind and apiVersion are set by the trim itself. A Service's or slice's label map is
    // copied whole into a record by model/raw.ts labels(), which then uses one key of it:
    // which keys matter is what the model tests above check.
    const exempt = (p: readonly string[]): boolean => p.length === 1 && (p[0] === 'kind' || p[0] === 'apiVersion') || (kind !== 'Node' && p[0] === 'metadata' && p[1] === 'labels' && p.length === 3);
    expect(paths.filter((p) => !exempt(p) && !kept(p, SHAPES[kind])).map((p) => p.join('.'))).toEqual([]);
  });
});

let servers: FakeApiServer[] = [];
let sources: KubernetesSource[] = [];
afterEach(async () => {
  for (const s of sources) s.stop();
  for (const f of servers) await f.stop();
  servers = [];
  sources = [];
});

async function cluster(objects: readonly [Kind, Record<string, unknown>][]): Promise<{ fake: FakeApiServer; source: KubernetesSource; changes: () => number }> {
  const fake = new FakeApiServer();
  await fake.start();
  servers.push(fake);
  for (const [kind, o] of objects) fake.create(kind, o);
  const kc = new KubeConfig();
  kc.loadFromString(fake.kubeconfig());
  let changes = 0;
  const source = new KubernetesSource(kc, NODE, () => changes++, pino({ level: 'silent' }), { backoffInitialMs: 40, backoffMaxMs: 320, backoffJitter: 0, requestTimeoutMs: 2000 });
  sources.push(source);
  await source.start();
  return { fake, source, changes: () => changes };
}

const bytes = (v: unknown): number => JSON.stringify(v).length;
const cached = (source: KubernetesSource, origin: string): Record<string, unknown> => source.snapshot().find((s) => s.origin === origin)!.object as Record<string, unknown>;

describe('through the source\'s cache (real client-node, fake API server)', () => {
  it('a cluster of fat objects is cached exactly as the same cluster without the fat', async () => {
    const lean: [Kind, Record<string, unknown>][] = [['Service', leanService()], ['EndpointSlice', leanSlice()], ['Node', leanNode()]];
    const fatOnes = lean.map(([k, o]): [Kind, Record<string, unknown>] => [k, fat(k, o)]);
    expect(bytes(fatOnes[0]![1])).toBeGreaterThan(BIG);
    const a = await cluster(lean);
    const b = await cluster(fatOnes);
    // Same writes in the same order: the same resourceVersions, so the caches can be equal.
    const snapLean = a.source.snapshot();
    const snapFat = b.source.snapshot();
    expect(snapFat).toEqual(snapLean);
    expect(bytes(snapFat)).toBe(bytes(snapLean));
    expect(bytes(cached(b.source, 'api:Service/shop/web'))).toBeLessThan(1024);
    expect(buildModel(snapFat)).toEqual(buildModel(snapLean));
    expect(buildModel(snapFat).diagnostics).toEqual([]);
    // And the same as the model of the objects as the server holds them, untrimmed.
    const whole = lean.map(([kind, o]) => ({ object: { kind, apiVersion: API_VERSION[kind], ...o } }));
    expect(buildModel(snapFat).model).toEqual(buildModel(whole).model);
  });

  it('watch events are trimmed too; an update of only what is trimmed is not a change', async () => {
    const c = await cluster([['Service', leanService()], ['EndpointSlice', leanSlice()], ['Node', leanNode()]]);
    const before = cached(c.source, 'api:Service/shop/web');
    // ADDED: a fat new Service arrives trimmed.
    c.fake.create('Service', fat('Service', { ...leanService(), metadata: { namespace: 'shop', name: 'api' }, spec: { ...(leanService().spec as object), clusterIP: '10.96.0.11', clusterIPs: ['10.96.0.11'], ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30081 }], healthCheckNodePort: 32001 } }));
    await eventually(() => c.changes() === 1, 'the added Service');
    expect(bytes(cached(c.source, 'api:Service/shop/api'))).toBeLessThan(1024);
    // MODIFIED with 200 KB of annotations and managedFields, and this node's heartbeat: the
    // cache takes the new versions, trimmed, and nothing syncs.
    const versionOf = (o: { metadata?: { resourceVersion?: string } }): string | undefined => o.metadata?.resourceVersion;
    const svcVersion = versionOf(c.fake.update('Service', fat('Service', leanService())));
    const nodeVersion = versionOf(c.fake.update('Node', fat('Node', leanNode())));
    await eventually(() => versionOf(cached(c.source, 'api:Service/shop/web')) === svcVersion && versionOf(cached(c.source, `api:Node/${NODE}`)) === nodeVersion, 'the new versions');
    const after = cached(c.source, 'api:Service/shop/web');
    expect({ ...after, metadata: { ...(after.metadata as object), resourceVersion: '' } }).toEqual({ ...before, metadata: { ...(before.metadata as object), resourceVersion: '' } });
    await sleep(100);
    expect(c.changes()).toBe(1);
    // A change of something read is a change.
    c.fake.update('Service', fat('Service', { ...leanService(), spec: { ...(leanService().spec as object), ports: [{ name: 'http', port: 81, protocol: 'TCP', targetPort: 8080, nodePort: 30080 }] } }));
    await eventually(() => c.changes() === 2, 'the port change');
    expect(bytes(cached(c.source, 'api:Service/shop/web'))).toBeLessThan(1024);
  });

  it('a relist (410) that brings only new versions of what is trimmed is not a change', async () => {
    const c = await cluster([['Service', leanService()], ['EndpointSlice', leanSlice()], ['Node', leanNode()]]);
    await eventually(() => c.fake.openWatches === 3 && c.source.status().connected, 'watches');
    c.fake.freezeWatches();
    const version = c.fake.update('Service', fat('Service', leanService())).metadata?.resourceVersion;
    c.fake.compactHistory();
    c.fake.dropWatches('graceful');
    c.fake.thawWatches();
    await eventually(() => (cached(c.source, 'api:Service/shop/web').metadata as { resourceVersion?: string }).resourceVersion === version, 'the relist');
    expect(bytes(cached(c.source, 'api:Service/shop/web'))).toBeLessThan(1024);
    await sleep(100);
    expect(c.changes()).toBe(0);
  });

  it('an unchanged object is the same object in every snapshot (no copy per sync)', async () => {
    const c = await cluster([['Service', leanService()], ['EndpointSlice', leanSlice()], ['Node', leanNode()]]);
    const one = c.source.snapshot();
    const two = c.source.snapshot();
    expect(two).toHaveLength(3);
    two.forEach((s, i) => expect(s).toBe(one[i]));
  });
});

// KubernetesSource against the fake API server: the real client-node 1.4 informers over
// real HTTP, nothing mocked. Backoff is shortened so the outages below take milliseconds.
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildModel, type SourceChange, type SourceObject } from '../../src/model/build-model.js';
import { KubernetesSource, type KubernetesSourceOptions, loadKubeConfig } from '../../src/sources/kubernetes.js';
import { FakeApiServer } from '../fake-apiserver/server.js';
import { service, slice } from '../support/builders.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { eventually, sleep } from '../support/eventually.js';
import { join } from 'node:path';

const SVC = '/api/v1/services';
const SLICES = '/apis/discovery.k8s.io/v1/endpointslices';
const NODES = '/api/v1/nodes';
const NODE = 'n1';

const FAST: KubernetesSourceOptions = { backoffInitialMs: 40, backoffMaxMs: 320, backoffJitter: 0, requestTimeoutMs: 2000 };

const svc = (ns: string, name: string, ip: string, extra: Record<string, string> = {}): Record<string, unknown> => {
  const s = service(ns, name, { type: 'ClusterIP', clusterIP: ip, clusterIPs: [ip], ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }] });
  (s.metadata as Record<string, unknown>).labels = extra;
  return s;
};
const eps = (ns: string, name: string, ip: string): Record<string, unknown> => slice(ns, name, `${name}-1`, [{ name: 'http', port: 8080 }], [{ ip, node: NODE }]);
const node = (name: string, zone = 'a'): Record<string, unknown> => ({
  metadata: { name, labels: { 'topology.kubernetes.io/zone': zone } },
  spec: {},
  status: { addresses: [{ type: 'InternalIP', address: name === NODE ? '192.168.1.1' : '192.168.1.2' }] },
});

function seed(f: FakeApiServer): void {
  f.create('Service', svc('default', 'web', '10.96.0.10'));
  f.create('Service', svc('default', 'db', '10.96.0.11'));
  f.create('Service', svc('shop', 'cart', '10.96.0.12'));
  f.create('EndpointSlice', eps('default', 'web', '10.244.1.10'));
  f.create('EndpointSlice', eps('default', 'db', '10.244.1.11'));
  f.create('Node', node(NODE));
  f.create('Node', node('n2', 'b'));
}


/** "Kind ns/name" for every object of a snapshot, sorted. */
const refs = (snap: readonly SourceObject[]): string[] =>
  snap.map(({ object }) => {
    const o = object as { kind: string; metadata: { namespace?: string; name: string } };
    return `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;
  }).sort();

const SEEDED = ['EndpointSlice default/db-1', 'EndpointSlice default/web-1', `Node ${NODE}`, 'Service default/db', 'Service default/web', 'Service shop/cart'];

interface LogLine { level: number; msg: string; resource?: string; retryInMs?: number; error?: string }

let fake: FakeApiServer;
let sources: KubernetesSource[];
let changes: number;
let logs: LogLine[];

function makeSource(opts: KubernetesSourceOptions = FAST): KubernetesSource {
  const kc = new KubeConfig();
  kc.loadFromString(fake.kubeconfig());
  const log = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  const s = new KubernetesSource(kc, NODE, () => changes++, log, opts);
  sources.push(s);
  return s;
}

beforeEach(async () => {
  fake = new FakeApiServer({ bookmarkIntervalMs: 200 });
  await fake.start();
  seed(fake);
  sources = [];
  changes = 0;
  logs = [];
});
afterEach(async () => {
  for (const s of sources) s.stop();
  await fake.stop();
});

describe('first sync', () => {
  it('waits for all three lists, then serves every object with kind, apiVersion and origin', async () => {
    fake.setDelay(SLICES, 300, { verb: 'list' });
    const src = makeSource();
    let done = false;
    const started = src.start().then(() => (done = true));
    await sleep(150);
    expect(done).toBe(false);
    expect(src.status().synced).toBe(false);
    await started;
    expect(src.status()).toMatchObject({ synced: true, restarts: 0 });
    // The watches follow the lists (start() waits for the data, not for them).
    await eventually(() => src.status().connected, 'watches');
    const snap = src.snapshot();
    expect(refs(snap)).toEqual(SEEDED); // only this node: the Node list is field-selected
    const byOrigin = new Map(snap.map((s) => [s.origin, s.object as Record<string, unknown>]));
    expect(byOrigin.get('api:Service/shop/cart')).toMatchObject({ kind: 'Service', apiVersion: 'v1' });
    expect(byOrigin.get('api:EndpointSlice/default/web-1')).toMatchObject({ kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1' });
    expect(byOrigin.get(`api:Node/${NODE}`)).toMatchObject({ kind: 'Node', apiVersion: 'v1' });
    // What the model makes of it: the source's objects are as good as manifests.
    const built = buildModel(snap);
    expect(built.diagnostics).toEqual([]);
    expect(built.model.services.map((s) => s.ref.name).sort()).toEqual(['cart', 'db', 'web']);
    expect([...built.model.nodes.keys()]).toEqual([NODE]);
    expect(changes).toBe(0); // the initial lists are the first snapshot, not changes
  });

  it('asks for what client-go asks for: field-selected Node, bookmarks, a server-side watch timeout', async () => {
    const src = makeSource({ ...FAST, pageSize: 2 });
    await src.start();
    await eventually(() => src.status().connected, 'watches');
    const asked = (path: string, verb: string) => fake.requests.filter((q) => q.path === path && q.verb === verb).map((q) => q.query);
    expect(asked(SVC, 'list')).toEqual([{ limit: '2' }, { limit: '2', continue: expect.any(String) }]);
    expect(asked(NODES, 'list')).toEqual([{ limit: '2', fieldSelector: `metadata.name=${NODE}` }]);
    const watch = asked(NODES, 'watch')[0]!;
    expect(watch).toMatchObject({ watch: 'true', fieldSelector: `metadata.name=${NODE}`, allowWatchBookmarks: 'true', resourceVersion: String(fake.resourceVersion) });
    expect(Number(watch.timeoutSeconds)).toBeGreaterThanOrEqual(300);
    expect(Number(watch.timeoutSeconds)).toBeLessThan(600);
    expect(refs(src.snapshot())).toEqual(SEEDED);
  });

  it('retries a list that fails (500, then 503) with backoff until it succeeds', async () => {
    fake.setFailNext(SVC, 500, { verb: 'list' });
    fake.setFailNext(SVC, 503, { verb: 'list' });
    const src = makeSource();
    await src.start();
    expect(refs(src.snapshot())).toEqual(SEEDED);
    const st = src.status();
    expect(st.restarts).toBe(2);
    expect(st.lastError).toMatch(/^Service: GET \/api\/v1\/services: 503/);
    const retries = logs.filter((l) => l.msg === 'initial list failed; retrying').map((l) => l.retryInMs);
    expect(retries).toEqual([40, 80]);
  });

  it('start() rejects if the source is stopped before it synced', async () => {
    fake.setFailNext(SLICES, 500, { verb: 'list', times: Infinity });
    const src = makeSource();
    const started = src.start();
    await sleep(100);
    src.stop();
    await expect(started).rejects.toThrow(/stopped before its first list/);
  });
});

/**
 * The snapshot `before` with the told changes applied, by identity (what the model folds in):
 * every `before` must be an object `before` held.
 */
function applyTold(before: readonly SourceObject[], changes: readonly SourceChange[]): Set<SourceObject> {
  const out = new Set(before);
  for (const c of changes) if (c.before) {
    expect(out.has(c.before), `told before ${c.before.origin} was handed out`).toBe(true);
    out.delete(c.before);
  }
  for (const c of changes) if (c.after) out.add(c.after);
  return out;
}

describe('changes after the first sync', () => {
  it.each([
    { what: 'Service added', act: (f: FakeApiServer) => f.create('Service', svc('shop', 'pay', '10.96.0.13')), want: [...SEEDED, 'Service shop/pay'].sort() },
    { what: 'Service deleted', act: (f: FakeApiServer) => f.delete('Service', { metadata: { namespace: 'default', name: 'db' } }), want: SEEDED.filter((r) => r !== 'Service default/db') },
    { what: 'EndpointSlice added', act: (f: FakeApiServer) => f.create('EndpointSlice', eps('shop', 'cart', '10.244.2.1')), want: [...SEEDED, 'EndpointSlice shop/cart-1'].sort() },
    { what: 'EndpointSlice deleted', act: (f: FakeApiServer) => f.delete('EndpointSlice', { metadata: { namespace: 'default', name: 'web-1' } }), want: SEEDED.filter((r) => r !== 'EndpointSlice default/web-1') },
    { what: 'this Node deleted', act: (f: FakeApiServer) => f.delete('Node', { metadata: { name: NODE } }), want: SEEDED.filter((r) => r !== `Node ${NODE}`) },
  ])('$what: onChange fires and the snapshot follows', async ({ act, want }) => {
    const src = makeSource();
    await src.start();
    const v = src.changesSince(undefined);
    expect(v.changes).toBeUndefined(); // nothing to tell before a first version
    const before = src.snapshot();
    // nothing new: the same snapshot, nothing copied
    expect(src.snapshot()).toBe(before);
    act(fake);
    await eventually(() => changes === 1, 'onChange');
    const after = src.snapshot();
    expect(refs(after)).toEqual(want);
    // told: one change, and the last snapshot with it applied is this one, object for object
    const told = src.changesSince(v.version);
    expect(told.changes).toHaveLength(1);
    expect(applyTold(before, told.changes!)).toEqual(new Set(after));
    expect(src.changesSince(told.version).changes).toEqual([]);
    // what did not change is the very same object (the model's per-object cache skips it)
    const was = new Map(before.map((s) => [s.origin, s]));
    for (const s of after) if (was.has(s.origin)) expect(s).toBe(was.get(s.origin));
  });

  it('MODIFIED replaces the object; another node changing is not a change', async () => {
    const src = makeSource();
    await src.start();
    const before = src.snapshot();
    fake.update('Node', node('n2', 'c'));
    fake.update('Service', { ...svc('default', 'web', '10.96.0.10'), spec: { type: 'ClusterIP', clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', port: 81, protocol: 'TCP' }] } });
    await eventually(() => changes === 1, 'onChange');
    await sleep(50);
    expect(changes).toBe(1);
    const web = src.snapshot().find((s) => s.origin === 'api:Service/default/web')!.object as { spec: { ports: { port: number }[] } };
    expect(web.spec.ports[0]!.port).toBe(81);
    expect(before.find((s) => s.origin === 'api:Service/default/web')!.object).not.toBe(web);
  });
});

describe('resilience', () => {
  it.each(['graceful', 'abrupt'] as const)('410 after compaction (%s drop): relists and converges, including a delete made in the gap', async (how) => {
    const src = makeSource();
    await src.start();
    const listsBefore = fake.requests.filter((q) => q.verb === 'list').length;
    fake.freezeWatches(); // the source misses these…
    fake.delete('Service', { metadata: { namespace: 'default', name: 'db' } });
    fake.create('Service', svc('shop', 'pay', '10.96.0.13'));
    fake.delete('EndpointSlice', { metadata: { namespace: 'default', name: 'db-1' } });
    fake.compactHistory(); // …and cannot resume after them
    fake.dropWatches(how);
    fake.thawWatches();
    const want = [...SEEDED.filter((r) => !r.includes('db')), 'Service shop/pay'].sort();
    await eventually(() => refs(src.snapshot()).join() === want.join(), 'convergence');
    // Every informer is told 410 and relists (the Node one too: its version was compacted).
    const expired = (): number => logs.filter((l) => l.msg === 'watch expired (410 Gone); relisting').length;
    await eventually(() => expired() === 3 && fake.openWatches === 3 && src.status().connected, 'relists and reconnects');
    expect(changes).toBe(3);
    const relists = fake.requests.filter((q) => q.verb === 'list').slice(listsBefore).map((q) => q.path).sort();
    expect(relists).toEqual([NODES, SVC, SLICES].sort());
  });

  it('API server down: keeps the cache, retries with growing backoff, converges when it is back', async () => {
    const src = makeSource();
    await src.start();
    await fake.stop();
    await eventually(() => !src.status().connected, 'disconnect');
    fake.delete('Service', { metadata: { namespace: 'shop', name: 'cart' } });
    fake.create('Service', svc('shop', 'pay', '10.96.0.13'));
    await sleep(700);
    // While down: the last known state, never an empty one.
    expect(refs(src.snapshot())).toEqual(SEEDED);
    expect(changes).toBe(0);
    const st = src.status();
    expect(st).toMatchObject({ synced: true, connected: false });
    expect(st.lastError).toMatch(/ECONNREFUSED|Premature close|ECONNRESET/);
    const delays = logs.filter((l) => l.resource === 'Service' && l.retryInMs !== undefined).map((l) => l.retryInMs);
    expect(delays.slice(0, 4)).toEqual([40, 80, 160, 320]);
    await fake.start();
    await eventually(() => refs(src.snapshot()).includes('Service shop/pay'), 'convergence');
    expect(refs(src.snapshot())).toEqual([...SEEDED.filter((r) => r !== 'Service shop/cart'), 'Service shop/pay'].sort());
    await eventually(() => src.status().connected, 'reconnect');
    // Resumed from the last version: the history was still there, no relist needed.
    expect(fake.requests.filter((q) => q.verb === 'list')).toHaveLength(3);
  });

  it('API server down while history is compacted: 410 on reconnect, relist, converge', async () => {
    const src = makeSource();
    await src.start();
    const v = src.changesSince(undefined);
    const before = src.snapshot();
    await fake.stop();
    fake.delete('Service', { metadata: { namespace: 'default', name: 'web' } });
    fake.compactHistory();
    await sleep(150);
    await fake.start();
    await eventually(() => !refs(src.snapshot()).includes('Service default/web'), 'relist');
    await eventually(() => src.status().connected, 'reconnect');
    expect(changes).toBe(1);
    // the relist told what it changed: the snapshot before with it applied is the one now
    const told = src.changesSince(v.version);
    expect(told.changes).toBeDefined();
    expect(applyTold(before, told.changes!)).toEqual(new Set(src.snapshot()));
  });

  it('a 500 on the relist after a 410 is retried too', async () => {
    const src = makeSource();
    await src.start();
    fake.freezeWatches();
    fake.delete('Service', { metadata: { namespace: 'default', name: 'db' } });
    fake.compactHistory();
    fake.setFailNext(SVC, 500, { verb: 'list' });
    fake.dropWatches('graceful');
    fake.thawWatches();
    await eventually(() => !refs(src.snapshot()).includes('Service default/db'), 'relist');
    expect(src.status().lastError).toMatch(/^Service: .*500/);
    expect(fake.requests.filter((q) => q.verb === 'list' && q.path === SVC)).toHaveLength(3);
  });

  it('an HTTP 410 answer to the watch request (older API servers) relists too, without counting as a failure', async () => {
    const src = makeSource();
    await src.start();
    await eventually(() => fake.openWatches === 3, 'watches');
    fake.freezeWatches();
    fake.delete('Service', { metadata: { namespace: 'default', name: 'db' } });
    fake.setFailNext(SVC, 410, { verb: 'watch' });
    fake.dropWatches('graceful');
    fake.thawWatches();
    await eventually(() => !refs(src.snapshot()).includes('Service default/db'), 'relist');
    expect(fake.requests.filter((q) => q.path === SVC).map((q) => q.verb).slice(0, 4)).toEqual(['list', 'watch', 'watch', 'list']);
    expect(src.status().restarts).toBe(0);
    expect(src.status().lastError).toBeUndefined();
  });

  it('watches that a proxy ends at once, again and again, are paced instead of spinning', async () => {
    const src = makeSource({ ...FAST, backoffInitialMs: 100 });
    await src.start();
    await eventually(() => fake.openWatches === 3, 'watches');
    const before = fake.requests.length;
    fake.setWatchLifetime(0);
    fake.dropWatches('graceful');
    await sleep(500);
    const watches = fake.requests.slice(before).filter((q) => q.verb === 'watch' && q.path === SVC).length;
    // Paced at the initial backoff (100 ms): about four in 500 ms (unpaced: ~20 here).
    expect(watches).toBeGreaterThanOrEqual(2);
    expect(watches).toBeLessThanOrEqual(7);
    fake.setWatchLifetime(undefined);
    fake.create('Service', svc('shop', 'pay', '10.96.0.13'));
    await eventually(() => refs(src.snapshot()).includes('Service shop/pay'), 'convergence');
  });

  it('a watch the server ends at its timeout is resumed from its version, without a relist', async () => {
    const src = makeSource({ ...FAST, watchTimeoutSeconds: () => 1 });
    await src.start();
    await sleep(1200);
    fake.create('Service', svc('shop', 'pay', '10.96.0.13'));
    await eventually(() => changes === 1, 'change after resume');
    const svcRequests = fake.requests.filter((q) => q.path === SVC).map((q) => q.verb);
    expect(svcRequests.slice(0, 3)).toEqual(['list', 'watch', 'watch']);
    expect(src.status().restarts).toBe(0);
  });

  it('a stalled watch (no events, no end) is abandoned after its timeout plus grace, and restarted', async () => {
    const src = makeSource({ ...FAST, watchTimeoutSeconds: () => 1, watchGraceSeconds: 0.3 });
    await src.start();
    fake.freezeWatches();
    fake.create('Service', svc('shop', 'pay', '10.96.0.13'));
    await eventually(() => (src.status().lastError ?? '').includes('presumed dead'), 'deadline', 3000);
    fake.thawWatches();
    await eventually(() => refs(src.snapshot()).includes('Service shop/pay'), 'convergence');
  });

  it('a watch request that gets no answer times out and is retried', async () => {
    fake.setDelay(SLICES, 1500, { verb: 'watch' });
    const src = makeSource({ ...FAST, requestTimeoutMs: 300 });
    await src.start();
    await eventually(() => src.status().restarts === 1 && src.status().connected, 'retry');
    expect(src.status().lastError).toMatch(/EndpointSlice: watch .* no answer in 300 ms/);
    fake.create('EndpointSlice', eps('shop', 'cart', '10.244.2.1'));
    await eventually(() => changes === 1, 'change');
  });

  it('stop() closes every watch and ends onChange', async () => {
    const src = makeSource();
    await src.start();
    await eventually(() => fake.openWatches === 3, 'watches');
    src.stop();
    await eventually(() => fake.openWatches === 0, 'watches closed');
    fake.create('Service', svc('shop', 'pay', '10.96.0.13'));
    await sleep(100);
    expect(changes).toBe(0);
    expect(logs.filter((l) => l.level >= 40)).toEqual([]); // the abort is not reported as a failure
  });
});

describe('loadKubeConfig', () => {
  it('reads a kubeconfig file, and refuses in-cluster mode outside a pod', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kc-'));
    try {
      writeFileSync(join(dir, 'config'), fake.kubeconfig());
      expect(loadKubeConfig(join(dir, 'config')).getCurrentCluster()?.server).toBe(fake.url);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const saved = process.env.KUBERNETES_SERVICE_HOST;
    delete process.env.KUBERNETES_SERVICE_HOST;
    try {
      expect(() => loadKubeConfig()).toThrow(/KUBERNETES_SERVICE_HOST/);
    } finally {
      if (saved !== undefined) process.env.KUBERNETES_SERVICE_HOST = saved;
    }
  });
});

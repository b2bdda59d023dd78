// The fake API server checked against real clients over real HTTP: kubectl 1.32 and
// @kubernetes/client-node 1.4's informer. If both are happy with it and see what a real
// API server would show them, tests of our own source against it mean something.
import * as k8s from '@kubernetes/client-node';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { service, slice } from '../support/builders.js';
import { Kubectl, getJson, haveKubectl, jsonStream, openWatch } from './clients.js';
import { FakeApiServer, TEST_CA } from './server.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SVC = '/api/v1/services';
const SLICES = '/apis/discovery.k8s.io/v1/endpointslices';
const NODES = '/api/v1/nodes';

const svc = (ns: string, name: string, ip: string, labels: Record<string, string> = {}): Record<string, unknown> => {
  const s = service(ns, name, { type: 'ClusterIP', clusterIP: ip, clusterIPs: [ip], ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }] });
  (s.metadata as Record<string, unknown>).labels = labels;
  return s;
};

/** Five services in two namespaces, one slice, two nodes. */
function seed(f: FakeApiServer): void {
  f.create('Service', svc('default', 'web', '10.96.0.10', { app: 'web', tier: 'front' }));
  f.create('Service', svc('default', 'api', '10.96.0.11', { app: 'api', tier: 'back' }));
  f.create('Service', svc('default', 'db', '10.96.0.12', { app: 'db', tier: 'back' }));
  f.create('Service', svc('shop', 'cart', '10.96.0.13', { app: 'cart' }));
  f.create('Service', svc('shop', 'pay', '10.96.0.14', { app: 'pay' }));
  f.create('EndpointSlice', slice('default', 'web', 'web-abcde', [{ name: 'http', port: 8080 }], [{ ip: '10.244.1.5', node: 'n1' }]));
  f.create('Node', { metadata: { name: 'n1', labels: { 'topology.kubernetes.io/zone': 'a' } }, spec: {}, status: { addresses: [{ type: 'InternalIP', address: '192.168.1.1' }] } });
  f.create('Node', { metadata: { name: 'n2' }, spec: { unschedulable: true }, status: { addresses: [{ type: 'InternalIP', address: '192.168.1.2' }] } });
}

const names = (items: unknown[]): string[] => items.map((o) => (o as { metadata: { name: string } }).metadata.name);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function eventually(pred: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const until = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

let fake: FakeApiServer;
beforeEach(async () => {
  fake = new FakeApiServer({ bookmarkIntervalMs: 100 });
  await fake.start();
  seed(fake);
});
afterEach(async () => {
  await fake.stop();
});

describe('wire protocol', () => {
  it('lists without kind/apiVersion on items, GETs with them, like the real server', async () => {
    const list = await getJson(`${fake.url}${SVC}`);
    expect(list.status).toBe(200);
    expect(list.body.kind).toBe('ServiceList');
    expect(list.body.apiVersion).toBe('v1');
    expect((list.body.metadata as { resourceVersion: string }).resourceVersion).toBe(String(fake.resourceVersion));
    const items = list.body.items as Record<string, unknown>[];
    expect(names(items)).toEqual(['api', 'db', 'web', 'cart', 'pay']); // etcd key order: namespace/name
    for (const i of items) expect(i).not.toHaveProperty('kind');
    const one = await getJson(`${fake.url}/api/v1/namespaces/shop/services/cart`);
    expect(one.body).toMatchObject({ kind: 'Service', apiVersion: 'v1', metadata: { name: 'cart', namespace: 'shop' } });
    const slices = await getJson(`${fake.url}${SLICES}`);
    expect(slices.body).toMatchObject({ kind: 'EndpointSliceList', apiVersion: 'discovery.k8s.io/v1' });
  });

  it.each([
    { what: 'namespaced collection', path: '/api/v1/namespaces/shop/services', want: ['cart', 'pay'] },
    { what: 'label equality', path: `${SVC}?labelSelector=tier%3Dback`, want: ['api', 'db'] },
    { what: 'label inequality', path: `${SVC}?labelSelector=tier!%3Dback`, want: ['web', 'cart', 'pay'] },
    { what: 'label set', path: `${SVC}?labelSelector=app+in+(web,cart)`, want: ['web', 'cart'] },
    { what: 'label notin and exists', path: `${SVC}?labelSelector=tier,app+notin+(web)`, want: ['api', 'db'] },
    { what: 'label absent', path: `${SVC}?labelSelector=!tier`, want: ['cart', 'pay'] },
    { what: 'field name', path: `${NODES}?fieldSelector=metadata.name%3Dn2`, want: ['n2'] },
    { what: 'field namespace', path: `${SVC}?fieldSelector=metadata.namespace!%3Ddefault`, want: ['cart', 'pay'] },
    { what: 'field unschedulable', path: `${NODES}?fieldSelector=spec.unschedulable%3Dfalse`, want: ['n1'] },
    { what: 'namespaced slices', path: '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices', want: ['web-abcde'] },
  ])('LIST filters: $what', async ({ path, want }) => {
    const r = await getJson(`${fake.url}${path}`);
    expect(r.status).toBe(200);
    expect(names(r.body.items as unknown[])).toEqual(want);
  });

  it.each([
    { what: 'unsupported field selector', path: `${SVC}?fieldSelector=spec.clusterIP%3D1`, code: 400 },
    { what: 'malformed label selector', path: `${SVC}?labelSelector=a%3D%3D%3Db`, code: 400 },
    { what: 'unknown resource', path: '/api/v1/pods', code: 404 },
    { what: 'missing object', path: '/api/v1/namespaces/default/services/nope', code: 404 },
    { what: 'cluster-scoped type under a namespace', path: '/api/v1/namespaces/default/nodes', code: 404 },
    { what: 'bad continue token', path: `${SVC}?limit=1&continue=garbage`, code: 400 },
  ])('errors are Status objects: $what', async ({ path, code }) => {
    const r = await getJson(`${fake.url}${path}`);
    expect(r.status).toBe(code);
    expect(r.body).toMatchObject({ kind: 'Status', status: 'Failure', code });
  });

  it('pages with limit/continue from one snapshot, even while the store changes', async () => {
    const p1 = await getJson(`${fake.url}${SVC}?limit=2`);
    const meta1 = p1.body.metadata as { continue: string; remainingItemCount: number; resourceVersion: string };
    expect(names(p1.body.items as unknown[])).toEqual(['api', 'db']);
    expect(meta1.remainingItemCount).toBe(3);
    // Changes after the first page must not show in later pages of the same list.
    fake.delete('Service', { metadata: { namespace: 'shop', name: 'cart' } });
    fake.create('Service', svc('shop', 'bag', '10.96.0.20'));
    const p2 = await getJson(`${fake.url}${SVC}?limit=2&continue=${meta1.continue}`);
    const meta2 = p2.body.metadata as { continue: string; resourceVersion: string };
    expect(names(p2.body.items as unknown[])).toEqual(['web', 'cart']);
    expect(meta2.resourceVersion).toBe(meta1.resourceVersion);
    const p3 = await getJson(`${fake.url}${SVC}?limit=2&continue=${meta2.continue}`);
    expect(names(p3.body.items as unknown[])).toEqual(['pay']);
    expect(p3.body.metadata).not.toHaveProperty('continue');
    // A fresh list sees the new state.
    expect(names((await getJson(`${fake.url}${SVC}`)).body.items as unknown[])).toEqual(['api', 'db', 'web', 'bag', 'pay']);
  });

  it('answers 410 Expired to a continue token whose snapshot was compacted', async () => {
    const p1 = await getJson(`${fake.url}${SVC}?limit=2`);
    fake.update('Service', svc('default', 'web', '10.96.0.10', { app: 'web2' }));
    fake.compactHistory();
    const p2 = await getJson(`${fake.url}${SVC}?limit=2&continue=${(p1.body.metadata as { continue: string }).continue}`);
    expect(p2.status).toBe(410);
    expect(p2.body).toMatchObject({ kind: 'Status', reason: 'Expired', code: 410 });
  });

  it('watch without resourceVersion starts with ADDED for what exists, then streams changes with kind set', async () => {
    const w = openWatch(`${fake.url}/api/v1/namespaces/shop/services?watch=true`);
    expect(await w.status).toBe(200);
    await w.until((ev) => ev.length === 2);
    fake.update('Service', svc('shop', 'cart', '10.96.0.13', { app: 'cart', v: '2' }));
    fake.create('Service', svc('default', 'elsewhere', '10.96.0.30')); // other namespace: not seen
    fake.delete('Service', { metadata: { namespace: 'shop', name: 'pay' } });
    const ev = await w.until((e) => e.length === 4);
    expect(ev.map((e) => [e.type, e.object.metadata?.name])).toEqual([['ADDED', 'cart'], ['ADDED', 'pay'], ['MODIFIED', 'cart'], ['DELETED', 'pay']]);
    for (const e of ev) expect(e.object).toMatchObject({ kind: 'Service', apiVersion: 'v1' });
    // A deleted object carries the deletion's resourceVersion.
    expect(ev[3]!.object.metadata?.resourceVersion).toBe(String(fake.resourceVersion));
    w.close();
  });

  it('watch from a resourceVersion replays exactly the events after it', async () => {
    const rv = fake.resourceVersion;
    fake.create('Service', svc('default', 'late', '10.96.0.40'));
    fake.delete('Service', { metadata: { namespace: 'default', name: 'db' } });
    const w = openWatch(`${fake.url}${SVC}?watch=1&resourceVersion=${rv}`);
    const ev = await w.until((e) => e.length === 2);
    expect(ev.map((e) => [e.type, e.object.metadata?.name])).toEqual([['ADDED', 'late'], ['DELETED', 'db']]);
    await sleep(50);
    expect(w.events).toHaveLength(2);
    w.close();
  });

  it('a selector watch sees an object leave and enter its selection as DELETED and ADDED', async () => {
    const w = openWatch(`${fake.url}${SVC}?watch=true&resourceVersion=${fake.resourceVersion}&labelSelector=tier%3Dback`);
    await w.status;
    fake.update('Service', svc('default', 'api', '10.96.0.11', { app: 'api', tier: 'front' }));
    fake.update('Service', svc('default', 'web', '10.96.0.10', { app: 'web', tier: 'back' }));
    fake.update('Service', svc('shop', 'cart', '10.96.0.50', { app: 'cart' })); // never matches
    const ev = await w.until((e) => e.length === 2);
    expect(ev.map((e) => [e.type, e.object.metadata?.name])).toEqual([['DELETED', 'api'], ['ADDED', 'web']]);
    w.close();
  }, 10_000);

  it('a watch from a compacted resourceVersion gets 200, one ERROR event with a 410 Status, and the end', async () => {
    const old = fake.resourceVersion;
    fake.create('Service', svc('default', 'late', '10.96.0.40'));
    fake.compactHistory();
    const w = openWatch(`${fake.url}${SVC}?watch=true&resourceVersion=${old}`);
    expect(await w.status).toBe(200);
    expect(await w.ended).toBe('clean');
    expect(w.events).toEqual([
      { type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${old} (${fake.resourceVersion})`, reason: 'Expired', code: 410 } },
    ]);
    // The current version is still fine to watch from.
    const ok = openWatch(`${fake.url}${SVC}?watch=true&resourceVersion=${fake.resourceVersion}`);
    expect(await ok.status).toBe(200);
    await sleep(50);
    expect(ok.events).toEqual([]);
    ok.close();
  });

  it('with a bounded history, a watch resumes inside the window and gets 410 from before it', async () => {
    const f = new FakeApiServer({ historyLimit: 2 });
    await f.start();
    try {
      const rv0 = f.resourceVersion;
      f.create('Service', svc('default', 'a', '10.96.1.1'));
      const rv1 = f.resourceVersion;
      f.create('Service', svc('default', 'b', '10.96.1.2'));
      f.create('Service', svc('default', 'c', '10.96.1.3'));
      const inside = openWatch(`${f.url}${SVC}?watch=true&resourceVersion=${rv1}`);
      expect((await inside.until((e) => e.length === 2)).map((e) => e.object.metadata?.name)).toEqual(['b', 'c']);
      inside.close();
      const before = openWatch(`${f.url}${SVC}?watch=true&resourceVersion=${rv0}`);
      expect(await before.ended).toBe('clean');
      expect(before.events[0]).toMatchObject({ type: 'ERROR', object: { code: 410, reason: 'Expired' } });
    } finally {
      await f.stop();
    }
  });

  it('setWatchLifetime ends every new watch cleanly after that long', async () => {
    fake.setWatchLifetime(50);
    const w = openWatch(`${fake.url}${SVC}?watch=true&resourceVersion=${fake.resourceVersion}`);
    expect(await w.ended).toBe('clean');
    fake.setWatchLifetime(undefined);
    const v = openWatch(`${fake.url}${SVC}?watch=true&resourceVersion=${fake.resourceVersion}`);
    await v.status;
    await sleep(100);
    expect(fake.openWatches).toBe(1);
    v.close();
  });

  it('sends BOOKMARKs only when asked, at the current version, and ends at timeoutSeconds', async () => {
    const plain = openWatch(`${fake.url}${SVC}?watch=true&resourceVersion=${fake.resourceVersion}`);
    const w = openWatch(`${fake.url}${SVC}?watch=true&resourceVersion=${fake.resourceVersion}&allowWatchBookmarks=true&timeoutSeconds=1`);
    await w.until((e) => e.some((x) => x.type === 'BOOKMARK'));
    fake.create('Node', { metadata: { name: 'n3' } }); // another kind: moves the version, not this stream
    await w.until((e) => e.some((x) => x.type === 'BOOKMARK' && x.object.metadata?.resourceVersion === String(fake.resourceVersion)));
    expect(w.events.every((x) => x.type === 'BOOKMARK')).toBe(true);
    expect(w.events[0]!.object).toMatchObject({ kind: 'Service', apiVersion: 'v1' });
    expect(await w.ended).toBe('clean');
    expect(plain.events).toEqual([]);
    plain.close();
  });

  it('sendInitialEvents: ADDED for everything, then a bookmark marking the end of them', async () => {
    const w = openWatch(`${fake.url}${NODES}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan`);
    const ev = await w.until((e) => e.length === 3);
    expect(ev.map((e) => e.type)).toEqual(['ADDED', 'ADDED', 'BOOKMARK']);
    expect(ev[2]!.object.metadata).toMatchObject({ annotations: { 'k8s.io/initial-events-end': 'true' } });
    w.close();
  });

  it('test controls: frozen watches hold events, dropWatches ends them abruptly or cleanly', async () => {
    const a = openWatch(`${fake.url}${SVC}?watch=true&resourceVersion=${fake.resourceVersion}`);
    await a.status;
    fake.freezeWatches();
    fake.create('Service', svc('default', 'held', '10.96.0.60'));
    await sleep(50);
    expect(a.events).toEqual([]);
    fake.thawWatches();
    await a.until((e) => e.length === 1);
    const b = openWatch(`${fake.url}${SVC}?watch=true&resourceVersion=${fake.resourceVersion}`);
    await b.status;
    expect(fake.openWatches).toBe(2);
    fake.dropWatches('abrupt');
    expect(await a.ended).toBe('error');
    expect(await b.ended).toBe('error');
    const c = openWatch(`${fake.url}${SVC}?watch=true&resourceVersion=${fake.resourceVersion}`);
    await c.status;
    fake.dropWatches('graceful');
    expect(await c.ended).toBe('clean');
  });

  it('setFailNext and setDelay apply to the matching verb, then go away', async () => {
    fake.setFailNext(SVC, 503, { verb: 'list' });
    const w = openWatch(`${fake.url}${SVC}?watch=true&resourceVersion=${fake.resourceVersion}`);
    expect(await w.status).toBe(200); // a watch is not a list
    w.close();
    const failed = await getJson(`${fake.url}${SVC}`);
    expect(failed.status).toBe(503);
    expect(failed.body).toMatchObject({ kind: 'Status', code: 503, reason: 'ServiceUnavailable' });
    expect((await getJson(`${fake.url}${SVC}`)).status).toBe(200);
    fake.setDelay(SLICES, 200);
    const t0 = Date.now();
    expect((await getJson(`${fake.url}${SLICES}`)).status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
  });

  it('stop() cuts every connection and refuses new ones; start() comes back on the same port with the same data', async () => {
    const port = fake.port;
    const w = openWatch(`${fake.url}${SVC}?watch=true&resourceVersion=${fake.resourceVersion}`);
    await w.status;
    await fake.stop();
    expect(await w.ended).toBe('error');
    await expect(fetch(`${fake.url}${SVC}`)).rejects.toThrow();
    fake.create('Service', svc('default', 'while-down', '10.96.0.70'));
    await fake.start();
    expect(fake.port).toBe(port);
    expect(names((await getJson(`${fake.url}${SVC}`)).body.items as unknown[])).toContain('while-down');
  });

  it('listenUnix serves the same API, TLS included, on a Unix socket; stop() closes it, start() reopens it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fake-unix-'));
    const path = join(dir, 'api.sock');
    // HTTPS over the socket, verified against the test CA (the certificate names localhost).
    const get = (url: string): Promise<{ status: number; text: string }> => new Promise((resolve, reject) => {
      httpsGet({ socketPath: path, path: url, ca: TEST_CA, servername: 'localhost' }, (r) => {
        let text = '';
        r.on('data', (d: Buffer) => (text += d.toString()));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, text }));
      }).on('error', reject);
    });
    try {
      await fake.listenUnix(path);
      const list = await get(SVC);
      expect(list.status).toBe(200);
      expect(names((JSON.parse(list.text) as { items: unknown[] }).items)).toEqual(['api', 'db', 'web', 'cart', 'pay']);
      fake.setFailNext(SVC, 503);
      expect((await get(SVC)).status).toBe(503);
      await fake.stop();
      await expect(get(SVC)).rejects.toThrow();
      fake.create('Service', svc('default', 'while-down', '10.96.0.70'));
      await fake.start();
      expect(names((JSON.parse((await get(SVC)).text) as { items: unknown[] }).items)).toContain('while-down');
    } finally {
      await fake.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!haveKubectl)('kubectl 1.32 against the fake', () => {
  let kubectl: Kubectl;
  beforeEach(() => {
    kubectl = new Kubectl(fake);
  });
  afterEach(() => kubectl.cleanup());

  const listNames = (out: string): string[] => names((JSON.parse(out) as { items: unknown[] }).items);

  it.each([
    { args: ['get', 'svc', '-A', '-o', 'json'], check: (out: string) => expect(listNames(out)).toEqual(['api', 'db', 'web', 'cart', 'pay']) },
    { args: ['get', 'services', '-n', 'shop', '-o', 'json'], check: (out: string) => expect(listNames(out)).toEqual(['cart', 'pay']) },
    { args: ['get', 'svc', '-o', 'name'], check: (out: string) => expect(out.trim().split('\n')).toEqual(['service/api', 'service/db', 'service/web']) },
    { args: ['get', 'endpointslices', '-A'], check: (out: string) => expect(out).toMatch(/^NAMESPACE\s+NAME\s+AGE\ndefault\s+web-abcde\s+\d+s\n$/) },
    { args: ['get', 'endpointslices.discovery.k8s.io', '-A', '-o', 'json'], check: (out: string) => expect(JSON.parse(out).items[0]).toMatchObject({ kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', addressType: 'IPv4' }) },
    { args: ['get', 'no', 'n1', '-o', 'json'], check: (out: string) => expect(JSON.parse(out)).toMatchObject({ kind: 'Node', metadata: { name: 'n1' } }) },
    { args: ['get', 'svc', '-A', '-l', 'tier=back', '-o', 'name'], check: (out: string) => expect(out.trim().split('\n')).toEqual(['service/api', 'service/db']) },
    { args: ['get', 'nodes', '--field-selector', 'metadata.name=n2', '-o', 'name'], check: (out: string) => expect(out.trim()).toBe('node/n2') },
  ].map((c) => ({ ...c, cmd: c.args.join(' ') })))('kubectl $cmd', async ({ args, check }) => {
    const r = await kubectl.run(args);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    check(r.stdout);
  });

  it('kubectl reports a missing object as the server said', async () => {
    const r = await kubectl.run(['get', 'svc', 'nope']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Error from server (NotFound): services "nope" not found');
  });

  it('kubectl --chunk-size pages with limit and continue and sees every object once', async () => {
    const r = await kubectl.run(['get', 'svc', '-A', '--chunk-size=2', '-o', 'name']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['service/api', 'service/db', 'service/web', 'service/cart', 'service/pay']);
    const lists = fake.requests.filter((q) => q.verb === 'list' && q.path === SVC);
    expect(lists.map((q) => [q.query.limit, q.query.continue !== undefined])).toEqual([['2', false], ['2', true], ['2', true]]);
  });

  it('kubectl --watch lists, then watches from the list version and sees later changes', async () => {
    const w = kubectl.spawn(['get', 'svc', '-A', '--watch', '--output-watch-events', '-o', 'json']);
    try {
      await w.waitFor((o) => jsonStream(o).length === 5);
      fake.create('Service', svc('default', 'late', '10.96.0.40'));
      fake.update('Service', svc('shop', 'cart', '10.96.0.13', { v: '2' }));
      fake.delete('Service', { metadata: { namespace: 'default', name: 'db' } });
      await w.waitFor((o) => jsonStream(o).length === 8);
      const ev = jsonStream(w.output()) as { type: string; object: { metadata: { name: string } } }[];
      expect(ev.map((e) => [e.type, e.object.metadata.name])).toEqual([
        ['ADDED', 'api'], ['ADDED', 'db'], ['ADDED', 'web'], ['ADDED', 'cart'], ['ADDED', 'pay'],
        ['ADDED', 'late'], ['MODIFIED', 'cart'], ['DELETED', 'db'],
      ]);
    } finally {
      w.kill();
    }
    const list = fake.requests.find((q) => q.verb === 'list' && q.path === SVC)!;
    const watch = fake.requests.find((q) => q.verb === 'watch' && q.path === SVC)!;
    expect(list.query).toEqual({ limit: '500' });
    expect(watch.query).toEqual({ watch: 'true', resourceVersion: '9' });
  });

  it('kubectl discovers the types through the legacy discovery documents', async () => {
    await kubectl.run(['get', 'svc']);
    const discovery = fake.requests.filter((q) => q.verb === 'discovery').map((q) => q.path);
    expect(discovery).toEqual(expect.arrayContaining(['/api', '/apis', '/api/v1', '/apis/discovery.k8s.io/v1']));
    // kubectl >= 1.26 asks for aggregated discovery first and accepts the plain answer
    // (Debian's kubernetes-client 1.20 asks for plain JSON only).
    const v = JSON.parse((await kubectl.run(['version', '--client', '-o', 'json'])).stdout) as { clientVersion: { minor: string } };
    if (parseInt(v.clientVersion.minor, 10) >= 26) expect(fake.requests.find((q) => q.path === '/api')!.accept).toContain('as=APIGroupDiscoveryList');
  });
});

describe('client-node 1.4 informer against the fake', () => {
  const informers: k8s.Informer<k8s.KubernetesObject>[] = [];
  afterAll(async () => {
    for (const i of informers) await i.stop();
  });

  function serviceInformer(): { inf: k8s.Informer<k8s.V1Service> & k8s.ObjectCache<k8s.V1Service>; log: string[] } {
    const kc = new k8s.KubeConfig();
    kc.loadFromString(fake.kubeconfig());
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const inf = k8s.makeInformer(kc, SVC, () => core.listServiceForAllNamespaces());
    const log: string[] = [];
    inf.on('add', (o) => log.push(`add ${o.metadata?.name}`));
    inf.on('update', (o) => log.push(`update ${o.metadata?.name}`));
    inf.on('delete', (o) => log.push(`delete ${o.metadata?.name}`));
    inf.on('error', (e) => log.push(`error ${(e as Error).message}`));
    informers.push(inf as k8s.Informer<k8s.KubernetesObject>);
    return { inf, log };
  }
  const cached = (inf: k8s.ObjectCache<k8s.V1Service>): string[] => inf.list().map((o) => o.metadata!.name!).sort();

  it('lists, watches from the list version, and follows ADDED/MODIFIED/DELETED', async () => {
    const { inf, log } = serviceInformer();
    await inf.start();
    expect(cached(inf)).toEqual(['api', 'cart', 'db', 'pay', 'web']);
    fake.create('Service', svc('default', 'late', '10.96.0.40'));
    fake.update('Service', svc('default', 'web', '10.96.0.10', { v: '2' }));
    fake.delete('Service', { metadata: { namespace: 'shop', name: 'pay' } });
    await eventually(() => log.length === 8);
    expect(log.slice(5)).toEqual(['add late', 'update web', 'delete pay']);
    expect(cached(inf)).toEqual(['api', 'cart', 'db', 'late', 'web']);
    // What it asked: a plain list (the generated client sends no limit), then a watch
    // from the list's version with no timeout and no bookmarks.
    const asked = fake.requests.filter((q) => q.path === SVC).map((q) => [q.verb, q.query]);
    expect(asked).toEqual([['list', {}], ['watch', { watch: 'true', resourceVersion: '9' }]]);
    await inf.stop();
  });

  it('relists after a 410 ERROR event and reports what was deleted in the gap', async () => {
    const { inf, log } = serviceInformer();
    await inf.start();
    fake.freezeWatches(); // the informer misses what happens next…
    fake.delete('Service', { metadata: { namespace: 'default', name: 'db' } });
    fake.create('Service', svc('default', 'late', '10.96.0.40'));
    fake.compactHistory(); // …and the history it would resume from is gone.
    fake.dropWatches('graceful');
    fake.thawWatches();
    await eventually(() => cached(inf).join() === 'api,cart,late,pay,web', 3000, 'relist');
    expect(log.slice(5)).toEqual(['delete db', 'add late']);
    // The cache is updated from the relist before the next watch goes out.
    const asked = (): string[] => fake.requests.filter((q) => q.path === SVC).map((q) => q.verb);
    await eventually(() => asked().length === 5, 3000, 'the watch after the relist');
    expect(asked()).toEqual(['list', 'watch', 'watch', 'list', 'watch']);
    await inf.stop();
  });

  it('stops for good on any other watch failure (why our source restarts it)', async () => {
    const { inf, log } = serviceInformer();
    await inf.start();
    fake.dropWatches('abrupt');
    await eventually(() => log.some((l) => l.startsWith('error')));
    expect(log.at(-1)).toBe('error Premature close');
    const before = fake.requests.length;
    fake.create('Service', svc('default', 'unseen', '10.96.0.41'));
    await sleep(200);
    expect(fake.requests.length).toBe(before);
    expect(cached(inf)).not.toContain('unseen');
    // The cache survives, and start() resumes the watch from the last version: no relist.
    await inf.start();
    await eventually(() => cached(inf).includes('unseen'));
    expect(fake.requests.slice(before).map((q) => q.verb)).toEqual(['watch']);
    await inf.stop();
  });

  it('its generated list client drops fields it does not know (why our source lists raw JSON)', async () => {
    const s = svc('default', 'future', '10.96.0.42');
    (s.spec as Record<string, unknown>).someFutureField = 'x';
    fake.create('Service', s);
    const kc = new k8s.KubeConfig();
    kc.loadFromString(fake.kubeconfig());
    const list = await kc.makeApiClient(k8s.CoreV1Api).listNamespacedService({ namespace: 'default' });
    const typed = list.items.find((i) => i.metadata?.name === 'future')!;
    expect(typed.spec).not.toHaveProperty('someFutureField');
    expect(typed.metadata?.creationTimestamp).toBeInstanceOf(Date);
    expect(typed).not.toHaveProperty('kind');
  });

  it('a Node informer with a field selector (ListWatch directly: makeInformer takes none) sees only its node', async () => {
    const kc = new k8s.KubeConfig();
    kc.loadFromString(fake.kubeconfig());
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const lw = new k8s.ListWatch<k8s.V1Node>(NODES, new k8s.Watch(kc), () => core.listNode({ fieldSelector: 'metadata.name=n1' }), false, undefined, 'metadata.name=n1');
    informers.push(lw as unknown as k8s.Informer<k8s.KubernetesObject>);
    await lw.start();
    expect(lw.list().map((n) => n.metadata!.name)).toEqual(['n1']);
    fake.update('Node', { metadata: { name: 'n2', labels: { x: 'y' } } });
    fake.update('Node', { metadata: { name: 'n1', labels: { x: 'y' } } });
    await eventually(() => lw.get('n1')?.metadata?.labels?.x === 'y');
    expect(lw.list()).toHaveLength(1);
    const watch = fake.requests.find((q) => q.verb === 'watch' && q.path === NODES)!;
    expect(watch.query).toMatchObject({ fieldSelector: 'metadata.name=n1' });
    await lw.stop();
  });
});

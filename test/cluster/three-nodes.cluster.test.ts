// Three simulated nodes, each running `nftproxy run --kubeconfig …` against the fake API
// server (test/lab/cluster.ts): services created, scaled and deleted reach every node's
// kernel; traffic policies differ per node as they should; healthCheckNodePorts answer per
// node; an API server restart and watch expiry (410) keep the rules and then converge; a
// slow initial list holds back the first sync.
//
// Convergence is "within the sync period": every check polls until the expected outcome
// holds (deadline a few seconds), then asserts it once more over 30+ fresh connections.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeApiServer } from '../fake-apiserver/server.js';
import { API_ADDRESS, type Client, Cluster, type ClusterNode, type ClusterPod, EXTERNAL_IP, type Seen } from '../lab/cluster.js';
import { canUseKernel, KERNEL_SKIP_REASON } from '../lab/netns.js';
import { service, slice } from '../support/builders.js';
import { type Daemon, httpGet, type LogLine, synced } from '../support/daemon.js';

const SLICES = '/apis/discovery.k8s.io/v1/endpointslices';
const TARGET = 8080;
const SERVICE_CIDR = '10.96.0.0/16';
/** outcomes that need a timeout to show (DROP) wait this long per try */
const DROP_MS = 700;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Svc {
  name: string;
  clusterIP: string;
  nodePort?: number;
  type?: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
  itp?: 'Local';
  etp?: 'Local';
  healthCheckNodePort?: number;
  lbIP?: string;
}

const svcObject = (s: Svc): Record<string, unknown> => service('lab', s.name, {
  type: s.type ?? (s.nodePort ? 'NodePort' : 'ClusterIP'),
  clusterIP: s.clusterIP, clusterIPs: [s.clusterIP], ipFamilies: ['IPv4'],
  ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: TARGET, ...(s.nodePort ? { nodePort: s.nodePort } : {}) }],
  ...(s.itp ? { internalTrafficPolicy: s.itp } : {}),
  ...(s.etp ? { externalTrafficPolicy: s.etp } : {}),
  ...(s.healthCheckNodePort ? { healthCheckNodePort: s.healthCheckNodePort } : {}),
}, s.lbIP ? { loadBalancer: { ingress: [{ ip: s.lbIP }] } } : undefined);

const sliceObject = (s: Svc, eps: readonly ClusterPod[], notReady: readonly ClusterPod[] = []): Record<string, unknown> =>
  slice('lab', s.name, `${s.name}-1`, [{ name: 'http', port: TARGET }], eps.map((p) => ({ ip: p.ip, node: p.node.name, zone: p.node.zone, ready: !notReady.includes(p) })));

const ips = (pods: readonly ClusterPod[]): string[] => pods.map((p) => p.ip).sort();

describe.skipIf(!canUseKernel)(`three nodes against the fake API server${canUseKernel ? '' : ` [skipped: ${KERNEL_SKIP_REASON}]`}`, () => {
  let dir: string;
  let fake: FakeApiServer;
  let cluster: Cluster | undefined;
  let n1: ClusterNode, n2: ClusterNode, n3: ClusterNode;
  const c = (): Cluster => cluster!;
  const nodes = (): ClusterNode[] => [n1, n2, n3];
  const pod = (n: ClusterNode, k: number): ClusterPod => n.pods[k]!;

  const create = (s: Svc, eps: readonly ClusterPod[]): void => {
    fake.create('Service', svcObject(s));
    fake.create('EndpointSlice', sliceObject(s, eps));
  };
  const remove = (s: Svc): void => {
    fake.delete('EndpointSlice', { metadata: { namespace: 'lab', name: `${s.name}-1` } });
    fake.delete('Service', { metadata: { namespace: 'lab', name: s.name } });
  };

  /** Every probe: [what it is called, how to run it, what it must show]. */
  type Check = [string, () => Promise<Seen>, string[] | string];
  const toClusterIP = (from: Client, s: Svc, expect: string[] | string): Check =>
    [`${from.label} -> ${s.name} ${s.clusterIP}:80`, () => c().probe(from, s.clusterIP, 80, { timeoutMs: Array.isArray(expect) ? 1500 : DROP_MS }), expect];
  const toNodePort = (n: ClusterNode, s: Svc, expect: string[] | string): Check =>
    [`external -> ${n.name} ${n.ip}:${s.nodePort}`, () => c().probe(c().external, n.ip, s.nodePort!, { timeoutMs: Array.isArray(expect) ? 1500 : DROP_MS }), expect];

  /**
   * Polls all checks (in parallel) until every one shows its expectation, then runs them
   * once more with 40 fresh connections each and asserts: the exact set, never a subset.
   */
  async function converge(checks: Check[], deadlineMs = 6000): Promise<Map<string, Seen>> {
    const end = Date.now() + deadlineMs;
    let last: [string, Seen][] = [];
    for (;;) {
      last = await Promise.all(checks.map(async ([name, run]) => [name, await run()] as [string, Seen]));
      if (last.every(([, seen], i) => JSON.stringify(seen.got) === JSON.stringify(checks[i]![2]))) break;
      if (Date.now() > end) break;
      await sleep(100);
    }
    const final = await Promise.all(checks.map(async ([name, run]) => [name, await run()] as [string, Seen]));
    expect(Object.fromEntries(final.map(([name, s]) => [name, s.got])), `did not converge in ${deadlineMs} ms; last poll: ${JSON.stringify(Object.fromEntries(last.map(([n, s]) => [n, s.got])))}`)
      .toEqual(Object.fromEntries(checks.map(([name, , want]) => [name, want])));
    return new Map(final);
  }

  const waitLog = (d: Daemon, pred: (l: LogLine) => boolean, from: number, ms = 15_000): Promise<LogLine> => d.waitFor(pred, ms, from);
  const logMarks = (): number[] => nodes().map((n) => c().daemon(n).logs.length);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nftproxy-cluster-'));
    fake = new FakeApiServer();
    await fake.start();
    await fake.listenUnix(join(dir, 'api.sock'));
    cluster = await Cluster.create('cl', {
      apiSocket: join(dir, 'api.sock'), kubeconfig: fake.kubeconfig('default', API_ADDRESS), dir,
      ports: [TARGET], nodes: 3, podsPerNode: 2,
      daemonArgs: ['--service-cidr', SERVICE_CIDR, '--sync-period', '10s'],
    });
    [n1, n2, n3] = [c().node(1), c().node(2), c().node(3)];
    for (const n of nodes()) fake.create('Node', c().nodeObject(n));
    // The three daemons start in parallel.
    await Promise.all(nodes().map((n) => c().startDaemon(n)));
  }, 90_000);

  // A failed test shows what each daemon said during it, and leaves the fake serving and
  // unbroken for the next one.
  beforeEach(({ onTestFailed }) => {
    const daemons = c().daemonsByNode();
    const marks = new Map([...daemons].map(([name, d]) => [name, d.logs.length]));
    onTestFailed(() => {
      for (const [name, d] of c().daemonsByNode()) {
        console.log(`--- ${name} (nftproxy logs during the test, last 40) ---\n${d.logs.slice(marks.get(name) ?? 0).slice(-40).map((l) => JSON.stringify(l)).join('\n')}`);
      }
    });
    onTestFailed(async () => {
      fake.thawWatches();
      fake.clearFaults();
      await fake.start();
    });
  });

  afterAll(async () => {
    await cluster?.destroy();
    await fake?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('create, scale and delete a ClusterIP + NodePort service: every node converges', async () => {
    const web: Svc = { name: 'web', clusterIP: '10.96.0.10', nodePort: 30080 };
    const clientPod = c().pod(pod(n3, 1));
    const everywhere = (want: string[] | string, nodePortWant: string[] | string = want): Check[] => [
      ...nodes().map((n) => toClusterIP(c().host(n), web, want)),
      toClusterIP(clientPod, web, want),
      ...nodes().map((n) => toNodePort(n, web, nodePortWant)),
    ];

    // Endpoints on pods of node-1 and node-2: from every node, a pod of node-3 and the
    // outside (NodePort on each node, eTP=Cluster), exactly those two.
    let eps = [pod(n1, 0), pod(n2, 0)];
    create(web, eps);
    const seen = await converge(everywhere(ips(eps)));
    // A pod client is not masqueraded (it is inside the cluster CIDR); the outside is
    // (eTP=Cluster), to the address of the node it entered by.
    expect(seen.get(`${clientPod.label} -> web 10.96.0.10:80`)!.saw).toEqual([pod(n3, 1).ip]);
    expect(seen.get(`external -> node-3 ${n3.ip}:30080`)!.saw).toEqual([n3.ip]);

    // Scale: one more on node-3, one fewer on node-1.
    eps = [pod(n2, 0), pod(n3, 0)];
    fake.update('EndpointSlice', sliceObject(web, eps));
    await converge(everywhere(ips(eps)));

    // No endpoints left: the service still exists, so every node rejects.
    fake.update('EndpointSlice', sliceObject(web, []));
    await converge(everywhere('REJECT'));

    // Deleted: its ClusterIP is unallocated (inside --service-cidr: dropped, as kube-proxy
    // does), its NodePort is nobody's (refused by the node's own stack).
    remove(web);
    await converge(everywhere('DROP', 'REJECT'));
    for (const n of nodes()) expect(await c().clusterIPs(n)).not.toContain(web.clusterIP);
  }, 60_000);

  it('iTP=Local and eTP=Local differ per node; healthCheckNodePort answers 200 only where endpoints are local and ready', async () => {
    // internalTrafficPolicy: Local, endpoints on node-1 only.
    const internal: Svc = { name: 'local-int', clusterIP: '10.96.0.20', itp: 'Local' };
    create(internal, [pod(n1, 0)]);
    // externalTrafficPolicy: Local LoadBalancer, endpoints on node-1 (two) and node-2 (one).
    const shop: Svc = { name: 'shop', type: 'LoadBalancer', clusterIP: '10.96.0.30', nodePort: 30090, etp: 'Local', healthCheckNodePort: 32090, lbIP: '198.51.100.30' };
    const shopEps = [pod(n1, 0), pod(n1, 1), pod(n2, 0)];
    create(shop, shopEps);

    const seen = await converge([
      toClusterIP(c().host(n1), internal, [pod(n1, 0).ip]),
      toClusterIP(c().host(n2), internal, 'DROP'),
      toClusterIP(c().host(n3), internal, 'DROP'),
      toClusterIP(c().pod(pod(n2, 1)), internal, 'DROP'),
      toNodePort(n1, shop, ips([pod(n1, 0), pod(n1, 1)])),
      toNodePort(n2, shop, [pod(n2, 0).ip]),
      toNodePort(n3, shop, 'DROP'),
      // eTP does not restrict ClusterIP traffic: node-3 reaches all three.
      toClusterIP(c().host(n3), shop, ips(shopEps)),
    ]);
    // eTP=Local keeps the client's address.
    expect(seen.get(`external -> node-1 ${n1.ip}:30090`)!.saw).toEqual([EXTERNAL_IP]);
    expect(seen.get(`external -> node-2 ${n2.ip}:30090`)!.saw).toEqual([EXTERNAL_IP]);

    // The LoadBalancer IP, routed by the outside to one node or another.
    await c().routeExternal(shop.lbIP!, n1);
    const lb1 = await c().probe(c().external, shop.lbIP!, 80, { count: 40 });
    expect(lb1).toEqual({ got: ips([pod(n1, 0), pod(n1, 1)]), saw: [EXTERNAL_IP] });
    await c().routeExternal(shop.lbIP!, n3);
    expect((await c().probe(c().external, shop.lbIP!, 80, { timeoutMs: DROP_MS })).got).toBe('DROP');

    // healthCheckNodePort, asked on each node's own IP from inside that node.
    const health = async (n: ClusterNode): Promise<{ status: number; local: number }> => {
      const r = await httpGet(n.ns.name, `http://${n.ip}:${shop.healthCheckNodePort}/`);
      const body = JSON.parse(r.body) as { localEndpoints: number; service: unknown };
      expect(body.service).toEqual({ namespace: 'lab', name: 'shop' });
      return { status: r.status, local: body.localEndpoints };
    };
    expect(await Promise.all(nodes().map(health))).toEqual([{ status: 200, local: 2 }, { status: 200, local: 1 }, { status: 503, local: 0 }]);

    // node-2's only endpoint stops being ready: node-2 fails its health check and drops.
    fake.update('EndpointSlice', sliceObject(shop, shopEps, [pod(n2, 0)]));
    const end = Date.now() + 5000;
    while ((await health(n2)).status !== 503 && Date.now() < end) await sleep(100);
    expect(await Promise.all(nodes().map(health))).toEqual([{ status: 200, local: 2 }, { status: 503, local: 0 }, { status: 503, local: 0 }]);
    await converge([
      toNodePort(n1, shop, ips([pod(n1, 0), pod(n1, 1)])),
      toNodePort(n2, shop, 'DROP'),
      toClusterIP(c().host(n3), shop, ips([pod(n1, 0), pod(n1, 1)])),
    ]);

    remove(internal);
    remove(shop);
  }, 60_000);

  it('API server restart: rules are kept while it is down, then every node converges to what changed meanwhile', async () => {
    const steady: Svc = { name: 'steady', clusterIP: '10.96.0.40' };
    const doomed: Svc = { name: 'doomed', clusterIP: '10.96.0.41' };
    const born: Svc = { name: 'born', clusterIP: '10.96.0.42' };
    create(steady, [pod(n1, 0), pod(n2, 0)]);
    create(doomed, [pod(n3, 0)]);
    const before = (): Check[] => nodes().flatMap((n) => [toClusterIP(c().host(n), steady, ips([pod(n1, 0), pod(n2, 0)])), toClusterIP(c().host(n), doomed, [pod(n3, 0).ip])]);
    await converge(before());

    const marks = logMarks();
    await fake.stop();
    // Every daemon notices (its watches were cut) and keeps its cache.
    await Promise.all(nodes().map((n, i) => waitLog(c().daemon(n), (l) => l.msg === 'watch failed; keeping the cache and restarting', marks[i]!)));
    const down = Date.now();
    // Rules kept: traffic goes on as before, from every node.
    await converge(before(), 0);

    // The world changes while the API server is down (the store is the fake's etcd: it
    // takes writes while nothing listens), and the history is compacted: resuming watches
    // get 410 Gone and must relist to see the delete.
    fake.update('EndpointSlice', sliceObject(steady, [pod(n2, 0), pod(n3, 0)]));
    remove(doomed);
    create(born, [pod(n1, 1)]);
    fake.compactHistory();
    await sleep(Math.max(0, 1500 - (Date.now() - down)));
    await converge(before(), 0); // still the old rules after a while without the API
    for (const n of nodes()) expect(await c().clusterIPs(n)).toContain(doomed.clusterIP);

    const restartMark = logMarks();
    await fake.start();
    await converge(nodes().flatMap((n) => [toClusterIP(c().host(n), steady, ips([pod(n2, 0), pod(n3, 0)])), toClusterIP(c().host(n), born, [pod(n1, 1).ip])]), 15_000);
    for (const n of nodes()) expect(await c().clusterIPs(n)).not.toContain(doomed.clusterIP);
    // Each daemon resumed from its old resourceVersion, was told 410, relisted.
    for (const [i, n] of nodes().entries()) {
      const logs = c().daemon(n).logs.slice(restartMark[i]);
      expect(logs.some((l) => l.msg === 'watch expired (410 Gone); relisting'), `${n.name} logs: ${JSON.stringify(logs.map((l) => l.msg))}`).toBe(true);
      expect(logs.filter((l) => l.level >= 50), `${n.name} errors`).toEqual([]);
    }
    remove(steady);
    remove(born);
  }, 60_000);

  it('watch expiry (410) mid-stream, graceful and abrupt: relist, converge, deletes in the gap included', async () => {
    const flux: Svc = { name: 'flux', clusterIP: '10.96.0.50' };
    const victim: Svc = { name: 'victim', clusterIP: '10.96.0.51' };
    const late: Svc = { name: 'late', clusterIP: '10.96.0.52' };
    create(flux, [pod(n1, 0)]);
    create(victim, [pod(n2, 1)]);
    await converge(nodes().flatMap((n) => [toClusterIP(c().host(n), flux, [pod(n1, 0).ip]), toClusterIP(c().host(n), victim, [pod(n2, 1).ip])]));

    for (const how of ['graceful', 'abrupt'] as const) {
      const marks = logMarks();
      // A gap: events stop reaching the daemons, things change (a delete among them), the
      // history is compacted, then the watches end. Resuming from before the gap is 410.
      fake.freezeWatches();
      if (how === 'graceful') {
        fake.update('EndpointSlice', sliceObject(flux, [pod(n1, 0), pod(n3, 0)]));
        remove(victim);
      } else {
        fake.update('EndpointSlice', sliceObject(flux, [pod(n3, 1)]));
        create(late, [pod(n2, 1)]);
      }
      fake.compactHistory();
      fake.dropWatches(how);
      fake.thawWatches();
      // More changes while the daemons reconnect and relist.
      for (let i = 0; i < 5; i++) {
        await sleep(60);
        fake.update('EndpointSlice', sliceObject(flux, [pod(n1, i % 2), pod(n3, 1)]));
      }
      const final = how === 'graceful' ? [pod(n2, 0), pod(n3, 0)] : [pod(n1, 1), pod(n2, 0)];
      fake.update('EndpointSlice', sliceObject(flux, final));

      await converge(nodes().flatMap((n) => [
        toClusterIP(c().host(n), flux, ips(final)),
        ...(how === 'abrupt' ? [toClusterIP(c().host(n), late, [pod(n2, 1).ip])] : []),
      ]), 10_000);
      for (const n of nodes()) expect(await c().clusterIPs(n)).not.toContain(victim.clusterIP);
      for (const [i, n] of nodes().entries()) {
        const d = c().daemon(n);
        await waitLog(d, (l) => l.msg === 'watch expired (410 Gone); relisting', marks[i]!, 1000);
        if (how === 'abrupt') await waitLog(d, (l) => l.msg === 'watch failed; keeping the cache and restarting', marks[i]!, 1000);
        expect(d.logs.slice(marks[i]).filter((l) => l.level >= 50), `${n.name} errors`).toEqual([]);
      }
    }
    remove(flux);
    remove(late);
  }, 60_000);

  it('start-up against an API server slow to list: no sync before the initial list, then the full state at once', async () => {
    const web: Svc = { name: 'slowweb', clusterIP: '10.96.0.60', nodePort: 30060 };
    const eps = [pod(n1, 0), pod(n2, 1)];
    create(web, eps);
    const n4 = await c().addNode(4, 0);
    fake.create('Node', c().nodeObject(n4));
    await converge([toClusterIP(c().host(n1), web, ips(eps))]);

    fake.setDelay(SLICES, 3000, { verb: 'list', times: Infinity });
    try {
      const listsBefore = fake.requests.length;
      const d = c().spawnDaemon(n4);
      // The moment the delayed list reached the fake (node-4's: the others are watching).
      let listAt: number | undefined;
      const until = Date.now() + 10_000;
      while (listAt === undefined) {
        if (fake.requests.slice(listsBefore).some((r) => r.path === SLICES && r.verb === 'list')) listAt = Date.now();
        else if (Date.now() > until) throw new Error('node-4 never listed EndpointSlices');
        else await sleep(20);
      }
      // For the next ~2.5 s: no table in node-4, no sync logged.
      let polls = 0;
      while (Date.now() - listAt < 2300) {
        expect(await c().tables(n4), 'a table exists before the initial list completed').toBe('');
        expect(d.logs.some(synced)).toBe(false);
        polls++;
        await sleep(150);
      }
      expect(polls).toBeGreaterThanOrEqual(3);
      expect(d.logs.some((l) => l.msg === 'waiting for the source\'s initial state before the first sync')).toBe(true);

      // Then one sync with everything: the service, its endpoints, reachable from node-4.
      const first = await d.waitFor(synced, 15_000, 0);
      expect(Date.parse(first.time as string)).toBeGreaterThanOrEqual(listAt + 2900);
      expect(first).toMatchObject({ reason: 'start', kind: 'full', services: fake.store.list('Service')!.length });
      expect(first.endpoints as number).toBeGreaterThanOrEqual(eps.length);
      expect(await c().clusterIPs(n4)).toContain(web.clusterIP);
      await converge([toClusterIP(c().host(n4), web, ips(eps)), toNodePort(n4, web, ips(eps))], 3000);
    } finally {
      fake.clearFaults();
    }
    remove(web);
  }, 60_000);
});

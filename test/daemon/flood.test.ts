// A flood of API events does not become a flood of syncs: the source only flags "changed",
// the runner coalesces, and the last sync sees the final state. (Memory and speed figures
// belong in `make bench`; this checks the mechanism: work per sync is bounded by the state,
// not by the number of events.)
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { buildModel } from '../../src/model/build-model.js';
import { SyncRunner } from '../../src/daemon/sync-runner.js';
import { KubernetesSource } from '../../src/sources/kubernetes.js';
import { FakeApiServer } from '../fake-apiserver/server.js';
import { service, slice } from '../support/builders.js';

let fake: FakeApiServer | undefined;
afterEach(async () => { await fake?.stop(); });

describe('event flood', () => {
  it('2,000 endpoint updates in a burst cost a handful of syncs, the last one exact', async () => {
    fake = new FakeApiServer();
    await fake.start();
    fake.create('Service', service('shop', 'web', { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80 }] }));
    fake.create('EndpointSlice', slice('shop', 'web', 'web-1', [{ name: 'http', port: 8080 }], [{ ip: '10.244.0.1' }]));
    fake.create('Node', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' } }); // no addresses, no labels: fine
    const kc = new KubeConfig();
    kc.loadFromString(fake.kubeconfig());
    let runner: SyncRunner | undefined;
    const source = new KubernetesSource(kc, 'n1', () => runner?.request(), pino({ level: 'silent' }));
    // What each sync was given. Checked after the run: an expect inside the callback would
    // only make the runner count a failed sync and retry, never fail the test.
    const syncs: { objects: number; diagnostics: number; endpoints: number | undefined }[] = [];
    runner = new SyncRunner(async () => {
      const snapshot = source.snapshot();
      const { model, diagnostics } = buildModel(snapshot);
      syncs.push({ objects: snapshot.length, diagnostics: diagnostics.length, endpoints: model.slices.get('shop/web')?.[0]?.endpoints.length });
      return true;
    }, { minIntervalMs: 200, periodMs: 3_600_000 });
    const seen = (): (number | undefined)[] => syncs.map((x) => x.endpoints);
    await source.start();
    runner.start();
    const t0 = Date.now();
    for (let i = 1; i <= 2000; i++) {
      const eps = Array.from({ length: 1 + (i % 50) }, (_, k) => ({ ip: `10.244.${k >> 8}.${(k & 255) + 1}` }));
      fake.update('EndpointSlice', slice('shop', 'web', 'web-1', [{ name: 'http', port: 8080 }], eps));
      if (i % 200 === 0) await new Promise((r) => setTimeout(r, 20));
    }
    const final = 1 + (2000 % 50);
    const deadline = Date.now() + 10_000;
    while (seen().at(-1) !== final && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await runner.stop();
    source.stop();
    expect(seen().at(-1)).toBe(final);
    // Work per sync is bounded by the state, not by the events: every sync was handed the
    // current objects (a Service, its one slice, the Node), never a backlog of 2,000 updates.
    expect(syncs.map((x) => `${x.objects} objects, ${x.diagnostics} diagnostics`)).toEqual(syncs.map(() => '3 objects, 0 diagnostics'));
    // one sync per 200 ms at most while the burst lasted, plus the start and the last one
    expect(syncs.length).toBeLessThanOrEqual(Math.ceil((Date.now() - t0) / 200) + 2);
    expect(syncs.length).toBeLessThan(60);
  }, 30_000);
});

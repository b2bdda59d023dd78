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
    const seen: number[] = [];
    runner = new SyncRunner(async () => {
      const { model, diagnostics } = buildModel(source.snapshot());
      expect(diagnostics).toEqual([]);
      seen.push(model.slices.get('shop/web')![0]!.endpoints.length);
      return true;
    }, { minIntervalMs: 200, periodMs: 3_600_000 });
    await source.start();
    runner.start();
    const t0 = Date.now();
    for (let i = 1; i <= 2000; i++) {
      const eps = Array.from({ length: 1 + (i % 50) }, (_, k) => ({ ip: `10.244.${k >> 8}.${(k & 255) + 1}` }));
      fake.update('EndpointSlice', slice('shop', 'web', 'web-1', [{ name: 'http', port: 8080 }], eps));
      if (i % 200 === 0) await new Promise((r) => setTimeout(r, 20));
    }
    const burstMs = Date.now() - t0;
    const final = 1 + (2000 % 50);
    const deadline = Date.now() + 10_000;
    while (seen.at(-1) !== final && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await runner.stop();
    source.stop();
    expect(seen.at(-1)).toBe(final);
    // one sync per 200 ms at most while the burst lasted, plus the start and the last one
    expect(seen.length).toBeLessThanOrEqual(Math.ceil((Date.now() - t0) / 200) + 2);
    expect(seen.length).toBeLessThan(60);
    expect(burstMs).toBeGreaterThan(0);
  }, 30_000);
});

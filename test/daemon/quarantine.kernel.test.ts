// A transaction the kernel rejects: nothing changes, the error names the service behind it,
// that service is quarantined (skipped, logged) and the rest syncs on the next attempt; it
// leaves quarantine when its objects change. The fault is injected at the edge: a kernel
// writer that corrupts the dispatch entry of one service before it is encoded, so the real
// kernel refuses it and the real error attribution (sequence number, attribute offset) names it.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Applier } from '../../src/apply/applier.js';
import type { KernelWriter } from '../../src/apply/kernel-writer.js';
import { NetlinkWriter } from '../../src/apply/netlink/writer.js';
import type { Op } from '../../src/render/kernel/ops.js';
import type { KElement } from '../../src/render/kernel/types.js';
import { loadBaseConfig } from '../../src/cli/config.js';
import type { SourceObject } from '../../src/model/build-model.js';
import { Proxier } from '../../src/daemon/proxier.js';
import { canUseKernel, KERNEL_SKIP_REASON, withNetns } from '../lab/netns.js';
import { service, slice } from '../support/builders.js';

const web = (eps: string[]): unknown[] => [
  service('lab', 'web', { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80 }] }),
  slice('lab', 'web', 'web-1', [{ name: 'http', port: 8080 }], eps.map((ip) => ({ ip }))),
];
const bad = (eps: string[]): unknown[] => [
  service('lab', 'bad', { clusterIP: '10.96.0.11', ports: [{ name: 'http', port: 80 }] }),
  slice('lab', 'bad', 'bad-1', [{ name: 'http', port: 8080 }], eps.map((ip) => ({ ip }))),
];

/** Breaks the lab/bad dispatch element (a goto to a chain that does not exist). */
function faulty(inner: KernelWriter, on: { fault: boolean }): KernelWriter {
  // Its dispatch entry, an element of its endpoint-count chain's dispatch set, becomes an
  // element of the service-ips map going to a chain that does not exist (ENOENT).
  const bad = (e: KElement): boolean => e.comment === 'lab/bad:http';
  const corrupt = (op: Op): Op[] => (op.op !== 'add-elements' || !op.set.startsWith('service-ips-dnat-') || ![...op.elements].some(bad) ? [op] : [
    { ...op, elements: [...op.elements].filter((e) => !bad(e)) },
    { ...op, set: 'service-ips', shape: 'addr.proto.port:verdict', elements: [...op.elements].filter(bad).map((e) => ({ ...e, data: { kind: 'verdict', verdict: { kind: 'goto', chain: 'no-such-chain' } } })) },
  ]);
  return {
    commit: (tx) => inner.commit(on.fault ? [...tx].flatMap(corrupt) : tx),
    listDynamicSet: (...a) => inner.listDynamicSet(...a),
    tables: (n) => inner.tables(n),
  };
}

describe.skipIf(!canUseKernel)(`quarantine${canUseKernel ? '' : ` [skipped: ${KERNEL_SKIP_REASON}]`}`, () => {
  it('skips the service nft rejects, syncs the rest, releases it when it changes', async () => {
    await withNetns('quar', async (exec) => {
      const ns = (await exec(['ip', 'netns', 'identify'])).stdout.trim();
      const logs: Record<string, unknown>[] = [];
      const log = pino({ level: 'debug' }, new Writable({ write(c, _e, cb) { logs.push(JSON.parse(String(c)) as Record<string, unknown>); cb(); } }));
      const on = { fault: true };
      let objects: SourceObject[] = [...web(['10.244.0.1']), ...bad(['10.244.0.2'])].map((object) => ({ object }));
      const base = await loadBaseConfig({ node: 'node-a', nodeIp: ['192.168.0.2'] });
      if (!base.ok) throw new Error(base.error);
      const writer = new NetlinkWriter({ netns: `/run/netns/${ns}` });
      const proxier = new Proxier({ applier: new Applier(faulty(writer, on)), source: { snapshot: () => objects }, base: base.value, log });
      // the services' dispatch entries (in their endpoint-count chain's dispatch set)
      const elements = async (): Promise<string> => (await exec(['nft', 'list', 'set', 'ip', 'nftproxy', 'service-ips-dnat-cluster-1'])).stdout;

      // 1st attempt: rejected as a whole, nothing in the kernel; the culprit is named.
      expect(await proxier.sync('start')).toBe(false);
      expect((await exec(['nft', 'list', 'tables'])).stdout).toBe('');
      const rejected = logs.find((l) => l.msg === 'the kernel refused the sync; quarantining the services that caused it and retrying');
      expect(rejected).toMatchObject({ quarantined: ['lab/bad'], kind: 'full', code: 'NFT_REJECTED' });
      expect(String(rejected!.error)).toMatch(/add elements of service-ips: .*ENOENT.*\(lab\/bad\/tcp\/http\)/);

      // retry: everything but the quarantined service is programmed
      expect(await proxier.sync('retry')).toBe(true);
      expect(proxier.lastReport).toMatchObject({ ok: true, quarantined: 1, services: 1 });
      expect(await elements()).toContain('"lab/web:http"');
      expect(await elements()).not.toContain('"lab/bad:http"');

      // the bad service changes but is still bad: tried once more, quarantined again, web unaffected
      objects = [...web(['10.244.0.1']), ...bad(['10.244.0.3'])].map((object) => ({ object }));
      // A refused partial sync blames nobody (a table someone else changed refuses it too);
      // the full sync that follows starts from a clean slate and names the culprit again.
      expect(await proxier.sync('change')).toBe(false);
      expect(await elements()).toContain('"lab/web:http"');
      expect(proxier.lastReport).toMatchObject({ ok: false, kind: 'partial', quarantined: 0 });
      expect(await proxier.sync('retry')).toBe(false);
      expect(proxier.lastReport).toMatchObject({ ok: false, kind: 'full' });
      expect(await elements()).toContain('"lab/web:http"');
      expect(await proxier.sync('retry')).toBe(true);
      expect(proxier.lastReport).toMatchObject({ ok: true, quarantined: 1 });

      // fixed (the fault is gone) and changed again: it leaves quarantine and is programmed
      on.fault = false;
      objects = [...web(['10.244.0.1']), ...bad(['10.244.0.4'])].map((object) => ({ object }));
      expect(await proxier.sync('change')).toBe(true);
      expect(logs.some((l) => l.msg === 'service changed: leaving quarantine' && l.service === 'lab/bad')).toBe(true);
      expect(proxier.lastReport).toMatchObject({ quarantined: 0, services: 2 });
      expect(await elements()).toContain('"lab/bad:http"');
      await writer.close();
    });
  });
});

// Drift healed: `nftproxy run` watches nf_tables change notifications, and a change another
// process makes to its tables gets them replaced (a full sync) within --min-sync-period.
// In a lab with real traffic: another process deletes one of the daemon's elements, then
// flushes one of its chains, then deletes its table; each time the service answers again
// within 2 s, without a restart, and nftproxy_foreign_changes_total counts the change. A change
// to a table that is not nftproxy's triggers nothing.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, type LabSpec } from '../lab/lab.js';
import { canUseKernel, KERNEL_SKIP_REASON } from '../lab/netns.js';
import { LAB_ENV, NODE, POD, envFlags } from '../support/address-plan.js';
import { Daemon, httpGet, synced } from '../support/daemon.js';

const EP = '10.180.23.1', VIP = '172.30.23.1';
const SPEC: LabSpec = { nodeIPs: [NODE], pods: [EP], clients: [POD], selfAddressed: [], ports: [80] };
const MANIFEST = `apiVersion: v1
kind: Service
metadata: { name: web, namespace: drift }
spec: { clusterIP: ${VIP}, ports: [{ name: http, port: 80 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-1, namespace: drift, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ name: http, port: 80 }]
endpoints: [{ addresses: [${EP}], nodeName: ${LAB_ENV.nodeName} }]
`;

describe.skipIf(!canUseKernel)(`drift healed${canUseKernel ? '' : ` [skipped: ${KERNEL_SKIP_REASON}]`}`, () => {
  let lab: Lab | undefined;
  let dir: string | undefined;
  let daemon: Daemon | undefined;

  beforeAll(async () => {
    lab = await Lab.create('drift', SPEC);
    dir = await mkdtemp(join(tmpdir(), 'nftproxy-drift-'));
    await writeFile(join(dir, 'web.yaml'), MANIFEST);
    daemon = new Daemon(lab.nodeNetns, ['--manifests', dir, ...envFlags({ ...LAB_ENV, nodeIPs: [NODE] }), '--ip-families', 'ipv4', '--min-sync-period', '1s', '--healthz-bind-address', '']);
    await daemon.waitFor(synced, 15_000, 0);
  }, 60_000);

  afterAll(async () => {
    await daemon?.stop();
    await lab?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const answers = async (): Promise<boolean> => {
    const o = await lab!.probe({ src: POD, dst: `${VIP}:80`, proto: 'tcp', count: 1, timeoutMs: 300 });
    return Array.isArray(o.got) && o.got.includes(`${EP}:80`);
  };
  const foreignChanges = async (): Promise<number> => {
    const m = (await httpGet(lab!.nodeNetns, 'http://127.0.0.1:10249/metrics')).body;
    return [...m.matchAll(/^nftproxy_foreign_changes_total\{family="ip"\} (\d+)$/gm)].reduce((n, x) => n + Number(x[1]), 0);
  };
  const nft = async (...cmd: string[]): Promise<void> => {
    const r = await lab!.nodeExec(['nft', ...cmd]);
    if (r.exitCode !== 0) throw new Error(`nft ${cmd.join(' ')}: ${r.stderr}`);
  };

  it.each([
    { what: 'an element deleted (the service\'s dispatch entry)', cmd: ['delete', 'element', 'ip', 'nftproxy', 'service-ips-dnat-cluster-1', `{ ${VIP} . tcp . 80 }`], change: /delete element in set/ },
    { what: 'a chain flushed (services: every ClusterIP)', cmd: ['flush', 'chain', 'ip', 'nftproxy', 'services'], change: /delete rule in chain/ },
    { what: 'the table deleted', cmd: ['delete', 'table', 'ip', 'nftproxy'], change: /delete table/ },
  ])('$what: broken, then answering again within 2 s without a restart, counted', async ({ cmd, change }) => {
    expect(await answers()).toBe(true);
    const before = await foreignChanges();
    const mark = daemon!.logs.length;
    await nft(...cmd);
    const broken = Date.now();
    const healedLog = daemon!.waitFor((l) => l.msg === 'synced' && l.reason === 'drift', 5_000, mark);
    let healed = false;
    while (!healed && Date.now() - broken < 2_000) healed = await answers();
    expect(healed, 'the service answers again within 2 s').toBe(true);
    expect(await healedLog).toMatchObject({ kind: 'full' });
    const warned = daemon!.logs.slice(mark).find((l) => l.msg.startsWith('another process changed nftproxy'));
    expect(JSON.stringify(warned?.changes)).toMatch(change);
    expect(Object.values(warned?.changes as Record<string, number>).every((n) => n > 0)).toBe(true);
    expect(await foreignChanges()).toBeGreaterThan(before);
    expect(daemon!.proc.exitCode).toBe(null); // no restart
  });

  it('a change to another table triggers nothing', async () => {
    const before = await foreignChanges();
    const mark = daemon!.logs.length;
    await nft('add', 'table', 'ip', 'someone-else');
    await nft('add', 'chain', 'ip', 'someone-else', 'c', '{ type filter hook input priority 0; }');
    await nft('delete', 'table', 'ip', 'someone-else');
    await new Promise((r) => setTimeout(r, 1_500));
    expect(daemon!.logs.slice(mark).filter((l) => l.msg === 'synced' || l.msg.startsWith('another process'))).toEqual([]);
    expect(await foreignChanges()).toBe(before);
    expect(await answers()).toBe(true);
  });
});

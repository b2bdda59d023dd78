// The daemon's kube-proxy compatible surfaces, on a real process in a namespace:
// /healthz and /livez (stuck syncing -> 503 and back; a leaving node fails /healthz only),
// the healthCheckNodePort servers of eTP=Local services, and /metrics under kube-proxy's names.
import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { canUseKernel, KERNEL_SKIP_REASON, withNetns } from '../lab/netns.js';
import { Daemon, httpGet, synced } from '../support/daemon.js';

const lb = (eps: { ip: string; node: string; ready?: boolean }[], trigger?: string): string => `apiVersion: v1
kind: Service
metadata: { name: shop, namespace: lab }
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.10
  externalTrafficPolicy: Local
  healthCheckNodePort: 32000
  ports: [{ name: http, port: 80, targetPort: 8080, nodePort: 30080 }]
status: { loadBalancer: { ingress: [{ ip: 198.51.100.10 }] } }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: shop-1
  namespace: lab
  labels: { kubernetes.io/service-name: shop }
${trigger ? `  annotations: { endpoints.kubernetes.io/last-change-trigger-time: "${trigger}" }\n` : ''}addressType: IPv4
ports: [{ name: http, port: 8080 }]
endpoints: [${eps.map((e) => `{ addresses: [${e.ip}], nodeName: ${e.node}, conditions: { ready: ${e.ready ?? true} } }`).join(', ')}]
`;
const node = (leaving: boolean): string => `apiVersion: v1
kind: Node
metadata: { name: node-a${leaving ? ', deletionTimestamp: "2026-01-01T00:00:00Z"' : ''} }
status: { addresses: [{ type: InternalIP, address: 192.168.0.2 }] }
`;

const until = async (what: string, f: () => Promise<boolean>, ms = 10_000): Promise<void> => {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (await f()) return; await new Promise((r) => setTimeout(r, 100)); }
  throw new Error(`timed out: ${what}`);
};

describe.skipIf(!canUseKernel)(`health and metrics${canUseKernel ? '' : ` [skipped: ${KERNEL_SKIP_REASON}]`}`, () => {
  it('healthz, livez, healthCheckNodePort and metrics behave as kube-proxy\'s', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nftproxy-health-'));
    try {
      await writeFile(join(dir, 'node.yaml'), node(false));
      await writeFile(join(dir, 'shop.yaml'), lb([{ ip: '10.244.1.1', node: 'node-a' }, { ip: '10.244.2.1', node: 'node-b' }], new Date(Date.now() - 3000).toISOString()));
      await withNetns('health', async (exec) => {
        const ns = (await exec(['ip', 'netns', 'identify'])).stdout.trim();
        await exec(['ip', 'link', 'set', 'lo', 'up']);
        await exec(['ip', 'addr', 'add', '192.168.0.2/32', 'dev', 'lo']); // the node's InternalIP
        const d = new Daemon(ns, ['--manifests', dir, '--node', 'node-a', '--cluster-cidr', '10.244.0.0/16', '--sync-period', '1s', '--min-sync-period', '100ms']);
        try {
          await d.waitFor(synced, 15_000, 0);
          const healthz = await httpGet(ns, 'http://127.0.0.1:10256/healthz');
          expect(healthz.status).toBe(200);
          expect(JSON.parse(healthz.body)).toMatchObject({ nodeEligible: true });
          expect(JSON.parse(healthz.body).lastUpdated).not.toBe('');
          expect((await httpGet(ns, 'http://127.0.0.1:10256/livez')).status).toBe(200);

          // healthCheckNodePort: one ready local endpoint -> 200 with kube-proxy's body
          const hc = await httpGet(ns, 'http://192.168.0.2:32000/');
          expect(hc.status).toBe(200);
          expect(JSON.parse(hc.body)).toEqual({ service: { namespace: 'lab', name: 'shop' }, localEndpoints: 1, serviceProxyHealthy: true });
          // ...on the node's primary IP only (nodePortAddresses primary), as kube-proxy: not on loopback
          expect((await httpGet(ns, 'http://127.0.0.1:32000/')).body).toMatch(/ECONNREFUSED/);

          // metrics under kube-proxy's names
          const m = (await httpGet(ns, 'http://127.0.0.1:10249/metrics')).body;
          expect(m).toMatch(/^kubeproxy_sync_proxy_rules_duration_seconds_count [1-9]/m);
          expect(m).toMatch(/^kubeproxy_sync_full_proxy_rules_duration_seconds_count [1-9]/m);
          expect(m).toMatch(/^kubeproxy_sync_proxy_rules_last_timestamp_seconds \d/m);
          expect(m).toMatch(/^kubeproxy_network_programming_duration_seconds_count 1$/m);
          expect(m).toMatch(/^kubeproxy_network_programming_duration_seconds_bucket\{le="2"\} 0$/m); // the trigger was 3 s ago
          expect(m).toMatch(/^kubeproxy_sync_proxy_rules_no_local_endpoints_total\{traffic_policy="external"\} 0$/m);
          expect(m).toMatch(/^nftproxy_objects\{kind="Service"\} 1$/m);
          expect(m).toMatch(/^nftproxy_bpf_active 0$/m); // the test daemons run with --bpf off
          expect(m).toMatch(/^kubeproxy_proxy_healthz_total\{code="200"\} 1$/m);

          // the local endpoint goes away: 503, and the no-local-endpoints gauge counts it
          await writeFile(join(dir, 'shop.yaml'), lb([{ ip: '10.244.1.1', node: 'node-a', ready: false }, { ip: '10.244.2.1', node: 'node-b' }]));
          await until('healthCheckNodePort 503', async () => (await httpGet(ns, 'http://192.168.0.2:32000/')).status === 503);
          expect(JSON.parse((await httpGet(ns, 'http://192.168.0.2:32000/')).body)).toMatchObject({ localEndpoints: 0, serviceProxyHealthy: true });
          expect((await httpGet(ns, 'http://127.0.0.1:10249/metrics')).body).toMatch(/^kubeproxy_sync_proxy_rules_no_local_endpoints_total\{traffic_policy="external"\} 1$/m);

          // The kernel refuses every sync, injected at the edge with the real kernel: another
          // process replaces nftproxy's table with one it owns (NFT_TABLE_F_OWNER: only its
          // socket may change it, and it goes when that socket closes). The queued update grows
          // older than 2 x sync period -> 503 on both; the owner gone -> 200.
          const owner = execa('ip', ['netns', 'exec', ns, 'nft', '-i'], { input: undefined, stdin: 'pipe', reject: false });
          owner.stdin!.write('delete table ip nftproxy; add table ip nftproxy { flags owner; }\n');
          await writeFile(join(dir, 'shop.yaml'), lb([{ ip: '10.244.1.1', node: 'node-a' }]));
          await until('healthz 503 while stuck', async () => (await httpGet(ns, 'http://127.0.0.1:10256/healthz')).status === 503);
          expect((await httpGet(ns, 'http://127.0.0.1:10256/livez')).status).toBe(503);
          expect((await httpGet(ns, 'http://192.168.0.2:32000/')).body).toContain('"serviceProxyHealthy":false');
          expect((await httpGet(ns, 'http://127.0.0.1:10249/metrics')).body).toMatch(/^kubeproxy_sync_proxy_rules_nftables_sync_failures_total [1-9]/m);
          owner.stdin!.end();
          await owner;
          await until('healthz 200 after recovery', async () => (await httpGet(ns, 'http://127.0.0.1:10256/healthz')).status === 200);

          // the node is being deleted: /healthz 503 (nodeEligible false), /livez still 200
          await writeFile(join(dir, 'node.yaml'), node(true));
          await until('healthz 503 for a leaving node', async () => (await httpGet(ns, 'http://127.0.0.1:10256/healthz')).status === 503);
          expect(JSON.parse((await httpGet(ns, 'http://127.0.0.1:10256/healthz')).body)).toMatchObject({ nodeEligible: false });
          expect((await httpGet(ns, 'http://127.0.0.1:10256/livez')).status).toBe(200);
        } finally {
          d.kill('SIGTERM');
          await d.exited;
        }
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

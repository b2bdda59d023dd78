// The CLI contract: exit codes, messages on stderr, data on stdout, and dump's output
// loading into the real kernel (in a throwaway network namespace), in both formats.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { canUseKernel, KERNEL_SKIP_REASON, withNetns } from '../lab/netns.js';

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await main(args, { out: (s) => { out += s; }, err: (s) => { err += s; } });
  return { code, out, err };
}

const dir = mkdtempSync(join(tmpdir(), 'nftproxy-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => { const p = join(dir, name); writeFileSync(p, text); return p; };
const GOOD = file('good.yaml', `apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { clusterIP: 10.96.0.10, ports: [{ name: http, port: 80 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-a, namespace: shop, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ name: http, port: 8080 }]
endpoints: [{ addresses: [10.244.1.2] }, { addresses: [10.244.1.3] }]
`);
const BAD_SVC = file('bad-svc.yaml', `kind: Service
metadata: { name: broken, namespace: shop }
spec: { clusterIP: 10.96.0.11, ports: [{ port: 99999 }] }
`);
const SYNTAX = file('syntax.yaml', 'kind: Service\nmetadata: { name: x\n  spec: [\n');

describe('nftproxy dump', () => {
  it('prints the ruleset on stdout, exit 0', async () => {
    const r = await run(['dump', '-f', GOOD, '--node', 'node-a', '--node-ip', '192.168.0.2']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^add table ip nftproxy\n/);
    // in the dispatch set of its endpoint-count chain (render/lower-dnat.ts: DISPATCH_CHAIN)
    expect(r.out).toMatch(/set service-ips-dnat-cluster-2 \{[^}]*10\.96\.0\.10 \. tcp \. 80 comment "shop\/web:http"/);
  });
  it('a skipped object: one stderr line naming it; exit 0, or 1 with --strict', async () => {
    const r = await run(['dump', '-f', GOOD, '-f', BAD_SVC, '--node', 'node-a']);
    expect(r.code).toBe(0);
    expect(r.err).toContain('skip Service shop/broken: port (unnamed)'.replace(' (unnamed)', ' '));
    expect(r.out).toContain('10.96.0.10');
    expect((await run(['dump', '-f', GOOD, '-f', BAD_SVC, '--node', 'node-a', '--strict'])).code).toBe(1);
  });
  it('a YAML syntax error names the file and line, exit 2', async () => {
    const r = await run(['dump', '-f', SYNTAX, '--node', 'node-a']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(new RegExp(`${SYNTAX}:\\d+: YAML syntax error`));
  });
  it('an unreadable file, exit 2', async () => {
    const r = await run(['dump', '-f', join(dir, 'missing.yaml'), '--node', 'node-a']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('missing.yaml: cannot read: ENOENT');
  });
  it('bad flags, exit 2', async () => {
    expect((await run(['dump', '-f', GOOD, '--node', 'n', '--cluster-cidr', '10.0.0.0/99'])).code).toBe(2);
    expect((await run(['dump', '-f', GOOD])).err).toContain('--node is required');
    expect((await run(['dump', '-f', GOOD, '--node', 'n', '--format', 'xml'])).code).toBe(2);
  });
  it('--config reads a KubeProxyConfiguration; flags override it', async () => {
    const cfg = file('kp.yaml', 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nhostnameOverride: node-a\nclusterCIDR: 10.244.0.0/16\nmasqueradeAll: false\nnodePortAddresses: ["192.168.0.0/24"]\n');
    const r = await run(['dump', '-f', GOOD, '--config', cfg, '--node-ip', '192.168.0.2']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('ip saddr != 10.244.0.0/16');
    const o = await run(['dump', '-f', GOOD, '--config', cfg, '--cluster-cidr', '10.200.0.0/16']);
    expect(o.out).toContain('ip saddr != 10.200.0.0/16');
  });
  it('--help documents every flag with examples', async () => {
    const r = await run(['dump', '--help']);
    for (const flag of ['--filename', '--node', '--format', '--config', '--cluster-cidr', '--service-cidr', '--nodeport-addresses', '--node-ip', '--masquerade-all', '--strict', 'Examples:', 'Exit codes']) expect(r.out).toContain(flag);
  });
});

describe('nftproxy explain', () => {
  it('answers with the endpoints, masquerade and the path', async () => {
    const r = await run(['explain', '-f', GOOD, '--node', 'node-a', '--cluster-cidr', '10.244.0.0/16', '--src', '10.244.9.9', '--dst', '10.96.0.10:80']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('verdict: DNAT to one of 2 endpoint(s)');
    expect(r.out).toContain('10.244.1.2:8080  masquerade: no');
    expect(r.out).toContain('service port: shop/web port http 80/TCP');
    // the service's own chain is left out of the kernel's table: the path says what stands in
    expect(r.out).toMatch(/services: goto service-\S+ \(in the kernel: dnat-cluster-2, shared\)/);
  });
  it('REJECT for a port the ClusterIP does not serve; --json is machine-readable', async () => {
    const r = await run(['explain', '-f', GOOD, '--node', 'node-a', '--src', '10.244.9.9', '--dst', '10.96.0.10:81', '--json']);
    expect(JSON.parse(r.out).outcome).toEqual({ kind: 'reject', why: 'the ClusterIP does not serve this port/protocol' });
  });
  it('bad --dst, exit 2', async () => {
    expect((await run(['explain', '-f', GOOD, '--node', 'n', '--src', '1.1.1.1', '--dst', 'nope'])).code).toBe(2);
  });
});

describe.skipIf(!canUseKernel)(`dump loads into the kernel (${canUseKernel ? 'root + nft' : KERNEL_SKIP_REASON})`, () => {
  const args = ['dump', '-f', 'examples/', '--node', 'node-a', '--cluster-cidr', '10.244.0.0/16,fd00:10:244::/64', '--service-cidr', '10.96.0.0/12,fd00:10:96::/112'];
  it.each(['nft', 'json'])('--format %s: into an empty namespace, then over the earlier table', async (format) => {
    const r = await run([...args, '--format', format]);
    expect(r.code).toBe(0);
    await withNetns('dump', async (exec) => {
      // nft -j opens /dev/stdin by path, which fails on the socketpair Node gives a child
      // as stdin (ENXIO); the text reader uses the descriptor. So JSON goes through a file.
      const jsonFile = file(`dump-${format}.json`, r.out);
      const nft = format === 'json' ? ['nft', '-j', '-f', jsonFile] : ['nft', '-f', '-'];
      for (let i = 0; i < 2; i++) {
        const res = await exec(nft, format === 'json' ? undefined : r.out);
        expect(res.stderr).toBe('');
        expect(res.exitCode).toBe(0);
      }
      const tables = await exec(['nft', 'list', 'tables']);
      expect(tables.stdout.trim().split('\n').sort()).toEqual(['table ip nftproxy', 'table ip6 nftproxy']);
    });
  });
});

describe('explain names the service even when a dispatch map decides alone', () => {
  it('REJECT from no-endpoint-services shows the service port and its decisions', async () => {
    const r = await run(['explain', '-f', 'examples/no-endpoints.yaml', '--node', 'node-a', '--src', '10.244.1.5', '--dst', '10.96.0.90:80']);
    expect(r.out).toMatch(/verdict: REJECT/);
    expect(r.out).toMatch(/service port: \S+ port/);
    expect(r.out).toContain('no usable endpoint anywhere');
  });
});

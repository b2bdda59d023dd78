// deploy/ is schema-checked against the Kubernetes API types (client-node's generated
// models: every field known, every value of the declared type), and checked for what a
// kube-proxy replacement must have: hostNetwork, node-critical, every taint tolerated, only
// NET_ADMIN, probes on the health port, read-only RBAC, a config nftproxy accepts.
import * as k8s from '@kubernetes/client-node';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadRunConfig } from '../../src/cli/config.js';
import { writeFileSync, mkdtempSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { KUBECTL } from '../fake-apiserver/clients.js';

const DIR = new URL('../../deploy/', import.meta.url).pathname;
const docs = readdirSync(DIR).filter((f) => f.endsWith('.yaml')).flatMap((f) =>
  parseAllDocuments(readFileSync(join(DIR, f), 'utf8')).map((d, i) => ({ file: `${f}#${i}`, obj: d.toJS() as Record<string, unknown> })));

const MODEL: Record<string, string> = {
  'v1/ServiceAccount': 'V1ServiceAccount', 'v1/ConfigMap': 'V1ConfigMap', 'apps/v1/DaemonSet': 'V1DaemonSet',
  'rbac.authorization.k8s.io/v1/ClusterRole': 'V1ClusterRole', 'rbac.authorization.k8s.io/v1/ClusterRoleBinding': 'V1ClusterRoleBinding',
};

type AttrMap = { baseName: string; type: string }[];
const models = k8s as unknown as Record<string, { getAttributeTypeMap?: () => AttrMap } | undefined>;

/** Every problem with `v` as a value of the API type `type`, with its path. */
function check(v: unknown, type: string, path: string): string[] {
  const arr = /^Array<(.+)>$/.exec(type);
  if (arr) return Array.isArray(v) ? v.flatMap((x, i) => check(x, arr[1]!, `${path}[${i}]`)) : [`${path}: expected a list`];
  switch (type) {
    case 'string': return typeof v === 'string' ? [] : [`${path}: expected a string, got ${JSON.stringify(v)}`];
    case 'number': return typeof v === 'number' ? [] : [`${path}: expected a number`];
    case 'boolean': return typeof v === 'boolean' ? [] : [`${path}: expected true/false`];
    case 'IntOrString': return typeof v === 'number' || typeof v === 'string' ? [] : [`${path}: expected an int or a string`];
    case 'Date': return typeof v === 'string' ? [] : [`${path}: expected a timestamp`];
    case 'any': return [];
    case '{ [key: string]: string; }':
      return typeof v === 'object' && v !== null && Object.values(v).every((x) => typeof x === 'string') ? [] : [`${path}: expected a map of strings`];
  }
  const attrs = models[type]?.getAttributeTypeMap?.();
  if (!attrs) return [`${path}: unknown API type ${type}`];
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return [`${path}: expected an object (${type})`];
  return Object.entries(v).flatMap(([key, val]) => {
    const a = attrs.find((x) => x.baseName === key);
    return a ? check(val, a.type, `${path}.${key}`) : [`${path}.${key}: unknown field of ${type}`];
  });
}

describe('deploy/ manifests', () => {
  it('has the objects kubectl apply -f deploy/ creates', () => {
    expect(docs.map((d) => `${String(d.obj.kind)}/${String((d.obj.metadata as { name: string }).name)}`).sort()).toEqual(
      ['ClusterRole/nftproxy', 'ClusterRoleBinding/nftproxy', 'ConfigMap/nftproxy', 'DaemonSet/nftproxy', 'ServiceAccount/nftproxy']);
  });

  it.each(docs)('$file matches the API schema', ({ obj }) => {
    const model = MODEL[`${String(obj.apiVersion)}/${String(obj.kind)}`];
    expect(model, `no schema for ${String(obj.apiVersion)} ${String(obj.kind)}`).toBeDefined();
    expect(check(obj, model!, String(obj.kind))).toEqual([]);
  });

  it('the schema check catches a misspelt field and a wrong type', () => {
    expect(check({ spec: { template: { spec: { hostNetwrok: true } } } }, 'V1DaemonSet', 'ds')).toEqual(['ds.spec.template.spec.hostNetwrok: unknown field of V1PodSpec']);
    expect(check({ spec: { template: { spec: { hostNetwork: 'yes' } } } }, 'V1DaemonSet', 'ds')).toEqual(['ds.spec.template.spec.hostNetwork: expected true/false']);
  });

  const ds = docs.find((d) => d.obj.kind === 'DaemonSet')!.obj as unknown as k8s.V1DaemonSet;
  const pod = ds.spec!.template.spec!;
  const c = pod.containers[0]!;

  it('runs like kube-proxy: host network, node-critical, every taint tolerated, only NET_ADMIN', () => {
    expect(pod.hostNetwork).toBe(true);
    expect(pod.priorityClassName).toBe('system-node-critical');
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(c.securityContext?.capabilities).toEqual({ drop: ['ALL'], add: ['NET_ADMIN'] });
    expect(c.securityContext?.privileged).toBeUndefined();
    expect(c.env).toContainEqual({ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
    expect(c.volumeMounts?.map((m) => m.mountPath)).toContain('/sys/fs/bpf');
  });

  it('mounts the host\'s directory of the inspection socket where the daemon makes it by default', async () => {
    const { DEFAULT_SOCKET } = await import('../../src/daemon/inspect-server.js');
    const dir = DEFAULT_SOCKET.slice(0, DEFAULT_SOCKET.lastIndexOf('/'));
    const mount = c.volumeMounts?.find((m) => m.mountPath === dir);
    expect(mount?.readOnly).toBeUndefined();
    expect(pod.volumes?.find((v) => v.name === mount?.name)?.hostPath).toEqual({ path: dir, type: 'DirectoryOrCreate' });
  });

  it('probes the health port: liveness /livez, readiness /healthz', () => {
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/livez', port: 10256 });
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/healthz', port: 10256 });
  });

  it('RBAC is read-only: get/list/watch services, endpointslices, nodes', () => {
    const role = docs.find((d) => d.obj.kind === 'ClusterRole')!.obj as unknown as k8s.V1ClusterRole;
    const grants = role.rules!.flatMap((r) => r.resources!.flatMap((res) => r.verbs.map((v) => `${r.apiGroups![0] || 'core'}/${res}:${v}`))).sort();
    expect(grants).toEqual(['core/nodes:get', 'core/nodes:list', 'core/nodes:watch', 'core/services:get', 'core/services:list', 'core/services:watch',
      'discovery.k8s.io/endpointslices:get', 'discovery.k8s.io/endpointslices:list', 'discovery.k8s.io/endpointslices:watch']);
  });

  it('the ConfigMap holds a KubeProxyConfiguration nftproxy accepts', async () => {
    const cm = docs.find((d) => d.obj.kind === 'ConfigMap')!.obj as unknown as k8s.V1ConfigMap;
    const dir = mkdtempSync(join(tmpdir(), 'nftproxy-cm-'));
    const file = join(dir, 'config.yaml');
    writeFileSync(file, cm.data!['config.yaml']!);
    const r = await loadRunConfig({ config: file, node: 'n1' }).finally(() => rmSync(dir, { recursive: true, force: true }));
    expect(r.ok && r.value.daemon).toMatchObject({ healthzBindAddress: '0.0.0.0:10256', syncPeriod: '1h', minSyncPeriod: '1s' });
    expect(c.args).toEqual(['run', '--config=/etc/nftproxy/config.yaml']);
  });

  it('the Grafana dashboard graphs only metrics nftproxy exports', async () => {
    const dash = JSON.parse(readFileSync(join(DIR, 'grafana-dashboard.json'), 'utf8')) as { panels: { targets: { expr: string }[] }[] };
    const used = new Set(dash.panels.flatMap((p) => p.targets.flatMap((t) => [...t.expr.matchAll(/\b((?:kubeproxy|nftproxy|process)_[a-z_]+?)(?:_bucket)?\{/g)].map((m) => m[1]!))));
    const { ProxyMetrics } = await import('../../src/daemon/metrics.js');
    const exported = new Set((await new ProxyMetrics().registry.getMetricsAsJSON()).map((m) => m.name));
    expect([...used].filter((n) => !exported.has(n))).toEqual([]);
    expect(used.size).toBeGreaterThan(10);
  });

  describe('deploy/bpf/daemonset-patch.yaml: the BPF hot path in the DaemonSet', () => {
    const patchFile = join(DIR, 'bpf', 'daemonset-patch.yaml');
    const patch = parseAllDocuments(readFileSync(patchFile, 'utf8'))[0]!.toJS() as Record<string, unknown>;

    it('matches the API schema (as a partial DaemonSet)', () => {
      expect(check(patch, 'V1DaemonSet', 'patch')).toEqual([]);
    });

    it('gives the CLI only flags `nftproxy run` has', () => {
      const args = (patch as unknown as k8s.V1DaemonSet).spec!.template.spec!.containers[0]!.args!;
      const help = execFileSync(process.execPath, [new URL('../../bin/nftproxy.js', import.meta.url).pathname, 'run', '--help'], { encoding: 'utf8' });
      for (const a of args.filter((x) => x.startsWith('--'))) expect(help, a).toContain(a.split('=')[0]);
    });

    // kubectl merges it offline (--local), as it would on the server
    const why = existsSync(KUBECTL) ? undefined : `no kubectl at ${KUBECTL}`;
    it.skipIf(why !== undefined)(`kubectl patch --local: everything of the base, plus the capabilities and mounts BPF needs${why ? ` [skipped: ${why}]` : ''}`, () => {
      const out = execFileSync(KUBECTL, ['patch', '--local', '-f', join(DIR, 'daemonset.yaml'), '--patch-file', patchFile, '-o', 'json'], { encoding: 'utf8', cwd: tmpdir() });
      const merged = JSON.parse(out) as k8s.V1DaemonSet;
      const mp = merged.spec!.template.spec!, mc = mp.containers[0]!;
      expect(check(merged, 'V1DaemonSet', 'merged')).toEqual([]);
      expect(mc.securityContext?.capabilities).toEqual({ drop: ['ALL'], add: ['NET_ADMIN', 'BPF', 'PERFMON', 'SYS_ADMIN'] });
      expect(mc.securityContext?.privileged).toBeUndefined();
      expect(mc.volumeMounts?.map((m) => m.mountPath).sort()).toEqual(['/etc/nftproxy', '/run/netns', '/run/nftproxy', '/run/nftproxy/cgroup', '/sys/fs/bpf', '/tmp']);
      expect(mp.volumes?.find((v) => v.name === 'cgroup')?.hostPath?.path).toBe('/sys/fs/cgroup');
      expect(mp.volumes?.find((v) => v.name === 'netns')?.hostPath?.path).toBe('/run/netns');
      expect(mc.args).toEqual(['run', '--config=/etc/nftproxy/config.yaml', '--bpf=auto', '--bpf-cgroup=/run/nftproxy/cgroup', '--bpf-netns-dir=/run/netns']);
      // the rest of the base is untouched
      expect({ ...mp, containers: [], volumes: [] }).toEqual({ ...pod, containers: [], volumes: [] });
      expect({ ...mc, args: [], securityContext: undefined, volumeMounts: [] }).toEqual({ ...c, args: [], securityContext: undefined, volumeMounts: [] });
    });
  });
});

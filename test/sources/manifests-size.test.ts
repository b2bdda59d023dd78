// Manifests at any size: a `kubectl get svc,endpointslices -A -o yaml`-sized file reads in time
// linear in its size, and every document's line (for messages) is still right far into it.
// Once each document's line was found by re-splitting the text from the start: 2,000 services
// took 8 s as YAML against 14 ms as JSON, and 10,000 did not finish.
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseManifest } from '../../src/sources/manifests.js';

const SERVICES = 2_000;

function objectsFor(n: number, from = 0): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (let i = from; i < from + n; i++) {
    const ip = `${i >> 8}.${i & 255}`;
    out.push({
      apiVersion: 'v1', kind: 'Service',
      metadata: { namespace: 'shop', name: `svc-${i}`, labels: { app: `svc-${i}` } },
      spec: { type: 'ClusterIP', clusterIP: `10.96.${ip}`, clusterIPs: [`10.96.${ip}`], ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }] },
    });
    out.push({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { namespace: 'shop', name: `svc-${i}-abcde`, labels: { 'kubernetes.io/service-name': `svc-${i}` } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      endpoints: [1, 2].map((k) => ({ addresses: [`10.${243 + k}.${ip}`], nodeName: `node-${k}`, conditions: { ready: true, serving: true, terminating: false } })),
    });
  }
  return out;
}

/** The documents of a multi-document YAML file, as kubectl and most tools separate them. */
const yamlDocs = (objects: readonly unknown[]): string[] => objects.map((o) => stringify(o));
const SEP = '---\n';

/** Best of a few runs: what the parser costs, not what the machine's other load cost it. */
function fastest(runs: number, f: () => unknown): number {
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    f();
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

/**
 * Mean of `runs` back-to-back runs. For the 10 ms JSON parse: compared with a parse that takes
 * a second, a single short run dodges the load that the long one always meets, and the ratio
 * swings by half on a busy machine. Over a similar stretch of time both meet the same load.
 */
function mean(runs: number, f: () => unknown): number {
  const t = performance.now();
  for (let i = 0; i < runs; i++) f();
  return (performance.now() - t) / runs;
}

describe('manifests at any size', () => {
  const objects = objectsFor(SERVICES);
  const docs = yamlDocs(objects);
  const yaml = docs.join(SEP);
  const json = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }, null, 2);

  it(`${SERVICES} services as multi-document YAML: the JSON List's objects, in time linear in the size`, async ({ annotate }) => {
    const fromYaml = parseManifest(yaml, 'all.yaml');
    const fromJson = parseManifest(json, 'all.json');
    expect(fromYaml.ok && fromJson.ok).toBe(true);
    if (!fromYaml.ok || !fromJson.ok) return;
    expect(fromYaml.value.map((o) => o.object)).toEqual(fromJson.value.map((o) => o.object));

    // A quarter of the file must cost about a quarter of the time (measured 3.9-4.9x for the
    // whole, busy machine or not); a parse that re-reads the text per document took 19.5x.
    const quarter = docs.slice(0, docs.length / 4).join(SEP);
    const tQuarter = fastest(3, () => parseManifest(quarter, 'q.yaml'));
    const tYaml = fastest(2, () => parseManifest(yaml, 'all.yaml'));
    const tJson = mean(60, () => parseManifest(json, 'all.json'));
    await annotate(`YAML ${(yaml.length / 1e6).toFixed(1)} MB: ${tYaml.toFixed(0)} ms (a quarter: ${tQuarter.toFixed(0)} ms); JSON List ${(json.length / 1e6).toFixed(1)} MB: ${tJson.toFixed(1)} ms; YAML/JSON ${(tYaml / tJson).toFixed(1)}x`);
    expect(tYaml / tQuarter).toBeLessThan(10);
    // The yaml package parses ~1.5 MB/s, JSON.parse ~100 MB/s: linear, but a constant factor
    // of 40-75 over the JSON fast path. Bounded well under what the quadratic parse cost (1680x).
    expect(tYaml / tJson).toBeLessThan(150);
  }, 60_000);

  it('a document far into the file is reported at its own line', () => {
    // Each document after the first starts at its `---` line.
    const r = parseManifest(yaml, 'all.yaml');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const want: string[] = [];
    let line = 1;
    for (let i = 0; i < docs.length; i++) {
      want.push(`all.yaml:${line}`);
      line += (i === 0 ? 0 : 1) + docs[i]!.split('\n').length - 1; // its `---`, then its lines
    }
    expect(r.value.map((o) => o.origin)).toEqual(want);
    expect(r.value[3_001]!.origin).toBe(want[3_001]);
  }, 30_000);

  it('a syntax error far into the file names its line', () => {
    const broken = [...docs];
    const k = 3_501; // an EndpointSlice (even documents are Services)
    broken[k] = broken[k]!.replace('addressType: IPv4\n', 'addressType: IPv4: IPv6\n');
    expect(broken[k]).not.toBe(docs[k]);
    const text = broken.join(SEP);
    const want = text.slice(0, text.indexOf('IPv4: IPv6')).split('\n').length;
    expect(want).toBeGreaterThan(40_000);
    const r = parseManifest(text, 'all.yaml');
    expect(r).toMatchObject({ ok: false, error: { code: 'SYNTAX', file: 'all.yaml', line: want } });
  }, 30_000);
});

// The manifest parser: JSON takes a fast path (JSON.parse), YAML the yaml parser; both must read
// the same objects, and a broken JSON file is reported like a broken YAML one, with its line.
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseManifest } from '../../src/sources/manifests.js';

const svc = { apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'shop', name: 'web' }, spec: { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80 }] } };
const slice = { apiVersion: 'discovery.k8s.io/v1', metadata: { namespace: 'shop', name: 'web-a', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', endpoints: [{ addresses: ['10.244.1.1'] }], ports: [{ name: 'http', port: 8080 }] };
const list = { apiVersion: 'v1', kind: 'List', items: [svc, slice] };
const objects = (r: ReturnType<typeof parseManifest>): unknown[] => (r.ok ? r.value.map((o) => o.object) : [r.error]);

describe('parseManifest', () => {
  it.each([
    ['one JSON object', JSON.stringify(svc), [svc]],
    ['a JSON List (item kinds filled in by shape)', JSON.stringify(list, null, 2), [svc, { ...slice, kind: 'EndpointSlice' }]],
    ['the same List as YAML', stringify(list), [svc, { ...slice, kind: 'EndpointSlice' }]],
    ['YAML documents', `${stringify(svc)}---\n${stringify({ ...slice, kind: 'EndpointSlice' })}`, [svc, { ...slice, kind: 'EndpointSlice' }]],
  ])('%s', (_name, text, want) => {
    expect(objects(parseManifest(text, 'f'))).toEqual(want);
  });

  it('JSON keeps the origin file for log lines', () => {
    const r = parseManifest(JSON.stringify(list), 'dir/all.json');
    expect(r.ok && r.value.map((o) => o.origin)).toEqual(['dir/all.json:1', 'dir/all.json:1']);
  });

  it('broken JSON is a syntax error with its line, as broken YAML is', () => {
    const r = parseManifest('{\n  "kind": "Service",\n  "metadata": {\n', 'bad.json');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatchObject({ code: 'SYNTAX', file: 'bad.json', line: expect.any(Number) });
  });
});

// Features beyond the reference tables, one row = objects + flags, packet, outcome.
import { describe, expect, it } from 'vitest';
import { type Env, type Expect, compileObjects, config, probe, service, slice } from '../support/builders.js';
import { buildModel } from '../../src/model/build-model.js';
import { compile } from '../../src/compile/compile.js';
import { renderText } from '../../src/render/nft-text.js';

const NODE = { nodeName: 'node-a', nodeIPs: ['192.168.0.2'], nodeLabels: { 'topology.kubernetes.io/zone': 'zone-a' } };
const web = (spec: Record<string, unknown> = {}) => service('shop', 'web', { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, targetPort: 'http' }], ...spec });
const twoSlices = [
  slice('shop', 'web', 'web-old', [{ name: 'http', port: 8080 }], [{ ip: '10.244.1.10', node: 'node-a' }]),
  slice('shop', 'web', 'web-new', [{ name: 'http', port: 8081 }], [{ ip: '10.244.2.10', node: 'node-b' }]),
];

interface Row { name: string; objects: unknown[]; env: Partial<Env>; src: string; dst: string; want: Expect; masq?: boolean }

const rows: Row[] = [
  { name: 'named targetPort resolves per slice', objects: [web(), ...twoSlices], env: { clusterCIDRs: ['10.244.0.0/16'] }, src: '10.244.3.3', dst: '10.96.0.10:80', want: ['10.244.1.10:8080', '10.244.2.10:8081'], masq: false },
  { name: 'without --cluster-cidr a remote source is not masqueraded', objects: [web(), ...twoSlices], env: {}, src: '203.0.113.9', dst: '10.96.0.10:80', want: ['10.244.1.10:8080', '10.244.2.10:8081'], masq: false },
  { name: 'with --cluster-cidr a source outside it is masqueraded', objects: [web(), ...twoSlices], env: { clusterCIDRs: ['10.244.0.0/16'] }, src: '203.0.113.9', dst: '10.96.0.10:80', want: ['10.244.1.10:8080', '10.244.2.10:8081'], masq: true },
  { name: '--masquerade-all masquerades pod traffic too', objects: [web(), ...twoSlices], env: { clusterCIDRs: ['10.244.0.0/16'], masqueradeAll: true }, src: '10.244.3.3', dst: '10.96.0.10:80', want: ['10.244.1.10:8080', '10.244.2.10:8081'], masq: true },
  { name: 'the node itself to a ClusterIP, with --cluster-cidr: masqueraded', objects: [web(), ...twoSlices], env: { clusterCIDRs: ['10.244.0.0/16'] }, src: '192.168.0.2', dst: '10.96.0.10:80', want: ['10.244.1.10:8080', '10.244.2.10:8081'], masq: true },
  {
    name: 'topology: every ready endpoint hinted, one for zone-a: only zone-a', env: {},
    objects: [web(), slice('shop', 'web', 'web-h', [{ name: 'http', port: 80 }], [{ ip: '10.244.1.1', node: 'node-a', forZones: ['zone-a'] }, { ip: '10.244.2.1', node: 'node-b', forZones: ['zone-b'] }])],
    src: '10.244.3.3', dst: '10.96.0.10:80', want: ['10.244.1.1:80'],
  },
  {
    name: 'topology: one ready endpoint without hints: hints ignored', env: {},
    objects: [web(), slice('shop', 'web', 'web-h', [{ name: 'http', port: 80 }], [{ ip: '10.244.1.1', node: 'node-a', forZones: ['zone-a'] }, { ip: '10.244.2.1', node: 'node-b' }])],
    src: '10.244.3.3', dst: '10.96.0.10:80', want: ['10.244.1.1:80', '10.244.2.1:80'],
  },
  {
    name: 'topology: node hints win over zone hints', env: {},
    objects: [web(), slice('shop', 'web', 'web-h', [{ name: 'http', port: 80 }], [{ ip: '10.244.1.1', node: 'node-a', forZones: ['zone-a'], forNodes: ['node-x'] }, { ip: '10.244.1.2', node: 'node-a', forZones: ['zone-a'], forNodes: ['node-a'] }])],
    src: '10.244.3.3', dst: '10.96.0.10:80', want: ['10.244.1.2:80'],
  },
  {
    name: 'topology ignored by internalTrafficPolicy Local', env: {},
    objects: [web({ internalTrafficPolicy: 'Local' }), slice('shop', 'web', 'web-h', [{ name: 'http', port: 80 }], [{ ip: '10.244.1.1', node: 'node-a', forZones: ['zone-b'] }, { ip: '10.244.2.1', node: 'node-b', forZones: ['zone-a'] }])],
    src: '10.244.3.3', dst: '10.96.0.10:80', want: ['10.244.1.1:80'],
  },
  {
    name: 'session affinity: first connection may land on any endpoint', env: {},
    objects: [web({ sessionAffinity: 'ClientIP' }), ...twoSlices],
    src: '10.244.3.3', dst: '10.96.0.10:80', want: ['10.244.1.10:8080', '10.244.2.10:8081'],
  },
  {
    name: 'nodeport-addresses 0.0.0.0/0: any local address serves NodePorts', env: { nodePortAddresses: ['0.0.0.0/0'], nodeIPs: ['192.168.0.2', '192.168.5.5'] },
    objects: [web({ type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }] }), ...twoSlices],
    src: '203.0.113.9', dst: '192.168.5.5:30080', want: ['10.244.1.10:8080', '10.244.2.10:8081'], masq: true,
  },
  {
    name: 'NodePorts never on loopback, even when a CIDR covers it', env: { nodePortAddresses: ['127.0.0.0/8'], nodeIPs: ['192.168.0.2', '127.0.0.1'] },
    objects: [web({ type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }] }), ...twoSlices],
    src: '127.0.0.1', dst: '127.0.0.1:30080', want: '',
  },
  {
    name: 'an address in --service-cidr that no service owns: DROP', env: { serviceCIDRs: ['10.96.0.0/12'] },
    objects: [web(), ...twoSlices], src: '10.244.3.3', dst: '10.96.0.99:80', want: 'DROP',
  },
  {
    name: 'outside --service-cidr and unknown: not proxied', env: { serviceCIDRs: ['10.96.0.0/12'] },
    objects: [web(), ...twoSlices], src: '10.244.3.3', dst: '10.200.0.1:80', want: '',
  },
];

describe('features', () => {
  it.each(rows)('$name', ({ objects, env, src, dst, want, masq }) => {
    const { ruleset, cfg, diagnostics } = compileObjects(objects, { ...NODE, ...env });
    expect(diagnostics).toEqual([]);
    const r = probe(ruleset, cfg, src, dst);
    expect(r.got).toEqual(Array.isArray(want) ? [...want].sort() : want);
    if (masq !== undefined) expect(r.masq).toBe(masq);
  });

  it('session affinity: one shared set; each endpoint remembers its clients under its own key, with the service timeout', () => {
    const { ruleset } = compileObjects([web({ sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } } }), ...twoSlices], NODE);
    const text = renderText(ruleset);
    expect(text.match(/^\tset affinity/gm)).toHaveLength(1);
    // a remembered client goes back to its endpoint and is remembered again, under that endpoint's key
    const remembered = [...text.matchAll(/ip saddr \. numgen random mod 1 offset (\d+) \. numgen random mod 1 offset (\d+) @affinity update @affinity \{ ip saddr \. numgen random mod 1 offset \1 \. numgen random mod 1 offset \2 timeout 600s \} meta l4proto tcp dnat to (\S+)/g)];
    expect(remembered.map((u) => u[3]).sort()).toEqual(['10.244.1.10:8080', '10.244.2.10:8081']);
    expect(new Set(remembered.map((u) => `${u[1]}.${u[2]}`)).size).toBe(2);
    // a new client picked at random is remembered under the key of the endpoint it got
    for (const u of remembered) expect(text).toContain(`update @affinity { ip saddr . numgen random mod 1 offset ${u[1]} . numgen random mod 1 offset ${u[2]} timeout 600s } meta l4proto tcp dnat to ${u[3]}\n`);
    // no chain per endpoint, no anonymous map
    expect(text).not.toMatch(/chain endpoint-|vmap \{/);
  });

  it('session affinity: an endpoint that went away comes back under a new key (its old clients are not sent back to it)', () => {
    const objects = [web({ sessionAffinity: 'ClientIP' }), ...twoSlices];
    const keys = (gen: (eid: string) => number): string[] => [...renderText(compile(buildModel(objects.map((object) => ({ object }))).model, config(NODE), gen)).matchAll(/offset (\d+) \. numgen random mod 1 offset (\d+) @affinity update .* dnat to (\S+)/g)].map((m) => `${m[3]} ${m[1]}.${m[2]}`).sort();
    const before = keys(() => 0);
    const after = keys((eid) => (eid.endsWith('__10.244.1.10/8080') ? 1 : 0));
    expect(before.filter((k) => k.includes('10.244.1.10:8080'))).toHaveLength(1);
    expect(after.filter((k) => k.includes('10.244.1.10:8080'))).not.toEqual(before.filter((k) => k.includes('10.244.1.10:8080')));
    expect(after.filter((k) => k.includes('10.244.2.10:8081'))).toEqual(before.filter((k) => k.includes('10.244.2.10:8081')));
  });

  it('the layout does not grow sets with services: 200 services share one dnat map per endpoint count', () => {
    // 8 fixed sets and maps (one of them the shared affinity set), nodeport-ips, and three
    // endpoint-count groups, the one in use (3) and its spares (2 and 4: render/kernel/spares.ts),
    // each with its 2 dnat maps and 4 dispatch sets (its chain and its masquerade chain, VIP and
    // NodePort keys)
    const objects: unknown[] = [];
    for (let i = 0; i < 200; i++) {
      objects.push(service('load', `s${i}`, { clusterIP: `10.96.${i >> 8}.${(i & 255) + 1}`, ports: [{ name: 'p', port: 80 }] }));
      objects.push(slice('load', `s${i}`, `s${i}-a`, [{ name: 'p', port: 80 }], [{ ip: `10.244.${i & 255}.1` }, { ip: `10.244.${i & 255}.2` }, { ip: `10.244.${i & 255}.3` }]));
    }
    const text = renderText(compileObjects(objects, NODE).ruleset);
    expect(text.match(/^\t(set|map) /gm)).toHaveLength(27);
  });
});

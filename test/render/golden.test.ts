// Renderer output is reviewed like code: a diff in these files is a behaviour change.
// Regenerate on purpose only: npx vitest run test/render -u
import { describe, expect, it } from 'vitest';
import { renderText } from '../../src/render/nft-text.js';
import { renderJson } from '../../src/render/nft-json.js';
import { CLUSTER_ENV } from '../support/address-plan.js';
import { compileObjects, service, slice } from '../support/builders.js';

const ENV = CLUSTER_ENV;
const CASES: Record<string, unknown[]> = {
  'etp-local-lb': [
    service('shop', 'web', { type: 'LoadBalancer', clusterIP: '10.96.0.10', externalTrafficPolicy: 'Local', healthCheckNodePort: 32000, externalIPs: ['203.0.113.10'], loadBalancerSourceRanges: ['192.168.0.0/24'], ports: [{ name: 'http', port: 80, nodePort: 30080 }] }, { loadBalancer: { ingress: [{ ip: '198.51.100.1' }] } }),
    slice('shop', 'web', 'web-a', [{ name: 'http', port: 8080 }], [{ ip: '10.244.1.2', node: 'node-a' }, { ip: '10.244.2.2', node: 'node-b' }, { ip: '10.244.2.3', node: 'node-b' }]),
  ],
  'affinity-dual-stack': [
    service('db', 'pg', { clusterIPs: ['10.96.0.20', 'fd00:10:96::20'], ipFamilies: ['IPv4', 'IPv6'], sessionAffinity: 'ClientIP', ports: [{ name: 'pg', port: 5432 }] }),
    slice('db', 'pg', 'pg-v4', [{ name: 'pg', port: 5432 }], [{ ip: '10.244.1.7', node: 'node-a' }, { ip: '10.244.2.7', node: 'node-b' }]),
    slice('db', 'pg', 'pg-v6', [{ name: 'pg', port: 5432 }], [{ ip: 'fd00:10:244::7', node: 'node-a' }], 'IPv6'),
  ],
  'no-endpoints-itp-local-udp': [
    service('kube-system', 'dns', { clusterIP: '10.96.0.53', internalTrafficPolicy: 'Local', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] }),
    slice('kube-system', 'dns', 'dns-a', [{ name: 'dns', port: 53, protocol: 'UDP' }], [{ ip: '10.244.2.53', node: 'node-b' }]),
    service('kube-system', 'gone', { type: 'NodePort', clusterIP: '10.96.0.54', ports: [{ name: 'x', port: 80, nodePort: 30081 }] }),
  ],
};

describe.each(Object.entries(CASES))('%s', (name, objects) => {
  const { ruleset, diagnostics } = compileObjects(objects, ENV);
  it('compiles cleanly', () => expect(diagnostics).toEqual([]));
  it('nft text', async () => { await expect(renderText(ruleset)).toMatchFileSnapshot(`__golden__/${name}.nft`); });
  it('nft json', async () => { await expect(renderJson(ruleset)).toMatchFileSnapshot(`__golden__/${name}.json`); });
  it('is deterministic', () => {
    const again = compileObjects([...objects].reverse(), ENV).ruleset;
    expect(renderText(again)).toBe(renderText(ruleset));
  });
});

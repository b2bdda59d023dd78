// Discovery documents: what kubectl reads to turn `svc` into /api/v1/services. The fake
// answers the legacy (unaggregated) forms only; kubectl asks for aggregated discovery first
// and falls back when the Content-Type says plain JSON, as it does against older servers.
import { RESOURCES, type Resource, apiVersionOf } from './resources.js';

const VERBS = ['get', 'list', 'watch'];

function resourceList(groupVersion: string, rs: readonly Resource[]): unknown {
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion,
    resources: rs.map((r) => ({
      name: r.plural,
      singularName: r.singular,
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: VERBS,
      ...(r.shortNames.length ? { shortNames: r.shortNames } : {}),
    })),
  };
}

/** The document for a discovery path, or undefined if the path is not one. */
export function discoveryDoc(path: string, serverAddress: string): unknown {
  const groups = [...new Set(RESOURCES.filter((r) => r.group).map((r) => r.group))];
  const groupDoc = (g: string): unknown => ({
    name: g,
    versions: [{ groupVersion: `${g}/v1`, version: 'v1' }],
    preferredVersion: { groupVersion: `${g}/v1`, version: 'v1' },
  });
  switch (path) {
    case '/version':
      return { major: '1', minor: '32', gitVersion: 'v1.32.0-fake', gitCommit: '0000000000000000000000000000000000000000', gitTreeState: 'clean', buildDate: '2025-01-01T00:00:00Z', goVersion: 'go1.23.0', compiler: 'gc', platform: 'linux/amd64' };
    case '/api':
      return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
    case '/apis':
      return { kind: 'APIGroupList', apiVersion: 'v1', groups: groups.map(groupDoc) };
    case '/api/v1':
      return resourceList('v1', RESOURCES.filter((r) => r.group === ''));
  }
  for (const g of groups) {
    if (path === `/apis/${g}`) return { kind: 'APIGroup', apiVersion: 'v1', ...(groupDoc(g) as object) };
    if (path === `/apis/${g}/v1`) return resourceList(`${g}/v1`, RESOURCES.filter((r) => apiVersionOf(r) === `${g}/v1`));
  }
  return undefined;
}

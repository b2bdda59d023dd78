// The three resource types the fake serves, described once: routing, discovery and the
// list/watch encoders all read this table, so a new type is one row, not five edits.
export type Kind = 'Service' | 'EndpointSlice' | 'Node';

export interface Resource {
  readonly kind: Kind;
  readonly listKind: string;
  readonly plural: string;
  readonly singular: string;
  /** '' is the legacy core group served under /api */
  readonly group: '' | 'discovery.k8s.io';
  readonly version: 'v1';
  readonly namespaced: boolean;
  readonly shortNames: readonly string[];
  /** field selectors the real API server accepts for this type (others are a 400) */
  readonly fields: readonly string[];
}

export const RESOURCES: readonly Resource[] = [
  { kind: 'Service', listKind: 'ServiceList', plural: 'services', singular: 'service', group: '', version: 'v1', namespaced: true, shortNames: ['svc'], fields: ['metadata.name', 'metadata.namespace'] },
  { kind: 'EndpointSlice', listKind: 'EndpointSliceList', plural: 'endpointslices', singular: 'endpointslice', group: 'discovery.k8s.io', version: 'v1', namespaced: true, shortNames: [], fields: ['metadata.name', 'metadata.namespace', 'addressType'] },
  { kind: 'Node', listKind: 'NodeList', plural: 'nodes', singular: 'node', group: '', version: 'v1', namespaced: false, shortNames: ['no'], fields: ['metadata.name', 'spec.unschedulable'] },
];

export const apiVersionOf = (r: Resource): string => (r.group ? `${r.group}/${r.version}` : r.version);

export function resourceOf(kind: Kind): Resource {
  const r = RESOURCES.find((x) => x.kind === kind);
  if (!r) throw new Error(`unknown kind ${kind}`);
  return r;
}

/** The collection path of a resource, cluster-wide or in one namespace. */
export function collectionPath(r: Resource, namespace?: string): string {
  const prefix = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  return namespace === undefined ? `${prefix}/${r.plural}` : `${prefix}/namespaces/${encodeURIComponent(namespace)}/${r.plural}`;
}

export type Route =
  | { readonly to: 'collection'; readonly resource: Resource; readonly namespace?: string }
  | { readonly to: 'object'; readonly resource: Resource; readonly namespace?: string; readonly name: string }
  | { readonly to: 'discovery'; readonly path: string }
  | { readonly to: 'none' };

const DISCOVERY = new Set(['/api', '/apis', '/version', '/api/v1', ...RESOURCES.filter((r) => r.group).map((r) => `/apis/${r.group}`), ...RESOURCES.filter((r) => r.group).map((r) => `/apis/${r.group}/${r.version}`)]);

/** Maps a URL path to what it names, the way the API server's router does for these types. */
export function route(pathname: string): Route {
  const p = pathname.replace(/\/+$/, '') || '/';
  if (DISCOVERY.has(p)) return { to: 'discovery', path: p };
  const parts = p.split('/').slice(1).map(decodeURIComponent);
  let rest: string[];
  let group: string;
  if (parts[0] === 'api' && parts[1] === 'v1') {
    group = '';
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 3) {
    group = parts[1]!;
    if (parts[2] !== 'v1') return { to: 'none' };
    rest = parts.slice(3);
  } else return { to: 'none' };
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const resource = RESOURCES.find((r) => r.group === group && r.plural === rest[0]);
  if (!resource || rest.length > 2) return { to: 'none' };
  // A namespaced path to a cluster-scoped type (or the reverse for a single object) does not exist.
  if (namespace !== undefined && !resource.namespaced) return { to: 'none' };
  if (rest.length === 1) return namespace === undefined ? { to: 'collection', resource } : { to: 'collection', resource, namespace };
  if (resource.namespaced && namespace === undefined) return { to: 'none' };
  return namespace === undefined ? { to: 'object', resource, name: rest[1]! } : { to: 'object', resource, namespace, name: rest[1]! };
}

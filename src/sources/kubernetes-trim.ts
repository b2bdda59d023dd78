// Trim on receive: what the API source keeps of each object it caches.
//
// An API object is mostly what nftproxy never reads: managedFields, last-applied
// annotations, a Node's images and conditions, an endpoint's targetRef. A Service with a
// 200 KB annotation would otherwise be held as long as it exists, hashed whole by the
// quarantine, and an edit of that annotation (or a Node's heartbeat) would cost a sync. So
// every list item and watch event is cut down to one explicit whitelist per kind before it
// enters the informer's cache, and the cache only ever holds what the shapes below name.
//
// A field belongs here exactly when something downstream reads it:
// - model/service.ts, model/endpoint-slice.ts, model/node.ts (what becomes the model);
// - model/model-store.ts (a slice's last-change-trigger-time, for kube-proxy's programming latency);
// - daemon/quarantine.ts (a slice's service-name label);
// - the informer itself (name, namespace, resourceVersion).
// Reading a new field means adding it here: test/sources/kubernetes-trim.test.ts checks
// that the model built from trimmed objects is the one built from whole objects.
import type { KubernetesObject } from '@kubernetes/client-node';
import { SERVICE_NAME_LABEL } from '../model/endpoint-slice.js';
import { SERVICE_PROXY_NAME_LABEL } from '../model/service.js';
import type { ResourceSpec } from './kubernetes-informer.js';

/** the EndpointSlice annotation kube-proxy's network-programming latency is measured from */
export const TRIGGER_TIME_ANNOTATION = 'endpoints.kubernetes.io/last-change-trigger-time';

/**
 * `true`: keep the value whole. An object: keep only these keys of an object. `[s]`: an
 * array, each element kept by `s`. A value of the wrong type for its shape is dropped: the
 * model reads a missing object or array exactly as it reads a malformed one ({} or []).
 */
export type Shape = true | { readonly [key: string]: Shape } | readonly [Shape];

const metadata = (o: { labels?: readonly string[]; annotations?: readonly string[]; wholeLabels?: boolean; deletionTimestamp?: boolean }): Shape => ({
  name: true,
  namespace: true,
  resourceVersion: true,
  ...(o.wholeLabels ? { labels: true } : o.labels ? { labels: Object.fromEntries(o.labels.map((k) => [k, true])) } : {}),
  ...(o.annotations ? { annotations: Object.fromEntries(o.annotations.map((k) => [k, true])) } : {}),
  ...(o.deletionTimestamp ? { deletionTimestamp: true } : {}),
});

export const SHAPES: Readonly<Record<ResourceSpec['kind'], Shape>> = {
  Service: {
    metadata: metadata({ labels: [SERVICE_PROXY_NAME_LABEL] }),
    spec: {
      type: true,
      clusterIP: true,
      clusterIPs: true,
      ports: [{ name: true, protocol: true, port: true, targetPort: true, nodePort: true }],
      externalIPs: true,
      loadBalancerSourceRanges: true,
      externalTrafficPolicy: true,
      internalTrafficPolicy: true,
      healthCheckNodePort: true,
      sessionAffinity: true,
      sessionAffinityConfig: { clientIP: { timeoutSeconds: true } },
      trafficDistribution: true,
    },
    status: { loadBalancer: { ingress: [{ ip: true, ipMode: true }] } },
  },
  EndpointSlice: {
    metadata: metadata({ labels: [SERVICE_NAME_LABEL], annotations: [TRIGGER_TIME_ANNOTATION] }),
    addressType: true,
    ports: [{ name: true, protocol: true, port: true }],
    endpoints: [{
      addresses: true,
      conditions: { ready: true, serving: true, terminating: true },
      nodeName: true,
      zone: true,
      hints: { forZones: [{ name: true }], forNodes: [{ name: true }] },
    }],
  },
  // One object (this node's), and the model hands all its labels on as the node's labels
  // (ProxyConfig.nodeLabels), so they stay whole. Its status is mostly what changes on
  // every kubelet report (conditions, images, volumes): only the addresses are kept.
  Node: {
    metadata: metadata({ wholeLabels: true, deletionTimestamp: true }),
    spec: { taints: [{ key: true }] },
    status: { addresses: [{ type: true, address: true }] },
  },
};

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `v` cut down to `shape`; undefined when it has the wrong type for it. */
export function keep(v: unknown, shape: Shape): unknown {
  if (shape === true) return v;
  if (Array.isArray(shape)) {
    const element = (shape as readonly [Shape])[0];
    return Array.isArray(v) ? v.map((e) => keep(e, element)) : undefined;
  }
  if (!isObj(v)) return undefined;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(shape)) {
    if (!Object.hasOwn(v, key)) continue;
    const kept = keep(v[key], (shape as { readonly [key: string]: Shape })[key]!);
    if (kept !== undefined) out[key] = kept;
  }
  return out;
}

/**
 * What the cache keeps of an object of `spec`'s kind: the whitelisted fields, plus the kind
 * and apiVersion that list items lack, so the cached object can be handed out as it is.
 */
export function trimObject(spec: Pick<ResourceSpec, 'kind' | 'apiVersion'>, o: unknown): KubernetesObject {
  const kept = (keep(o, SHAPES[spec.kind]) ?? {}) as Record<string, unknown>;
  // The informer's cache keys objects by metadata.name and .namespace: it must exist.
  return { kind: spec.kind, apiVersion: spec.apiVersion, ...kept, metadata: (kept.metadata as KubernetesObject['metadata']) ?? {} };
}

/** Two trimmed objects that differ at most in resourceVersion: nothing nftproxy reads changed. */
export function sameButVersion(a: KubernetesObject, b: KubernetesObject): boolean {
  const { resourceVersion: _a, ...ma } = a.metadata ?? {};
  const { resourceVersion: _b, ...mb } = b.metadata ?? {};
  return deepEqual({ ...a, metadata: ma }, { ...b, metadata: mb });
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (!isObj(a) || !isObj(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
}

// Raw API objects (any order, any mix) -> Model + one diagnostic per skipped object.
import type { Diagnostic } from './diagnostic.js';
import { type Raw, isObj, obj, str } from './raw.js';
import { normalizeService } from './service.js';
import { normalizeEndpointSlice } from './endpoint-slice.js';
import { normalizeNode } from './node.js';
import { printable } from './ip.js';
import { type EndpointSlice, type Model, type Node, type Service, refString } from './types.js';

export interface SourceObject {
  readonly object: unknown;
  /** where it came from, for messages: "examples/web.yaml:12" */
  readonly origin?: string;
}

/**
 * One change between two versions of a source: an object gone (before), come (after), or
 * replaced (both). `before` is the very object the source handed out earlier.
 */
export interface SourceChange {
  readonly before?: SourceObject;
  readonly after?: SourceObject;
}

export interface BuildResult {
  readonly model: Model;
  readonly diagnostics: readonly Diagnostic[];
  /** objects deliberately not proxied (headless, ExternalName, other proxy), for explain */
  readonly ignored: readonly { ref: string; reason: string }[];
}

export type Classified =
  | { readonly kind: 'service'; readonly service: Service }
  | { readonly kind: 'slice'; readonly slice: EndpointSlice }
  | { readonly kind: 'node'; readonly node: Node }
  | { readonly kind: 'diagnostic'; readonly diagnostic: Diagnostic }
  | { readonly kind: 'ignored'; readonly ignored: { ref: string; reason: string } }
  /** a kind nftproxy does not read (Pods, ConfigMaps … in a `kubectl get -o yaml` dump) */
  | { readonly kind: 'none' };

/** One raw object on its own: what it is to the model (remembered per object). */
export function classify(object: unknown, proxyName: string, origin?: string): Classified {
  if (!isObj(object)) return { kind: 'diagnostic', diagnostic: { kind: 'Object', object: origin ?? '?', code: 'not-an-object', reason: 'not a Kubernetes object' } };
  // only messages need it: not computed for the 10,000 objects that are fine
  const whereOf = (): string => `${printable(str(obj(object.metadata).namespace) ?? 'default')}/${printable(str(obj(object.metadata).name) ?? '')}`;
  switch (str(object.kind)) {
    case 'Service': {
      const r = cached(serviceCache, object, proxyName, () => normalizeService(object, proxyName));
      if (r.kind === 'service') return r;
      if (r.kind === 'ignored') return { kind: 'ignored', ignored: { ref: whereOf(), reason: r.reason } };
      return { kind: 'diagnostic', diagnostic: { kind: 'Service', object: whereOf(), code: r.code, reason: r.reason } };
    }
    case 'EndpointSlice': {
      const r = cached(sliceCache, object, '', () => normalizeEndpointSlice(object));
      if (r.kind === 'slice') return r;
      if (r.kind === 'ignored') return { kind: 'ignored', ignored: { ref: whereOf(), reason: r.reason } };
      return { kind: 'diagnostic', diagnostic: { kind: 'EndpointSlice', object: whereOf(), code: r.code, reason: r.reason } };
    }
    case 'Node': {
      const r = cached(nodeCache, object, '', () => normalizeNode(object));
      if (r.kind === 'node') return r;
      return { kind: 'diagnostic', diagnostic: { kind: 'Node', object: printable(str(obj(object.metadata).name) ?? ''), code: r.code, reason: r.reason } };
    }
    default:
      return { kind: 'none' };
  }
}

/** "Kind/namespace/name" of a raw object (namespace empty for cluster-scoped), or undefined without kind or name. */
export function objectKey(object: unknown): string | undefined {
  if (!isObj(object)) return undefined;
  const kind = str(object.kind), m = obj(object.metadata), name = str(m.name);
  if (kind === undefined || name === undefined) return undefined;
  const ns = kind === 'Node' ? '' : (str(m.namespace) ?? 'default');
  return `${kind}/${ns}/${name}`;
}

export function buildModel(objects: readonly SourceObject[], proxyName = 'nftproxy'): BuildResult {
  const diagnostics: Diagnostic[] = [];
  const ignored: { ref: string; reason: string }[] = [];
  const services: Service[] = [];
  const slicesBySvc = new Map<string, EndpointSlice[]>();
  const nodes = new Map<string, Node>();

  for (const { object, origin } of objects) {
    const c = classify(object, proxyName, origin);
    switch (c.kind) {
      case 'service': services.push(c.service); break;
      case 'slice': {
        const key = `${c.slice.ref.namespace}/${c.slice.serviceName}`;
        const list = slicesBySvc.get(key);
        if (list) list.push(c.slice); else slicesBySvc.set(key, [c.slice]);
        break;
      }
      case 'node': nodes.set(c.node.name, c.node); break;
      case 'diagnostic': diagnostics.push(c.diagnostic); break;
      case 'ignored': ignored.push(c.ignored); break;
      case 'none': break;
    }
  }

  sortByRef(services);
  const deduped = dropDuplicateServices(services, diagnostics);
  const accepted = dropAddressConflicts(dropNodePortConflicts(deduped, diagnostics), diagnostics);
  for (const list of slicesBySvc.values()) list.sort((a, b) => cmp(a.ref.name, b.ref.name));
  return { model: { services: accepted, slices: slicesBySvc, nodes }, diagnostics, ignored };
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

// Normalizing is pure in the raw object, and sources hand the same object back while it is
// unchanged (a manifest file not edited, an informer's cached version): remember the result
// per object, so a sync of 10,000 services re-reads only what changed. Sources must not
// mutate an object they have handed out (neither does: a change is a new object).
const serviceCache = new WeakMap<object, { key: string; value: ReturnType<typeof normalizeService> }>();
const sliceCache = new WeakMap<object, { key: string; value: ReturnType<typeof normalizeEndpointSlice> }>();
const nodeCache = new WeakMap<object, { key: string; value: ReturnType<typeof normalizeNode> }>();
function cached<T>(cache: WeakMap<object, { key: string; value: T }>, o: object, key: string, f: () => T): T {
  const hit = cache.get(o);
  if (hit && hit.key === key) return hit.value;
  const value = f();
  cache.set(o, { key, value });
  return value;
}

function dropDuplicateServices(services: Service[], diagnostics: Diagnostic[]): Service[] {
  const out: Service[] = [];
  for (const s of services) {
    const prev = out[out.length - 1];
    if (prev && refString(prev.ref) === refString(s.ref)) {
      diagnostics.push({ kind: 'Service', object: refString(s.ref), code: 'duplicate-object', reason: 'defined twice; the first definition is used' });
      continue;
    }
    out.push(s);
  }
  return out;
}

// Two services cannot own one NodePort: the one sorted first keeps it, the other is skipped
// whole so that no port of it half-works.
function dropNodePortConflicts(services: Service[], diagnostics: Diagnostic[]): Service[] {
  const owner = new Map<string, string>();
  const out: Service[] = [];
  for (const s of services) {
    const mine = new Map<string, string>();
    let conflict: string | undefined;
    const claims = nodePortClaims(s);
    for (const c of claims) {
      const other = owner.get(c.key) ?? (mine.has(c.key) ? refString(s.ref) : undefined);
      if (other !== undefined) { conflict = `${c.text} already used by ${other}`; break; }
      mine.set(c.key, refString(s.ref));
    }
    if (conflict) {
      diagnostics.push({ kind: 'Service', object: refString(s.ref), code: 'nodeport-conflict', reason: conflict });
      continue;
    }
    for (const [k, v] of mine) owner.set(k, v);
    out.push(s);
  }
  return out;
}

// Two service ports cannot own one (IP, protocol, port): the dispatch maps have one verdict
// per key, and nft refuses a transaction that adds a key twice, which would stop every
// Service on the node. externalIPs are user-set, so this is reachable by any user who may
// create a Service. As for NodePorts, the service sorted first keeps the destination and the
// other is skipped whole; a service whose own externalIP repeats its clusterIP on one port
// conflicts with itself.
function dropAddressConflicts(services: Service[], diagnostics: Diagnostic[]): Service[] {
  const owner = new Map<string, string>();
  const out: Service[] = [];
  for (const s of services) {
    const me = refString(s.ref);
    const mine = new Map<string, string>();
    let conflict: string | undefined;
    for (const c of addressClaims(s)) {
      const other = owner.get(c.key) ?? mine.get(c.key);
      if (other !== undefined) { conflict = `${c.role} ${c.ip} port ${c.port}/${c.proto.toUpperCase()} ${other === me ? 'repeats one of its own destinations' : `already used by ${other}`}`; break; }
      mine.set(c.key, me);
    }
    if (conflict) {
      diagnostics.push({ kind: 'Service', object: me, code: 'address-conflict', reason: conflict });
      continue;
    }
    for (const [k, v] of mine) owner.set(k, v);
    out.push(s);
  }
  return out;
}

// 10,000 services sort often: compute each "ns/name" once, not per comparison.
function sortByRef(services: Service[]): void {
  const keyed = services.map((s) => ({ k: refString(s.ref), s }));
  keyed.sort((a, b) => cmp(a.k, b.k));
  for (let i = 0; i < keyed.length; i++) services[i] = keyed[i]!.s;
}

function nodePortClaims(s: Service): { key: string; text: string }[] {
  const claims = s.ports.filter((p) => p.nodePort !== undefined).map((p) => ({ key: `${p.protocol}/${p.nodePort}`, text: `nodePort ${p.nodePort}/${p.protocol.toUpperCase()}` }));
  if (s.healthCheckNodePort !== undefined) claims.push({ key: `tcp/${s.healthCheckNodePort}`, text: `healthCheckNodePort ${s.healthCheckNodePort}` });
  return claims;
}

/** The NodePorts (and healthCheckNodePort) a service claims: two services cannot share one. */
export const nodePortClaimKeys = (s: Service): string[] => nodePortClaims(s).map((c) => c.key);
/** The (IP, protocol, port) destinations a service claims: two service ports cannot share one. */
export const addressClaimKeys = (s: Service): string[] => addressClaims(s).map((c) => c.key);

interface Claim { readonly key: string; readonly role: string; readonly ip: string; readonly port: number; readonly proto: string }
/** The (IP, protocol, port) destinations a service claims, remembered per service object. */
const claimCache = new WeakMap<Service, readonly Claim[]>();
function addressClaims(s: Service): readonly Claim[] {
  let c = claimCache.get(s);
  if (!c) {
    const ips = [...s.clusterIPs.map((ip) => ['clusterIP', ip] as const), ...s.externalIPs.map((ip) => ['externalIP', ip] as const), ...s.loadBalancerIPs.map((ip) => ['load balancer IP', ip] as const)];
    c = s.ports.flatMap((p) => ips.map(([role, ip]) => ({ key: `${ip}/${p.protocol}/${p.port}`, role, ip, port: p.port, proto: p.protocol })));
    claimCache.set(s, c);
  }
  return c;
}

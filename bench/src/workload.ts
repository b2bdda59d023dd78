// Realistic, deterministic cluster snapshots: N Services (1-3 ports, mixed ClusterIP /
// NodePort / LoadBalancer, some externalTrafficPolicy=Local and ClientIP affinity), each with
// one EndpointSlice of M endpoints spread over 20 nodes. The same snapshot feeds nftproxy (as
// API objects) and every peer layout generator (read directly), so all load the same cluster.
//
// The first and the last Service are plain single-port TCP ClusterIP services without
// affinity: the data plane connects to them ("first" and "last" in rule order).
import { rng } from '../../test/support/rng.js';

export const NODE_NAME = 'node-0';
export const NODE_IP = '192.168.0.1';
export const CLUSTER_CIDR = '10.128.0.0/9';
export const SERVICE_CIDR = '10.96.0.0/12';
export const NODES = 20;
export const AFFINITY_TIMEOUT = 10800;

export type Proto = 'TCP' | 'UDP';

export interface SnapPort {
  readonly name: string;
  readonly protocol: Proto;
  readonly port: number;
  readonly targetPort: number;
  readonly nodePort?: number;
}

export interface SnapEndpoint {
  readonly ip: string;
  readonly node: string;
}

export interface SnapService {
  readonly ns: string;
  readonly name: string;
  readonly type: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
  readonly clusterIP: string;
  readonly lbIP?: string;
  readonly ports: readonly SnapPort[];
  readonly etpLocal: boolean;
  readonly affinity: boolean;
  readonly healthCheckNodePort?: number;
  readonly endpoints: readonly SnapEndpoint[];
}

export interface Snapshot {
  readonly n: number;
  readonly m: number;
  readonly services: readonly SnapService[];
}


const ipv4 = (n: number): string => `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
const base = (dotted: string): number => dotted.split('.').reduce((a, o) => a * 256 + Number(o), 0);
const pad = (n: number, w: number): string => String(n).padStart(w, '0');

const SVC_BASE = base('10.96.0.0') + 10;
const LB_BASE = base('100.64.0.0') + 1;
const POD_BASE = base('10.128.0.0') + 1;
const PORT_CHOICES = [80, 443, 8080, 9090, 5432, 6379, 8443, 3000, 53, 9100];

/** Allocates addresses and ports; kept with the snapshot so mutations stay unique. */
export class Allocator {
  private nextPod = POD_BASE;
  private nextLB = LB_BASE;
  private nextNodePort = 30000;
  private nextSvc = SVC_BASE;
  pod(): string { return ipv4(this.nextPod++); }
  lb(): string { return ipv4(this.nextLB++); }
  clusterIP(): string { return ipv4(this.nextSvc++); }
  nodePort(): number {
    // 30000-32767 first, then 20000-29999 (a widened --service-node-port-range), then
    // 33000-59999 (50k services need ~25k NodePorts; a bench namespace has no local ports
    // to collide with). Sizes up to 10k never reach the third range: their figures stay comparable.
    const p = this.nextNodePort++;
    if (this.nextNodePort === 32768) this.nextNodePort = 20000;
    if (this.nextNodePort === 30000) this.nextNodePort = 33000;
    if (this.nextNodePort === 60000) throw new Error('out of NodePorts');
    return p;
  }
}

export interface Generator {
  readonly snapshot: Snapshot;
  readonly alloc: Allocator;
  readonly rand: () => number;
}

export function generate(n: number, m: number, seed = 42): Generator {
  const rand = rng(seed * 1000003 + n * 101 + m);
  const alloc = new Allocator();
  const services: SnapService[] = [];
  for (let i = 0; i < n; i++) services.push(makeService(i, m, rand, alloc, { plain: i === 0 || i === n - 1 }));
  return { snapshot: { n, m, services }, alloc, rand };
}

export function nsOf(i: number): string {
  return `bench-${pad(Math.floor(i / 250), 3)}`;
}

export function makeService(i: number, m: number, rand: () => number, alloc: Allocator, opts: { plain?: boolean; name?: string; ns?: string } = {}): SnapService {
  const ns = opts.ns ?? nsOf(i);
  const name = opts.name ?? `svc-${pad(i, 5)}`;
  const endpoints = (count: number): SnapEndpoint[] => Array.from({ length: count }, (_, j) => ({ ip: alloc.pod(), node: `node-${(i + j) % NODES}` }));
  if (opts.plain) {
    return { ns, name, type: 'ClusterIP', clusterIP: alloc.clusterIP(), ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }], etpLocal: false, affinity: false, endpoints: endpoints(m) };
  }
  const r = rand();
  const type = r < 0.75 ? 'ClusterIP' : r < 0.9 ? 'NodePort' : 'LoadBalancer';
  const external = type !== 'ClusterIP';
  const pr = rand();
  const nPorts = pr < 0.5 ? 1 : pr < 0.8 ? 2 : 3;
  const start = Math.floor(rand() * PORT_CHOICES.length);
  const ports: SnapPort[] = [];
  for (let k = 0; k < nPorts; k++) {
    const port = PORT_CHOICES[(start + k) % PORT_CHOICES.length]!;
    const protocol: Proto = port === 53 || rand() < 0.05 ? 'UDP' : 'TCP';
    ports.push({ name: `p${k}`, protocol, port, targetPort: 10000 + port, ...(external ? { nodePort: alloc.nodePort() } : {}) });
  }
  const etpLocal = external && rand() < 0.3;
  const affinity = rand() < 0.05;
  return {
    ns, name, type, clusterIP: alloc.clusterIP(), ...(type === 'LoadBalancer' ? { lbIP: alloc.lb() } : {}),
    ports, etpLocal, affinity, ...(etpLocal ? { healthCheckNodePort: alloc.nodePort() } : {}), endpoints: endpoints(m),
  };
}

/** The Service and EndpointSlice objects as the API serves them. */
export function toObjects(s: SnapService): [Record<string, unknown>, Record<string, unknown>] {
  const spec: Record<string, unknown> = {
    type: s.type, clusterIP: s.clusterIP, clusterIPs: [s.clusterIP], ipFamilies: ['IPv4'], internalTrafficPolicy: 'Cluster',
    ports: s.ports.map((p) => ({ name: p.name, protocol: p.protocol, port: p.port, targetPort: p.targetPort, ...(p.nodePort !== undefined ? { nodePort: p.nodePort } : {}) })),
    sessionAffinity: s.affinity ? 'ClientIP' : 'None',
    ...(s.affinity ? { sessionAffinityConfig: { clientIP: { timeoutSeconds: AFFINITY_TIMEOUT } } } : {}),
    ...(s.type !== 'ClusterIP' ? { externalTrafficPolicy: s.etpLocal ? 'Local' : 'Cluster' } : {}),
    ...(s.healthCheckNodePort !== undefined ? { healthCheckNodePort: s.healthCheckNodePort } : {}),
  };
  const svc = {
    apiVersion: 'v1', kind: 'Service', metadata: { namespace: s.ns, name: s.name }, spec,
    ...(s.lbIP ? { status: { loadBalancer: { ingress: [{ ip: s.lbIP }] } } } : {}),
  };
  const slice = {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { namespace: s.ns, name: `${s.name}-abcde`, labels: { 'kubernetes.io/service-name': s.name } },
    addressType: 'IPv4',
    ports: s.ports.map((p) => ({ name: p.name, protocol: p.protocol, port: p.targetPort })),
    endpoints: s.endpoints.map((e) => ({ addresses: [e.ip], nodeName: e.node, conditions: { ready: true, serving: true, terminating: false } })),
  };
  return [svc, slice];
}

export function snapshotObjects(snap: Snapshot): Record<string, unknown>[] {
  return snap.services.flatMap(toObjects);
}

export interface Counts { services: number; servicePorts: number; endpoints: number; byType: Record<string, number>; etpLocal: number; affinity: number; udpPorts: number }

export function counts(snap: Snapshot): Counts {
  const byType: Record<string, number> = {};
  let servicePorts = 0, endpoints = 0, etpLocal = 0, affinity = 0, udpPorts = 0;
  for (const s of snap.services) {
    byType[s.type] = (byType[s.type] ?? 0) + 1;
    servicePorts += s.ports.length;
    endpoints += s.endpoints.length;
    if (s.etpLocal) etpLocal++;
    if (s.affinity) affinity++;
    udpPorts += s.ports.filter((p) => p.protocol === 'UDP').length;
  }
  return { services: snap.services.length, servicePorts, endpoints, byType, etpLocal, affinity, udpPorts };
}

// ---- changes for the partial-sync phase --------------------------------------------------

export type ChangeKind = 'endpoint' | 'count' | 'add' | 'delete';

export interface Change {
  readonly kind: ChangeKind;
  /** count changes: into a count no other service uses (M -> M-1), or back (M-1 -> M) */
  readonly count?: 'to-new' | 'back';
  /** the service that changed (for delete: the one removed) */
  readonly before: SnapService | undefined;
  readonly after: SnapService | undefined;
  /** position in the service list (sorted order) */
  readonly index: number;
}

/**
 * A live, mutable snapshot for the partial-sync phase. The first and last services are never
 * touched (the data plane measures them afterwards); added services are inserted in sorted
 * position right after an existing one, so "last" stays last in every layout.
 */
export class LiveSnapshot {
  services: SnapService[];
  private added = 0;
  /** the service a count change took an endpoint from, until the next count change puts one back */
  private shrunk: { key: string; endpoint: SnapEndpoint } | undefined;
  constructor(private readonly g: Generator) {
    this.services = [...g.snapshot.services];
  }

  private pickIndex(): number {
    if (this.services.length < 3) throw new Error('too few services to mutate');
    return 1 + Math.floor(this.g.rand() * (this.services.length - 2));
  }

  apply(kind: ChangeKind): Change {
    switch (kind) {
      case 'endpoint': {
        const index = this.pickIndex();
        const before = this.services[index]!;
        const j = Math.floor(this.g.rand() * before.endpoints.length);
        const endpoints = before.endpoints.map((e, k) => (k === j ? { ip: this.g.alloc.pod(), node: e.node } : e));
        const after = { ...before, endpoints };
        this.services[index] = after;
        return { kind, before, after, index };
      }
      case 'count': {
        // Every generated service has M endpoints: M -> M-1 moves the service into a count no
        // other service uses (its endpoint-count group is made), the next count change puts
        // the endpoint back (M-1 -> M: that group is removed). One new endpoint each way.
        if (this.shrunk) {
          const { key, endpoint } = this.shrunk;
          this.shrunk = undefined;
          const index = this.services.findIndex((x) => `${x.ns}/${x.name}` === key);
          const before = this.services[index]!;
          const after = { ...before, endpoints: [...before.endpoints, { ip: this.g.alloc.pod(), node: endpoint.node }] };
          this.services[index] = after;
          return { kind, count: 'back', before, after, index };
        }
        let index = this.pickIndex();
        for (let tries = 0; this.services[index]!.endpoints.length < 2; tries++) {
          if (tries > 1000) throw new Error('count changes need services with 2 endpoints or more');
          index = this.pickIndex();
        }
        const before = this.services[index]!;
        const after = { ...before, endpoints: before.endpoints.slice(0, -1) };
        this.shrunk = { key: `${before.ns}/${before.name}`, endpoint: before.endpoints[before.endpoints.length - 1]! };
        this.services[index] = after;
        return { kind, count: 'to-new', before, after, index };
      }
      case 'add': {
        const at = this.pickIndex();
        const prev = this.services[at]!;
        const k = ++this.added;
        const fresh = makeService(0, this.g.snapshot.m, this.g.rand, this.g.alloc, { ns: prev.ns, name: `${prev.name}-add-${pad(k, 4)}` });
        // a new ClusterIP service with its own endpoints (1-3 ports, maybe affinity)
        const after: SnapService = { ...fresh, type: 'ClusterIP', lbIP: undefined, etpLocal: false, healthCheckNodePort: undefined, ports: fresh.ports.map(({ nodePort: _np, ...p }) => p) };
        const index = at + 1;
        this.services.splice(index, 0, after);
        return { kind, before: undefined, after, index };
      }
      case 'delete': {
        const index = this.pickIndex();
        const before = this.services[index]!;
        this.services.splice(index, 1);
        return { kind, before, after: undefined, index };
      }
    }
  }
}

// The normalized model: what the compiler reads. Every value here has been validated by
// model/; the compiler never re-checks it.
import type { Cidr, IP, IPFamily } from './ip.js';

export type Protocol = 'tcp' | 'udp' | 'sctp';
export type TrafficPolicy = 'Cluster' | 'Local';
export type Port = number & { readonly __brand: 'Port' };

export interface ObjectRef {
  readonly namespace: string;
  readonly name: string;
}

export interface ServicePort {
  /** "" for a single unnamed port, as the API allows */
  readonly name: string;
  readonly protocol: Protocol;
  readonly port: Port;
  /** a number, or a name resolved per EndpointSlice port (kube-proxy never reads it) */
  readonly targetPort: Port | string | undefined;
  readonly nodePort: Port | undefined;
}

export type SessionAffinity = { readonly kind: 'None' } | { readonly kind: 'ClientIP'; readonly timeoutSeconds: number };

export interface Service {
  readonly ref: ObjectRef;
  readonly type: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
  /** one per family, primary first */
  readonly clusterIPs: readonly IP[];
  readonly ports: readonly ServicePort[];
  readonly externalIPs: readonly IP[];
  /** status.loadBalancer.ingress IPs, without ipMode: Proxy ones */
  readonly loadBalancerIPs: readonly IP[];
  readonly loadBalancerSourceRanges: readonly Cidr[];
  readonly externalTrafficPolicy: TrafficPolicy;
  readonly internalTrafficPolicy: TrafficPolicy;
  readonly healthCheckNodePort: Port | undefined;
  readonly sessionAffinity: SessionAffinity;
  readonly trafficDistribution: string | undefined;
}

export interface EndpointConditions {
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
}

/** One backend of one ServicePort: an address and the port the slice names for it. */
export interface Endpoint {
  readonly ip: IP;
  readonly port: Port;
  readonly conditions: EndpointConditions;
  readonly nodeName: string | undefined;
  readonly zone: string | undefined;
  readonly hintsForZones: readonly string[] | undefined;
  readonly hintsForNodes: readonly string[] | undefined;
}

export interface EndpointSlicePort {
  readonly name: string;
  readonly protocol: Protocol;
  readonly port: Port;
}

export interface EndpointSlice {
  readonly ref: ObjectRef;
  readonly serviceName: string;
  readonly family: IPFamily;
  readonly ports: readonly EndpointSlicePort[];
  readonly endpoints: readonly {
    readonly ip: IP;
    readonly conditions: EndpointConditions;
    readonly nodeName: string | undefined;
    readonly zone: string | undefined;
    readonly hintsForZones: readonly string[] | undefined;
    readonly hintsForNodes: readonly string[] | undefined;
  }[];
}

export interface Node {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** InternalIP first, then ExternalIP, in API order */
  readonly addresses: readonly IP[];
  /** why kube-proxy's /healthz would call this node ineligible (deletionTimestamp, the
   * cluster autoscaler's ToBeDeletedByClusterAutoscaler taint); undefined when eligible */
  readonly leaving: string | undefined;
}

export interface Model {
  /** sorted by namespace/name */
  readonly services: readonly Service[];
  /** key "namespace/serviceName" -> slices sorted by name */
  readonly slices: ReadonlyMap<string, readonly EndpointSlice[]>;
  readonly nodes: ReadonlyMap<string, Node>;
}

export const refString = (r: ObjectRef): string => `${r.namespace}/${r.name}`;

// v1.Service -> Service, with kube-proxy's reading of every field.
import type { InvalidCode } from './diagnostic.js';
import { type IP, type Cidr, parseIP, parseCidr, familyOf, printable } from './ip.js';
import { type Result, ok, err } from './result.js';
import type { Port, Protocol, Service, ServicePort, SessionAffinity, TrafficPolicy } from './types.js';
import { type Raw, arr, obj, str, isDnsLabel, metaRef, labels } from './raw.js';

export const SERVICE_PROXY_NAME_LABEL = 'service.kubernetes.io/service-proxy-name';
const DEFAULT_AFFINITY_TIMEOUT = 10800;

/** Why a Service produced no rules: ignored on purpose, or invalid. */
export type ServiceOutcome =
  | { kind: 'service'; service: Service }
  | { kind: 'ignored'; reason: string }
  | { kind: 'invalid'; code: InvalidCode; reason: string };

export function parsePort(v: unknown, what: string): Result<Port, string> {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535
    ? ok(v as Port)
    : err(`${what} ${printable(v)} is not in 1-65535`);
}

export function parseProtocol(v: unknown): Result<Protocol, string> {
  if (v === undefined) return ok('tcp');
  if (v === 'TCP' || v === 'UDP' || v === 'SCTP') return ok(v.toLowerCase() as Protocol);
  return err(`protocol ${printable(v)} is not TCP, UDP or SCTP`);
}

const invalid = (code: InvalidCode, reason: string): ServiceOutcome => ({ kind: 'invalid', code, reason });

export function normalizeService(o: Raw, proxyName: string): ServiceOutcome {
  const ref = metaRef(o);
  if (!isDnsLabel(ref.namespace) || !isDnsLabel(ref.name)) {
    return invalid('invalid-name', `name ${printable(ref.namespace)}/${printable(ref.name)} is not a valid DNS-1123 label`);
  }
  const proxyLabel = labels(o)[SERVICE_PROXY_NAME_LABEL];
  if (proxyLabel !== undefined && proxyLabel !== proxyName) {
    return { kind: 'ignored', reason: `label ${SERVICE_PROXY_NAME_LABEL}=${printable(proxyLabel)} hands it to another proxy` };
  }
  const spec = obj(o.spec);
  const type = str(spec.type) ?? 'ClusterIP';
  if (type === 'ExternalName') return { kind: 'ignored', reason: 'type ExternalName has no virtual IP' };
  if (type !== 'ClusterIP' && type !== 'NodePort' && type !== 'LoadBalancer') {
    return invalid('invalid-type', `type ${printable(type)} is unknown`);
  }
  const rawIPs = arr(spec.clusterIPs).length > 0 ? arr(spec.clusterIPs) : spec.clusterIP !== undefined ? [spec.clusterIP] : [];
  if (rawIPs.length === 0 || rawIPs[0] === 'None' || rawIPs[0] === '') {
    return { kind: 'ignored', reason: 'headless (clusterIP None) services are not proxied' };
  }
  const clusterIPs: IP[] = [];
  for (const r of rawIPs.slice(0, 2)) {
    const ip = parseIP(str(r) ?? '');
    if (!ip.ok) return invalid('invalid-ip', `clusterIP ${ip.error}`);
    if (clusterIPs.some((c) => familyOf(c) === familyOf(ip.value))) return invalid('invalid-ip', 'clusterIPs has two addresses of one family');
    clusterIPs.push(ip.value);
  }

  const ports: ServicePort[] = [];
  const rawPorts = arr(spec.ports);
  if (rawPorts.length === 0) return invalid('invalid-port', 'spec.ports is empty');
  for (const rp of rawPorts) {
    const p = obj(rp);
    const name = str(p.name) ?? '';
    if (name !== '' && !isDnsLabel(name)) return invalid('invalid-name', `port name ${printable(name)} is not a valid DNS-1123 label`);
    const protocol = parseProtocol(p.protocol);
    if (!protocol.ok) return invalid('invalid-protocol', `port ${printable(name)}: ${protocol.error}`);
    const port = parsePort(p.port, 'port');
    if (!port.ok) return invalid('invalid-port', `port ${printable(name)}: ${port.error}`);
    let nodePort: Port | undefined;
    if (p.nodePort !== undefined && p.nodePort !== 0 && type !== 'ClusterIP') {
      const np = parsePort(p.nodePort, 'nodePort');
      if (!np.ok) return invalid('invalid-port', `port ${printable(name)}: ${np.error}`);
      nodePort = np.value;
    }
    let targetPort: Port | string | undefined;
    if (typeof p.targetPort === 'string') targetPort = p.targetPort;
    else if (p.targetPort !== undefined) {
      const tp = parsePort(p.targetPort, 'targetPort');
      if (!tp.ok) return invalid('invalid-port', `port ${printable(name)}: ${tp.error}`);
      targetPort = tp.value;
    }
    const dup = ports.find((q) => (q.port === port.value && q.protocol === protocol.value) || q.name === name);
    if (dup) {
      return invalid('duplicate-port', dup.name === name ? `port name ${printable(name)} is used twice` : `port ${port.value}/${protocol.value.toUpperCase()} is listed twice`);
    }
    ports.push({ name, protocol: protocol.value, port: port.value, targetPort, nodePort });
  }

  const externalIPs: IP[] = [];
  for (const r of arr(spec.externalIPs)) {
    const ip = parseIP(str(r) ?? '');
    if (!ip.ok) return invalid('invalid-ip', `externalIPs: ${ip.error}`);
    if (!externalIPs.includes(ip.value)) externalIPs.push(ip.value);
  }

  const loadBalancerIPs: IP[] = [];
  if (type === 'LoadBalancer') {
    for (const ri of arr(obj(obj(obj(o.status).loadBalancer)).ingress)) {
      const ing = obj(ri);
      // ipMode Proxy: the load balancer proxies and sends traffic to the nodes itself.
      if (ing.ipMode === 'Proxy' || ing.ip === undefined) continue;
      const ip = parseIP(str(ing.ip) ?? '');
      if (!ip.ok) return invalid('invalid-ip', `loadBalancer ingress: ${ip.error}`);
      if (!loadBalancerIPs.includes(ip.value)) loadBalancerIPs.push(ip.value);
    }
  }
  const loadBalancerSourceRanges: Cidr[] = [];
  for (const r of arr(spec.loadBalancerSourceRanges)) {
    // kube-proxy trims the spaces "a, b" style lists leave behind.
    const c = parseCidr(str(r) ?? '');
    if (!c.ok) return invalid('invalid-cidr', `loadBalancerSourceRanges: ${c.error}`);
    loadBalancerSourceRanges.push(c.value);
  }

  const etp = policy(spec.externalTrafficPolicy, 'externalTrafficPolicy');
  if (!etp.ok) return invalid('invalid-policy', etp.error);
  const itp = policy(spec.internalTrafficPolicy, 'internalTrafficPolicy');
  if (!itp.ok) return invalid('invalid-policy', itp.error);

  let healthCheckNodePort: Port | undefined;
  if (spec.healthCheckNodePort !== undefined && spec.healthCheckNodePort !== 0) {
    const h = parsePort(spec.healthCheckNodePort, 'healthCheckNodePort');
    if (!h.ok) return invalid('invalid-port', h.error);
    healthCheckNodePort = h.value;
  }

  let sessionAffinity: SessionAffinity = { kind: 'None' };
  if (spec.sessionAffinity === 'ClientIP') {
    const t = obj(obj(spec.sessionAffinityConfig).clientIP).timeoutSeconds;
    if (t !== undefined && (typeof t !== 'number' || !Number.isInteger(t) || t < 1 || t > 86400)) {
      return invalid('invalid-affinity', `sessionAffinityConfig.clientIP.timeoutSeconds ${printable(t)} is not in 1-86400`);
    }
    sessionAffinity = { kind: 'ClientIP', timeoutSeconds: (t as number | undefined) ?? DEFAULT_AFFINITY_TIMEOUT };
  } else if (spec.sessionAffinity !== undefined && spec.sessionAffinity !== 'None') {
    return invalid('invalid-affinity', `sessionAffinity ${printable(spec.sessionAffinity)} is not None or ClientIP`);
  }

  return {
    kind: 'service',
    service: {
      ref, type, clusterIPs, ports, externalIPs, loadBalancerIPs, loadBalancerSourceRanges,
      externalTrafficPolicy: etp.value, internalTrafficPolicy: itp.value, healthCheckNodePort,
      sessionAffinity, trafficDistribution: str(spec.trafficDistribution),
    },
  };
}

function policy(v: unknown, field: string): Result<TrafficPolicy, string> {
  if (v === undefined || v === 'Cluster') return ok('Cluster');
  if (v === 'Local') return ok('Local');
  return err(`${field} ${printable(v)} is not Cluster or Local`);
}

// Builders for Kubernetes objects as the API serves them, and a one-call compile + trace.
import { buildModel } from '../../src/model/build-model.js';
import { compile } from '../../src/compile/compile.js';
import { familyOf, parseCidr, parseIP, type IP, type IPFamily } from '../../src/model/ip.js';
import { type ProxyConfig, ipFamiliesInUse, ipFamiliesOf } from '../../src/model/config.js';
import type { Ruleset } from '../../src/ir/types.js';
import { fmtBackend } from '../../src/ir/types.js';
import { trace } from '../../src/trace/trace.js';
import type { Protocol } from '../../src/model/types.js';
import { must } from './must.js';

export interface PortSpec { name?: string; port: number; protocol?: 'TCP' | 'UDP' | 'SCTP'; targetPort?: number | string; nodePort?: number }

export function service(ns: string, name: string, spec: Record<string, unknown>, status?: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Service', metadata: { namespace: ns, name }, spec, ...(status ? { status } : {}) };
}

export interface EndpointSpec { ip: string; node?: string; ready?: boolean; serving?: boolean; terminating?: boolean; zone?: string; forZones?: string[]; forNodes?: string[] }

export function slice(ns: string, svcName: string, sliceName: string, ports: PortSpec[], endpoints: EndpointSpec[], addressType: 'IPv4' | 'IPv6' = 'IPv4'): Record<string, unknown> {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { namespace: ns, name: sliceName, labels: { 'kubernetes.io/service-name': svcName } },
    addressType,
    ports: ports.map((p) => ({ name: p.name ?? '', port: p.port, protocol: p.protocol ?? 'TCP' })),
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      ...(e.node ? { nodeName: e.node } : {}),
      ...(e.zone ? { zone: e.zone } : {}),
      conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false },
      ...(e.forZones || e.forNodes ? { hints: { ...(e.forZones ? { forZones: e.forZones.map((name) => ({ name })) } : {}), ...(e.forNodes ? { forNodes: e.forNodes.map((name) => ({ name })) } : {}) } } : {}),
    })),
  };
}


export interface Env {
  nodeName?: string;
  nodeIPs?: string[];
  clusterCIDRs?: string[];
  serviceCIDRs?: string[];
  nodePortAddresses?: 'primary' | string[];
  masqueradeAll?: boolean;
  nodeLabels?: Record<string, string>;
  /** the families compiled (the daemon's host check, or --ip-families); default: see config, compileObjects */
  ipFamilies?: readonly IPFamily[];
}

/** Without env.ipFamilies, the families of the node IPs (IPv4 when none): no objects to look at here. */
export function config(env: Env): ProxyConfig {
  const nodeIPs = (env.nodeIPs ?? []).map((s) => must(parseIP(s)));
  return {
    nodeName: env.nodeName ?? 'test-node',
    nodeIPs,
    nodeLabels: env.nodeLabels ?? {},
    clusterCIDRs: (env.clusterCIDRs ?? []).map((s) => must(parseCidr(s))),
    serviceCIDRs: (env.serviceCIDRs ?? []).map((s) => must(parseCidr(s))),
    nodePortAddresses: !env.nodePortAddresses || env.nodePortAddresses === 'primary' ? { kind: 'primary' } : { kind: 'cidrs', cidrs: env.nodePortAddresses.map((s) => must(parseCidr(s))) },
    masqueradeAll: env.masqueradeAll ?? false,
    proxyName: 'nftproxy',
    ipFamilies: ipFamiliesOf(env.ipFamilies ?? nodeIPs.map(familyOf)) ?? ['ipv4'],
  };
}

/** Without env.ipFamilies, the families dump and explain compile: the node IPs' and the services'. */
export function compileObjects(objects: unknown[], env: Env): { ruleset: Ruleset; cfg: ProxyConfig; diagnostics: ReturnType<typeof buildModel>['diagnostics'] } {
  const { model, diagnostics } = buildModel(objects.map((object) => ({ object })));
  const base = config(env);
  const cfg = env.ipFamilies ? base : { ...base, ipFamilies: ipFamiliesInUse(base.nodeIPs, model.services) };
  return { ruleset: compile(model, cfg), cfg, diagnostics };
}

/** The scenario tables' outcome notation: endpoints sorted, or DROP / REJECT / "" (not proxied). */
export type Expect = string[] | 'DROP' | 'REJECT' | '';

export function probe(rs: Ruleset, cfg: ProxyConfig, src: string, dst: string, proto: Protocol = 'tcp'): { got: Expect; masq: boolean | undefined } {
  const m = dst.match(/^\[?([^\]]+?)\]?:(\d+)$/);
  if (!m) throw new Error(`bad dst ${dst}`);
  const t = trace(rs, cfg.nodeIPs, { src: must(parseIP(src)) as IP, dst: must(parseIP(m[1]!)) as IP, proto, dport: Number(m[2]) });
  switch (t.outcome.kind) {
    case 'drop': return { got: 'DROP', masq: undefined };
    case 'reject': return { got: 'REJECT', masq: undefined };
    case 'not-proxied': return { got: '', masq: undefined };
    case 'dnat': {
      const eps = t.outcome.endpoints;
      const masqs = new Set(eps.map((e) => e.masquerade));
      if (masqs.size > 1) throw new Error(`masquerade differs between endpoints for ${src} -> ${dst}`);
      return { got: eps.map(fmtBackend).sort(), masq: eps[0]?.masquerade };
    }
  }
}

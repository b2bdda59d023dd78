// One ServicePort in one family -> its chains, its dispatch-map elements, and the
// decisions explain reports. Mirrors kube-proxy nftables mode's per-service logic.
import { type IP, familyOf, cidrContains } from '../model/ip.js';
import type { Endpoint, Service, ServicePort } from '../model/types.js';
import type { Backend, Chain, DnatKey, Rule, ServicePortInfo, SetElement, Verdict } from '../ir/types.js';
import { endpointId, objectName, servicePortId } from '../ir/names.js';
import { CHAIN, SET } from './base-chains.js';
import type { FamilyContext } from './family-context.js';
import { selectEndpoints } from './select-endpoints.js';
import { type GenerationOf, affinityKey, firstGeneration } from './affinity.js';

export interface ServicePortRules {
  readonly chains: Chain[];
  readonly elements: [setName: string, element: SetElement][];
  readonly hairpin: IP[];
  readonly info: ServicePortInfo;
  /** affinity endpoints (ids) and the generation each key was made with */
  readonly affinity: readonly (readonly [endpointId: string, generation: number])[];
}

const goto = (chain: string): Verdict => ({ kind: 'goto', chain });
const toBackend = (e: Endpoint): Backend => ({ addr: e.ip, port: e.port });

export function compileServicePort(ctx: FamilyContext, svc: Service, sp: ServicePort, endpoints: readonly Endpoint[], generationOf: GenerationOf = firstGeneration): ServicePortRules | undefined {
  const clusterIP = svc.clusterIPs.find((ip) => familyOf(ip) === ctx.ipFamily);
  if (clusterIP === undefined) return undefined;
  const ns = svc.ref.namespace, name = svc.ref.name, proto = sp.protocol, port = sp.port;
  const id = servicePortId(ns, name, proto, sp.name);
  const label = `${ns}/${name}:${sp.name}`;
  const extIPs = svc.externalIPs.filter((ip) => familyOf(ip) === ctx.ipFamily);
  const lbIPs = svc.loadBalancerIPs.filter((ip) => familyOf(ip) === ctx.ipFamily);
  const nodePort = sp.nodePort;
  const externallyAccessible = extIPs.length > 0 || lbIPs.length > 0 || nodePort !== undefined;
  const itpLocal = svc.internalTrafficPolicy === 'Local';
  const etpLocal = svc.externalTrafficPolicy === 'Local' && externallyAccessible;
  const sel = selectEndpoints(svc, endpoints, externallyAccessible, ctx.nodeName, ctx.zone);

  const clusterChain = objectName('service', id);
  const localChain = objectName('local', id);
  const extChain = objectName('external', id);
  const fwChain = objectName('firewall', id);

  const hasEndpoints = sel.hasEndpoints;
  const hasInternal = hasEndpoints && (!itpLocal || sel.local.length > 0);
  const hasExternal = hasEndpoints && (!etpLocal || sel.local.length > 0);
  const usesExternalChain = hasEndpoints && externallyAccessible;
  const internalChain = itpLocal ? localChain : clusterChain;
  const noEndpointVerdict = (has: boolean): Verdict | undefined =>
    !hasEndpoints ? goto(CHAIN.reject) : !has ? { kind: 'drop' } : undefined;

  const decisions: string[] = [];
  decisions.push(`internalTrafficPolicy ${svc.internalTrafficPolicy}: ClusterIP traffic uses ${itpLocal ? `this node's endpoints (${sel.local.length})` : `cluster-wide endpoints (${sel.cluster.length})`}`);
  if (externallyAccessible) {
    decisions.push(`externalTrafficPolicy ${svc.externalTrafficPolicy}: external traffic uses ${etpLocal ? `this node's endpoints (${sel.local.length}), client IP kept` : `cluster-wide endpoints (${sel.cluster.length}), masqueraded`}`);
  }
  decisions.push(...sel.notes);
  if (!hasEndpoints) decisions.push('no usable endpoint anywhere: every destination of this port is rejected');
  else {
    if (!hasInternal) decisions.push('internalTrafficPolicy Local and no local endpoint: ClusterIP traffic is dropped');
    if (externallyAccessible && !hasExternal) decisions.push('externalTrafficPolicy Local and no local endpoint: external traffic from outside is dropped');
  }

  const elements: [string, SetElement][] = [];
  const add = (set: string, key: (string | number)[], verdict?: Verdict): void => {
    elements.push([set, verdict ? { key, verdict, comment: label, owner: id } : { key }]);
  };

  // Dispatch: where each destination of this port goes first.
  add(SET.clusterIPs, [clusterIP]);
  if (hasInternal) add(SET.serviceIPs, [clusterIP, proto, port], goto(internalChain));
  else add(SET.noEndpointServices, [clusterIP, proto, port], noEndpointVerdict(false));
  for (const ip of [...extIPs, ...lbIPs]) {
    if (hasEndpoints) add(SET.serviceIPs, [ip, proto, port], goto(extChain));
    if (!hasExternal) add(SET.noEndpointServices, [ip, proto, port], noEndpointVerdict(false));
  }
  if (nodePort !== undefined) {
    if (hasEndpoints) add(SET.serviceNodePorts, [proto, nodePort], goto(extChain));
    if (!hasExternal) add(SET.noEndpointNodePorts, [proto, nodePort], noEndpointVerdict(false));
  }

  const chains: Chain[] = [];

  // Source ranges apply to LB IPs only; NodePorts are not filtered (as upstream).
  const ranges = svc.loadBalancerSourceRanges.filter((c) => c.family === ctx.ipFamily);
  if (lbIPs.length > 0 && ranges.length > 0) {
    // kube-proxy's node IP: loopback for a family the Node lists no address of, so the node is
    // let in only by a range that holds loopback (e.g. ::/0), as upstream.
    const primary = ctx.primaryIP;
    const allowFromNode = ranges.some((c) => cidrContains(c, primary));
    for (const ip of lbIPs) add(SET.firewallIPs, [ip, proto, port], goto(fwChain));
    chains.push({
      name: fwChain, owner: id,
      rules: [{ matches: [{ kind: 'addr', field: 'saddr', op: '!=', values: [...ranges, ...(allowFromNode ? lbIPs : [])] }], stmts: [{ kind: 'verdict', verdict: { kind: 'drop' } }], comment: 'source not in loadBalancerSourceRanges' }],
    });
    decisions.push(`loadBalancerSourceRanges ${ranges.map((r) => r.text).join(', ')} filter LB IP traffic (NodePorts are not filtered)`);
    const nodeIPText = ctx.nodeIPs.length > 0 ? `node IP ${primary}` : `node IP ${primary} (loopback: no ${ctx.ipFamily} node address)`;
    if (allowFromNode) decisions.push(`${nodeIPText} is inside the ranges: LB IPs are allowed as sources too`);
  }

  // Which packet keys reach each endpoint chain: the renderer indexes backends on them.
  const vipKeys = (ips: readonly IP[]): DnatKey[] => ips.map((addr) => ({ kind: 'vip', addr, proto, port }));
  const extKeys: DnatKey[] = [...vipKeys([...extIPs, ...lbIPs]), ...(nodePort !== undefined ? [{ kind: 'nodeport', proto, port: nodePort } as const] : [])];
  const clusterKeys: DnatKey[] = [...(hasInternal && !itpLocal ? vipKeys([clusterIP]) : []), ...(usesExternalChain ? extKeys : [])];
  const localKeys: DnatKey[] = [...(hasInternal && itpLocal ? vipKeys([clusterIP]) : []), ...(usesExternalChain && etpLocal && hasExternal ? extKeys : [])];

  const affinity = svc.sessionAffinity.kind === 'ClientIP' ? svc.sessionAffinity.timeoutSeconds : undefined;
  if (affinity !== undefined) decisions.push(`sessionAffinity ClientIP: a client sticks to its endpoint for ${affinity}s after its last new connection`);
  const endpointChains = new Map<string, Chain>();
  const affinityUsed = new Map<string, number>();
  const endpointRules = (backends: readonly Backend[], policy: 'cluster' | 'local', keys: DnatKey[]): Rule[] => {
    if (affinity === undefined) return [{ matches: [], stmts: [{ kind: 'dnat', proto, backends, policy, keys }] }];
    const names = backends.map((b) => {
      const eid = endpointId(id, b.addr, b.port);
      const chain = objectName('endpoint', eid);
      const generation = generationOf(eid);
      const key = affinityKey(eid, generation);
      if (!endpointChains.has(chain)) {
        affinityUsed.set(eid, generation);
        // Two rules: a full affinity set must not stop the DNAT (a failed update ends its rule).
        endpointChains.set(chain, { name: chain, owner: id, rules: [
          { matches: [], stmts: [{ kind: 'affinity-update', set: SET.affinity, key, timeoutSeconds: affinity }] },
          { matches: [], stmts: [{ kind: 'dnat', proto, backends: [b], policy, keys: [] }] },
        ] });
      }
      return { chain, key };
    });
    return [
      ...names.map(({ chain, key }): Rule => ({ matches: [{ kind: 'affinity', set: SET.affinity, key }], stmts: [{ kind: 'verdict', verdict: goto(chain) }] })),
      { matches: [], stmts: [{ kind: 'random-goto', chains: names.map((n) => n.chain) }] },
    ];
  };
  const clusterBackends = sel.cluster.map(toBackend);
  const localBackends = sel.local.map(toBackend);
  if (clusterKeys.length > 0) {
    chains.push({ name: clusterChain, owner: id, rules: endpointRules(clusterBackends, 'cluster', clusterKeys) });
  }
  if (localKeys.length > 0) {
    chains.push({ name: localChain, owner: id, rules: endpointRules(localBackends, 'local', localKeys) });
  }
  chains.push(...endpointChains.values());

  if (usesExternalChain) {
    const rules: Rule[] = [];
    if (!etpLocal) {
      rules.push({ matches: [], stmts: [{ kind: 'mark-masq' }], comment: 'externalTrafficPolicy Cluster: masquerade' });
    } else {
      if (ctx.podCIDRs.length > 0) rules.push({ matches: [{ kind: 'addr', field: 'saddr', op: '==', values: ctx.podCIDRs }], stmts: [{ kind: 'verdict', verdict: goto(clusterChain) }], comment: 'short-circuit pod traffic' });
      rules.push({ matches: [{ kind: 'fib-local', field: 'saddr' }], stmts: [{ kind: 'mark-masq' }], comment: 'masquerade local traffic' });
      rules.push({ matches: [{ kind: 'fib-local', field: 'saddr' }], stmts: [{ kind: 'verdict', verdict: goto(clusterChain) }], comment: 'short-circuit local traffic' });
    }
    if (hasExternal) rules.push({ matches: [], stmts: [{ kind: 'verdict', verdict: goto(etpLocal ? localChain : clusterChain) }] });
    chains.push({ name: extChain, owner: id, rules });
  }

  const hairpin = [...new Set([...clusterKeys.length > 0 ? clusterBackends : [], ...localKeys.length > 0 ? localBackends : []].map((b) => b.addr))];
  return {
    chains, elements, hairpin, affinity: [...affinityUsed],
    info: { id, family: ctx.family, service: `${ns}/${name}`, portName: sp.name, proto, port, decisions, clusterBackends, localBackends, affinityTimeout: affinity,
      vips: [clusterIP, ...extIPs, ...lbIPs], nodePort, servingEndpoints: [...new Set(endpoints.filter((e) => e.conditions.serving).map((e) => e.ip))].sort(),
      nodeEndpoints: [...new Set(endpoints.filter((e) => e.nodeName !== undefined && e.nodeName === ctx.nodeName).map((e) => e.ip))].sort(),
      noLocalEndpoints: { internal: itpLocal && hasEndpoints && sel.local.length === 0, external: etpLocal && hasEndpoints && sel.local.length === 0 },
      internalLocal: itpLocal },
  };
}

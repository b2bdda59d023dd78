// Upstream kube-proxy's nftables layout, generated from the same snapshot, in two shapes:
//
//  * "chains" (1.31-1.35, E2): a chain per service port and per endpoint. The service chain
//    picks an endpoint chain with `numgen random mod N vmap { i : goto endpoint-… }` (an
//    anonymous verdict map per service port); each endpoint chain marks hairpin traffic and
//    DNATs. Masquerade goes through the `mark-for-masquerade` helper chain.
//  * "numgen" (1.36+, E3): no endpoint chains (except for session affinity): the service
//    chain DNATs through an inline `dnat ip addr . port to numgen random mod N map { … }`
//    (an anonymous map per service port; plain `dnat to` for one endpoint); hairpin via the
//    `hairpin-connections` set; ClusterIP masquerade in the `services` chain.
//
// Bench fixture written from the published rule shapes (see /work/shared), not product code.
import { AFFINITY_TIMEOUT, CLUSTER_CIDR, NODE_IP, SERVICE_CIDR, type SnapEndpoint, type SnapPort, type SnapService, type Snapshot } from '../workload.js';
import { categorize, hash32, isExternal, portName, proto } from './common.js';
import { type DeltaEngine, type Layout, type NftObjs, NftDeltaEngine, type WriteStats, fullLines, nftBase, writeNftFull } from './layout.js';

type Era = 'E2' | 'E3';
const MARK = 'meta mark set meta mark | 0x00004000';

function portObjs(era: Era, s: SnapService, p: SnapPort, o: NftObjs): void {
  const pr = proto(p);
  const id = `${s.ns}/${s.name}/${pr}/${p.name}`;
  const h = hash32(id, 8);
  const svcChain = `service-${h}-${id}`, localChain = `local-${h}-${id}`, extChain = `external-${h}-${id}`;
  const cat = categorize(s);
  const epId = (e: SnapEndpoint): string => `${id}__${e.ip}/${p.targetPort}`;
  const epChain = (e: SnapEndpoint): string => `endpoint-${hash32(epId(e), 8)}-${epId(e)}`;
  const affSet = (e: SnapEndpoint): string => `affinity-${hash32(epId(e), 8)}-${epId(e)}`;
  const comment = `"${portName(s, p)}"`;
  const hasExternalEndpoints = !cat.etpLocal || cat.local.length > 0;
  const usesLocal = cat.etpLocal && cat.local.length > 0;

  // dispatch elements
  o.elements.push({ set: 'service-ips', key: `${s.clusterIP} . ${pr} . ${p.port}`, text: `${s.clusterIP} . ${pr} . ${p.port} : goto ${svcChain}` });
  if (s.lbIP) {
    const k = `${s.lbIP} . ${pr} . ${p.port}`;
    o.elements.push({ set: 'service-ips', key: k, text: `${k} : goto ${extChain}` });
    if (!hasExternalEndpoints) o.elements.push({ set: 'no-endpoint-services', key: k, text: `${k} comment ${comment} : drop` });
  }
  if (p.nodePort !== undefined) {
    const k = `${pr} . ${p.nodePort}`;
    o.elements.push({ set: 'service-nodeports', key: k, text: `${k} : goto ${extChain}` });
    if (!hasExternalEndpoints) o.elements.push({ set: 'no-endpoint-nodeports', key: k, text: `${k} comment ${comment} : drop` });
  }
  if (era === 'E3') for (const e of cat.cluster) {
    const k = `${e.ip} . ${e.ip} . ${pr} . ${p.targetPort}`;
    o.elements.push({ set: 'hairpin-connections', key: k, text: k });
  }

  const endpointChains = era === 'E2' || s.affinity;
  // the rules that pick an endpoint among `eps`
  const pick = (eps: readonly SnapEndpoint[]): string[] => {
    const rules: string[] = [];
    if (s.affinity) for (const e of eps) rules.push(`ip saddr @${affSet(e)} goto ${epChain(e)}`);
    if (endpointChains) rules.push(`numgen random mod ${eps.length} vmap { ${eps.map((e, i) => `${i} : goto ${epChain(e)}`).join(' , ')} }`);
    else if (eps.length === 1) rules.push(`meta l4proto ${pr} dnat to ${eps[0]!.ip}:${p.targetPort}`);
    else rules.push(`meta l4proto ${pr} dnat ip addr . port to numgen random mod ${eps.length} map { ${eps.map((e, i) => `${i} : ${e.ip} . ${p.targetPort}`).join(' , ')} }`);
    return rules;
  };

  const svcRules: string[] = [];
  if (era === 'E2') svcRules.push(`ip daddr ${s.clusterIP} ${pr} dport ${p.port} ip saddr != ${CLUSTER_CIDR} jump mark-for-masquerade`);
  svcRules.push(...pick(cat.cluster));
  o.chains.push({ name: svcChain, rules: svcRules });
  if (usesLocal) o.chains.push({ name: localChain, rules: pick(cat.local) });
  if (isExternal(s)) {
    const mark = era === 'E2' ? 'jump mark-for-masquerade' : MARK;
    const rules: string[] = [];
    if (!cat.etpLocal) rules.push(mark, `goto ${svcChain}`);
    else {
      rules.push(`ip saddr ${CLUSTER_CIDR} goto ${svcChain} comment "short-circuit pod traffic"`);
      rules.push(`fib saddr type local ${mark} comment "masquerade local traffic"`);
      rules.push(`fib saddr type local goto ${svcChain} comment "short-circuit local traffic"`);
      if (hasExternalEndpoints) rules.push(`goto ${localChain}`);
    }
    o.chains.push({ name: extChain, rules });
  }
  if (endpointChains) {
    for (const e of cat.cluster) {
      const rules: string[] = [];
      if (era === 'E2') rules.push(`ip saddr ${e.ip} jump mark-for-masquerade`);
      if (s.affinity) {
        o.sets.push({ name: affSet(e), spec: `type ipv4_addr ; flags dynamic,timeout ; timeout ${AFFINITY_TIMEOUT}s ;` });
        rules.push(`update @${affSet(e)} { ip saddr }`);
      }
      rules.push(`meta l4proto ${pr} dnat to ${e.ip}:${p.targetPort}`);
      o.chains.push({ name: epChain(e), rules });
    }
  }
}

function svcObjs(era: Era, s: SnapService): NftObjs {
  const o: NftObjs = { sets: [], chains: [], elements: [{ set: 'cluster-ips', key: s.clusterIP, text: s.clusterIP }] };
  for (const p of s.ports) portObjs(era, s, p, o);
  return o;
}

function nftLayout(era: Era): Layout {
  const objs = (s: SnapService): NftObjs => svcObjs(era, s);
  return {
    id: era === 'E2' ? 'kp-nft-chains' : 'kp-nft-numgen',
    label: era === 'E2' ? 'kube-proxy nft, chain per svc+endpoint (≤1.35)' : 'kube-proxy nft, inline numgen map (1.36+)',
    loadCmd: (file) => ['nft', '-f', file],
    deltaCmd: () => ['nft', '-f', '-'],
    writeFull: (snap: Snapshot, file: string): Promise<WriteStats> => writeNftFull(file, nftBase(era, { clusterCIDR: CLUSTER_CIDR, serviceCIDR: SERVICE_CIDR, nodeIP: NODE_IP }), snap, objs),
    deltas: (snap: Snapshot): DeltaEngine => new NftDeltaEngine(snap, objs),
    sample: (s) => fullLines(objs(s)),
  };
}

export const kpNftChains = nftLayout('E2');
export const kpNftNumgen = nftLayout('E3');

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
//  * "shared" (kubernetes PR #140362, proposed, not merged): for regular ClusterIP services
//    (no NodePort/LoadBalancer, no session affinity) no service chain and no anonymous map:
//    one named map per protocol, `endpoints-tcp` / `-udp` / `-sctp`, keyed
//    `ip daddr . <proto> dport . numgen random mod N` -> `ip daddr . <proto> dport`, and one
//    chain per endpoint count, `lb-N-endpoints`, whose three rules (one per protocol) DNAT
//    through those maps; `service-ips` sends the ClusterIP to `goto lb-N-endpoints`. Every
//    other service keeps the 1.36+ shape. Modelled from the PR's test diff and review thread
//    (the map declarations pin the protocol: a generic `th dport` key was refused in a later
//    transaction, says the PR); `lb-N-endpoints` chains exist here for every count 1..M+1
//    from the start (the PR adds them as counts appear: a few chains either way).
//
// Bench fixtures written from the published rule shapes (see /work/shared), not product code.
import { AFFINITY_TIMEOUT, CLUSTER_CIDR, NODE_IP, SERVICE_CIDR, type SnapEndpoint, type SnapPort, type SnapService, type Snapshot } from '../workload.js';
import { categorize, hash32, isExternal, portName, proto } from './common.js';
import { type Census, type DeltaEngine, type Layout, type NftObjs, NftDeltaEngine, T, type WriteStats, fullLines, nftBase, writeNftFull } from './layout.js';

type Era = 'E2' | 'E3' | 'E3-shared';
const SHARED_PROTOS = ['tcp', 'udp', 'sctp'] as const;
const lbChain = (n: number): string => `lb-${n}-endpoints`;
const MARK = 'meta mark set meta mark | 0x00004000';

/**
 * Which of upstream's features the 1.36+ (E3) shape carries, to find what its load cost comes
 * from (the reconcile phase): NodePort/LoadBalancer handling (external and local chains, their
 * dispatch and no-endpoint elements), session affinity (endpoint chains and a dynamic set per
 * endpoint), hairpin elements. All off = the minimal shape: a chain per service port with one
 * `dnat … numgen random mod N map { … }` rule, ClusterIP handling only.
 */
export interface Features { readonly external: boolean; readonly affinity: boolean; readonly hairpin: boolean }
export const ALL_FEATURES: Features = { external: true, affinity: true, hairpin: true };
export const NO_FEATURES: Features = { external: false, affinity: false, hairpin: false };

function portObjs(era: Era, s0: SnapService, p0: SnapPort, o: NftObjs, f: Features): void {
  // a feature turned off: the service is handled as if it did not use it
  const s: SnapService = { ...s0, ...(f.external ? {} : { type: 'ClusterIP', lbIP: undefined, etpLocal: false }), ...(f.affinity ? {} : { affinity: false }) };
  const p: SnapPort = f.external ? p0 : { ...p0, nodePort: undefined };
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

  // the shared-map layout: a regular ClusterIP service has no chain and no anonymous map of its own
  const sharedMaps = era === 'E3-shared' && !isExternal(s) && !s.affinity && cat.cluster.length > 0;

  // dispatch elements
  o.elements.push({ set: 'service-ips', key: `${s.clusterIP} . ${pr} . ${p.port}`, text: `${s.clusterIP} . ${pr} . ${p.port} : goto ${sharedMaps ? lbChain(cat.cluster.length) : svcChain}` });
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
  if (era !== 'E2' && f.hairpin) for (const e of cat.cluster) {
    const k = `${e.ip} . ${e.ip} . ${pr} . ${p.targetPort}`;
    o.elements.push({ set: 'hairpin-connections', key: k, text: k });
  }
  if (sharedMaps) {
    cat.cluster.forEach((e, i) => {
      const key = `${s.clusterIP} . ${p.port} . ${i}`;
      o.elements.push({ set: `endpoints-${pr}`, key, text: `${key} : ${e.ip} . ${p.targetPort}` });
    });
    return;
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

/** The shared-map layout's fixed part: the per-protocol endpoint maps and one chain per endpoint count. */
function sharedBase(maxEndpoints: number): string[] {
  const L: string[] = [];
  for (const pr of SHARED_PROTOS) L.push(`add map ${T} endpoints-${pr} { typeof ip daddr . ${pr} dport . numgen random mod 2 : ip daddr . ${pr} dport ; }`);
  for (let n = 1; n <= maxEndpoints + 1; n++) {
    L.push(`add chain ${T} ${lbChain(n)}`, `flush chain ${T} ${lbChain(n)}`);
    for (const pr of SHARED_PROTOS) L.push(`add rule ${T} ${lbChain(n)} meta l4proto ${pr} dnat ip addr . port to ip daddr . ${pr} dport . numgen random mod ${n} map @endpoints-${pr}`);
  }
  return L;
}

function svcObjs(era: Era, s: SnapService, f: Features): NftObjs {
  const o: NftObjs = { sets: [], chains: [], elements: [{ set: 'cluster-ips', key: s.clusterIP, text: s.clusterIP }] };
  for (const p of s.ports) portObjs(era, s, p, o, f);
  return o;
}

export function nftLayout(era: Era, f: Features = ALL_FEATURES, name?: { id: string; label: string }): Layout {
  const objs = (s: SnapService): NftObjs => svcObjs(era, s, f);
  return {
    id: name?.id ?? (era === 'E2' ? 'kp-nft-chains' : era === 'E3' ? 'kp-nft-numgen' : 'kp-nft-shared'),
    label: name?.label ?? (era === 'E2' ? 'kube-proxy nft, chain per svc+endpoint (≤1.35)' : era === 'E3' ? 'kube-proxy nft, inline numgen map (1.36+)' : 'kube-proxy nft, shared endpoint maps (PR #140362)'),
    loadCmd: (file) => ['nft', '-f', file],
    deltaCmd: () => ['nft', '-f', '-'],
    writeFull: (snap: Snapshot, file: string): Promise<WriteStats> => {
      const base = nftBase(era === 'E2' ? 'E2' : 'E3', { clusterCIDR: CLUSTER_CIDR, serviceCIDR: SERVICE_CIDR, nodeIP: NODE_IP });
      if (era === 'E3-shared') base.push(...sharedBase(snap.services.reduce((a, x) => Math.max(a, x.endpoints.length), 0)));
      return writeNftFull(file, base, snap, objs);
    },
    deltas: (snap: Snapshot): DeltaEngine => new NftDeltaEngine(snap, objs),
    sample: (s) => fullLines(objs(s)),
    census: (snap: Snapshot): Census => {
      const c: Census = { chains: 0, rules: 0, anonMaps: 0, namedSets: 0, elements: 0 };
      for (const sv of snap.services) {
        const o = objs(sv);
        c.chains += o.chains.length;
        c.namedSets += o.sets.length;
        c.elements += o.elements.length;
        for (const ch of o.chains) for (const r of ch.rules) { c.rules++; if (/ (v?map) \{ /.test(r)) c.anonMaps++; }
      }
      return c;
    },
  };
}

export const kpNftChains = nftLayout('E2');
export const kpNftNumgen = nftLayout('E3');
export const kpNftShared = nftLayout('E3-shared');
/** The minimal 1.36+ shape (an independent model measured ~20× faster than kp-nft-numgen at 10k×10). */
export const kpNftNumgenMin = nftLayout('E3', NO_FEATURES, { id: 'kp-nft-numgen-min', label: 'kube-proxy nft 1.36+, minimal: ClusterIP only, no affinity/hairpin' });

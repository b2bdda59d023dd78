// Which endpoints serve which traffic, exactly as kube-proxy's CategorizeEndpoints:
// ready endpoints first; serving+terminating ones only when no ready one is left (for
// cluster-wide and node-local traffic separately); topology hints only when every ready
// endpoint carries one and one matches this node; Local policies ignore topology.
import type { Endpoint, Service } from '../model/types.js';

export type TopologyMode = 'none' | 'PreferSameZone' | 'PreferSameNode';

export interface Selection {
  readonly cluster: readonly Endpoint[];
  readonly local: readonly Endpoint[];
  /** any usable endpoint anywhere: decides REJECT (none) versus DROP (none local) */
  readonly hasEndpoints: boolean;
  readonly topology: TopologyMode;
  readonly clusterFallback: boolean;
  readonly localFallback: boolean;
  readonly notes: readonly string[];
}

export function selectEndpoints(
  svc: Service,
  endpoints: readonly Endpoint[],
  externallyReachable: boolean,
  nodeName: string,
  zone: string | undefined,
): Selection {
  const itpLocal = svc.internalTrafficPolicy === 'Local';
  const etpLocal = svc.externalTrafficPolicy === 'Local' && externallyReachable;
  // Even with eTP=Local, pods and the node short-circuit to cluster endpoints.
  const usesCluster = !itpLocal || externallyReachable;
  const usesLocal = itpLocal || etpLocal;
  const notes: string[] = [];
  const isLocal = (e: Endpoint): boolean => e.nodeName !== undefined && e.nodeName === nodeName;
  const servingTerminating = (e: Endpoint): boolean => e.conditions.serving && e.conditions.terminating;

  let topology: TopologyMode = 'none';
  let cluster: Endpoint[] = [];
  let clusterFallback = false;
  let hasEndpoints = false;
  if (usesCluster) {
    topology = topologyMode(endpoints, nodeName, zone, notes);
    cluster = endpoints.filter((e) => e.conditions.ready && availableForTopology(e, topology, nodeName, zone));
    if (cluster.length === 0) {
      cluster = endpoints.filter(servingTerminating);
      clusterFallback = cluster.length > 0;
      if (clusterFallback) notes.push('no ready endpoint anywhere: falling back to serving+terminating endpoints');
    }
    hasEndpoints = cluster.length > 0;
  }

  let local: Endpoint[] = [];
  let localFallback = false;
  if (usesLocal) {
    let localReady = false, localST = false;
    for (const e of endpoints) {
      if (e.conditions.ready) {
        hasEndpoints = true;
        if (isLocal(e)) localReady = true;
      } else if (servingTerminating(e)) {
        hasEndpoints = true;
        if (isLocal(e)) localST = true;
      }
    }
    if (localReady) local = endpoints.filter((e) => isLocal(e) && e.conditions.ready);
    else if (localST) {
      local = endpoints.filter((e) => isLocal(e) && servingTerminating(e));
      localFallback = true;
      notes.push('no ready local endpoint: falling back to local serving+terminating endpoints');
    }
    notes.push('Local traffic policy ignores topology hints');
  }
  return { cluster, local, hasEndpoints, topology, clusterFallback, localFallback, notes };
}

function topologyMode(endpoints: readonly Endpoint[], nodeName: string, zone: string | undefined, notes: string[]): TopologyMode {
  let allNode = true, forNode = false, allZone = true, forZone = false, anyReady = false;
  for (const e of endpoints) {
    if (!e.conditions.ready) continue;
    anyReady = true;
    if (!e.hintsForNodes || e.hintsForNodes.length === 0) allNode = false;
    else if (e.hintsForNodes.includes(nodeName)) forNode = true;
    if (!e.hintsForZones || e.hintsForZones.length === 0) allZone = false;
    else if (zone !== undefined && e.hintsForZones.includes(zone)) forZone = true;
  }
  if (!anyReady) return 'none';
  if (allNode) {
    if (forNode) { notes.push(`topology: every ready endpoint has node hints and one is for node ${nodeName}: PreferSameNode`); return 'PreferSameNode'; }
    notes.push(`topology: node hints ignored, none is for node ${nodeName}`);
  }
  if (allZone) {
    if (forZone) { notes.push(`topology: every ready endpoint has zone hints and one is for zone ${zone}: PreferSameZone`); return 'PreferSameZone'; }
    notes.push(zone === undefined ? 'topology: zone hints ignored, the node has no zone label' : `topology: zone hints ignored, none is for zone ${zone}`);
  }
  return 'none';
}

function availableForTopology(e: Endpoint, mode: TopologyMode, nodeName: string, zone: string | undefined): boolean {
  switch (mode) {
    case 'none': return true;
    case 'PreferSameNode': return e.hintsForNodes?.includes(nodeName) ?? false;
    case 'PreferSameZone': return zone !== undefined && (e.hintsForZones?.includes(zone) ?? false);
  }
}

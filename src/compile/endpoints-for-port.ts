// The endpoints of one ServicePort in one family: merged from every slice of the service,
// matched by port name and protocol, deduplicated by address and port.
import type { IPFamily } from '../model/ip.js';
import type { Endpoint, EndpointSlice, ServicePort } from '../model/types.js';

export function endpointsForPort(slices: readonly EndpointSlice[], family: IPFamily, sp: ServicePort, nodeName: string): Endpoint[] {
  const all: Endpoint[] = [];
  for (const slice of slices) {
    if (slice.family !== family) continue;
    // Each slice names its own number for the port: this is how a named targetPort
    // resolves differently for pods that expose it on different numbers.
    const sp2 = slice.ports.find((p) => p.name === sp.name && p.protocol === sp.protocol);
    if (!sp2) continue;
    const port = sp2.port;
    for (const e of slice.endpoints) {
      all.push({ ip: e.ip, port, conditions: e.conditions, nodeName: e.nodeName, zone: e.zone, hintsForZones: e.hintsForZones, hintsForNodes: e.hintsForNodes });
    }
  }
  // Sorted by address and port; the sort is stable, so copies of one address and port stay in
  // slice order. Of those the first is kept, but a local copy wins (as kube-proxy).
  all.sort(compareEndpoints);
  const out: Endpoint[] = [];
  for (let i = 0; i < all.length;) {
    let keep = all[i]!;
    let j = i + 1;
    for (; j < all.length && compareEndpoints(all[j]!, keep) === 0; j++) {
      if (all[j]!.nodeName === nodeName && keep.nodeName !== nodeName) keep = all[j]!;
    }
    out.push(keep);
    i = j;
  }
  return out;
}

function compareEndpoints(a: Endpoint, b: Endpoint): number {
  if (a.ip !== b.ip) return a.ip < b.ip ? -1 : 1;
  return a.port - b.port;
}

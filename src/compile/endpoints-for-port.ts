// The endpoints of one ServicePort in one family: merged from every slice of the service,
// matched by port name and protocol, deduplicated by address and port.
import type { IPFamily } from '../model/ip.js';
import type { Endpoint, EndpointSlice, ServicePort } from '../model/types.js';

export function endpointsForPort(slices: readonly EndpointSlice[], family: IPFamily, sp: ServicePort, nodeName: string): Endpoint[] {
  const byKey = new Map<string, Endpoint>();
  for (const slice of slices) {
    if (slice.family !== family) continue;
    // Each slice names its own number for the port: this is how a named targetPort
    // resolves differently for pods that expose it on different numbers.
    const sp2 = slice.ports.find((p) => p.name === sp.name && p.protocol === sp.protocol);
    if (!sp2) continue;
    for (const e of slice.endpoints) {
      const key = `${e.ip}/${sp2.port}`;
      const prev = byKey.get(key);
      // Duplicates across slices: keep the first, but a local copy wins (as kube-proxy).
      if (prev && !(e.nodeName === nodeName && prev.nodeName !== nodeName)) continue;
      byKey.set(key, { ...e, port: sp2.port });
    }
  }
  return [...byKey.values()].sort(compareEndpoints);
}

function compareEndpoints(a: Endpoint, b: Endpoint): number {
  if (a.ip !== b.ip) return a.ip < b.ip ? -1 : 1;
  return a.port - b.port;
}

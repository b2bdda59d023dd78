// Shared by the peer layout generators (bench fixtures written from the public descriptions
// of kube-proxy's behaviour, not product code): hashed object names and endpoint categories.
import { createHash } from 'node:crypto';
import { NODE_NAME, type SnapEndpoint, type SnapPort, type SnapService } from '../workload.js';

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** The first `len` characters of base32(sha256(s)), as kube-proxy names its chains. */
export function hash32(s: string, len: number): string {
  const d = createHash('sha256').update(s).digest();
  let out = '', bits = 0, value = 0;
  for (const byte of d) {
    value = ((value << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5 && out.length < len) { out += B32[(value >>> (bits - 5)) & 31]; bits -= 5; }
    if (out.length >= len) break;
  }
  return out;
}

export const proto = (p: SnapPort): 'tcp' | 'udp' => (p.protocol === 'TCP' ? 'tcp' : 'udp');

/** "ns/svc:port", kube-proxy's ServicePortName string */
export const portName = (s: SnapService, p: SnapPort): string => `${s.ns}/${s.name}:${p.name}`;

export interface Categorized {
  /** endpoints for Cluster traffic policy (every generated endpoint is ready) */
  readonly cluster: readonly SnapEndpoint[];
  /** this node's endpoints, for externalTrafficPolicy Local */
  readonly local: readonly SnapEndpoint[];
  /** the service's external traffic uses Local policy */
  readonly etpLocal: boolean;
}

export function categorize(s: SnapService): Categorized {
  return { cluster: s.endpoints, local: s.endpoints.filter((e) => e.node === NODE_NAME), etpLocal: isExternal(s) && s.etpLocal };
}

export function isExternal(s: SnapService): boolean {
  return s.type !== 'ClusterIP';
}

export const svcKey = (s: SnapService): string => `${s.ns}/${s.name}`;

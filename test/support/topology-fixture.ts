// The topology-hint fixture both datapath suites use (features 7, nft-only and with BPF on):
// nine services whose endpoints carry zone and node hints, on nodes node2..node5 and
// test-node. The suites' rows say where each one's traffic must land.
import { service, slice } from './builders.js';

export const A1 = '10.180.7.1', A2 = '10.180.7.2', B1 = '10.180.7.3', X = '10.180.7.4', TL = '10.180.7.5';
type Hinted = { ip: string; node: string; ready?: boolean; forZones?: string[]; forNodes?: string[] };
const topoService = (n: number, eps: Hinted[], extra: Record<string, unknown> = {}) => [
  service('ns7', `t${n}`, { clusterIP: `172.30.7.${n}`, ports: [{ name: 'p80', port: 80, protocol: 'TCP', ...(extra.type ? { nodePort: 3000 + n } : {}) }], ...extra }),
  slice('ns7', `t${n}`, `t${n}-a`, [{ name: 'p80', port: 80 }], eps.map((e) => ({ ...e, serving: e.ready ?? true }))),
];
const zoneA = ['zone-a'], zoneB = ['zone-b'], zoneC = ['zone-c'];
export const topoObjects: unknown[] = [
  ...topoService(1, [{ ip: A1, node: 'node2', forZones: zoneA }, { ip: A2, node: 'node3', forZones: zoneA }, { ip: B1, node: 'node4', forZones: zoneB }], { type: 'NodePort' }),
  ...topoService(2, [{ ip: A1, node: 'node2', forZones: zoneA }, { ip: A2, node: 'node3' }, { ip: B1, node: 'node4', forZones: zoneB }]),
  ...topoService(3, [{ ip: A1, node: 'node2', forZones: zoneA }, { ip: B1, node: 'node4', forZones: zoneB }, { ip: X, node: 'node5', ready: false }]),
  ...topoService(4, [{ ip: A1, node: 'node2', forZones: zoneB }, { ip: B1, node: 'node4', forZones: zoneC }]),
  ...topoService(5, [{ ip: TL, node: 'test-node', forZones: zoneB }, { ip: A1, node: 'node2', forZones: zoneA }], { internalTrafficPolicy: 'Local' }),
  ...topoService(6, [{ ip: TL, node: 'test-node', forZones: zoneB }, { ip: A1, node: 'node2', forZones: zoneA }], { type: 'NodePort', externalTrafficPolicy: 'Local' }),
  ...topoService(7, [{ ip: TL, node: 'test-node', forNodes: ['test-node'], forZones: zoneA }, { ip: A1, node: 'node2', forNodes: ['node2'], forZones: zoneA }]),
  ...topoService(8, [{ ip: A1, node: 'node2', forNodes: ['node2'], forZones: zoneA }, { ip: B1, node: 'node4', forNodes: ['node4'], forZones: zoneB }]),
  ...topoService(9, [{ ip: TL, node: 'test-node', forNodes: ['test-node'], forZones: zoneA }, { ip: A1, node: 'node2', forZones: zoneA }, { ip: B1, node: 'node4', forZones: zoneB }]),
];

// The suite's addresses: every test's node, pods, services and clients come from one of the
// two plans below, each fixed by something the tests are checked against, so a test never
// invents a third.
//
// LAB: ../shared/reference-scenarios.md and the datapath labs built on it (test/lab/). The
//   node is test-node at 192.168.0.2 / 2001:db8::1, pods are in 10.0.0.0/8 / fd00:10::/64 (lab
//   pods at 10.180.<section>.<n>), services in 172.30.0.0/16 / fd00:10:96::/112, and the
//   clients outside the cluster at 203.0.113.2 / 2600:5200::1. NodePorts only on the two node
//   IPs (other addresses a lab puts on the node are externalIPs routed to it).
// CLUSTER: a kubeadm cluster's defaults, as examples/ and deploy/ spell them (the CLI tests
//   and the goldens read examples/): node-a at 192.168.0.2 / 2001:db8::2, pods in
//   10.244.0.0/16 / fd00:10:244::/64, services in 10.96.0.0/12 / fd00:10:96::/112.
import type { Env } from './builders.js';

export const NODE_NAME = 'test-node';
export const NODE = '192.168.0.2', NODE6 = '2001:db8::1';
/** a pod (inside the cluster CIDR), and a client outside the cluster */
export const POD = '10.0.0.2', POD6 = 'fd00:10::2';
export const EXT = '203.0.113.2', EXT6 = '2600:5200::1';
export const LAB_ENV: Env = {
  nodeName: NODE_NAME,
  nodeIPs: [NODE, NODE6],
  clusterCIDRs: ['10.0.0.0/8', 'fd00:10::/64'],
  serviceCIDRs: ['172.30.0.0/16', 'fd00:10:96::/112'],
  nodePortAddresses: [`${NODE}/32`, `${NODE6}/128`],
};

export const CLUSTER = {
  nodeName: 'node-a',
  node: '192.168.0.2', node6: '2001:db8::2',
  podCIDR: '10.244.0.0/16', podCIDR6: 'fd00:10:244::/64',
  serviceCIDR: '10.96.0.0/12', serviceCIDR6: 'fd00:10:96::/112',
} as const;
export const CLUSTER_ENV: Env = {
  nodeName: CLUSTER.nodeName,
  nodeIPs: [CLUSTER.node, CLUSTER.node6],
  clusterCIDRs: [CLUSTER.podCIDR, CLUSTER.podCIDR6],
  serviceCIDRs: [CLUSTER.serviceCIDR, CLUSTER.serviceCIDR6],
};

/** The same configuration as `nftproxy run` / `dump` / `explain` flags. */
export function envFlags(env: Env): string[] {
  if (env.nodeLabels && Object.keys(env.nodeLabels).length > 0) throw new Error('node labels come from the Node object, not from flags');
  const list = (flag: string, xs: readonly string[] | undefined): string[] => (xs && xs.length > 0 ? [flag, xs.join(',')] : []);
  return [
    ...(env.nodeName ? ['--node', env.nodeName] : []),
    ...(env.nodeIPs ?? []).flatMap((ip) => ['--node-ip', ip]),
    ...list('--cluster-cidr', env.clusterCIDRs),
    ...list('--service-cidr', env.serviceCIDRs),
    ...(env.nodePortAddresses === undefined ? [] : env.nodePortAddresses === 'primary' ? ['--nodeport-addresses', 'primary'] : list('--nodeport-addresses', env.nodePortAddresses)),
    ...(env.masqueradeAll ? ['--masquerade-all'] : []),
  ];
}

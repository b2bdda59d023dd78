// One data-plane lab: three namespaces joined by veth pairs (created inside the namespaces,
// never in the root one):
//
//   client (10.255.0.2, a pod on this node: inside the cluster CIDR, so ClusterIP traffic is
//   not masqueraded; 10.255.0.3 and .4 too, the sources of the BPF rows and of nftproxy/pod)  ──c0/n0──  node (10.255.0.1, 172.20.0.1, node IP 192.168.0.1 on lo;
//   forwards; holds the ruleset under test)  ──n1/p0──  pods (172.20.0.2; every endpoint
//   address of the measured services on lo; the backend server on :8080)
import { NODE_IP } from './workload.js';
import { Netns } from './sys.js';

/** The client's source address for rows through the node's rules. */
export const CLIENT = '10.255.0.2';
/**
 * The source address of the BPF rows. They reach the same server sockets as the nft rows, but
 * by the pod IP (connect() rewritten): the client's TCP timestamp offset is keyed on the
 * address it connected to, so sharing a source address, a SYN that reuses a port the other
 * path left in the server's TIME_WAIT fails PAWS and stalls. Measured in one lab: p99 12 ms and
 * a quarter of the rate for both, against 1 ms and parity with distinct sources.
 */
export const CLIENT_BPF = '10.255.0.3';
/**
 * The source address of the row that reaches a pod by its own IP through nftproxy's rules
 * (`nftproxy/pod`), for the same reason: nftproxy/first reaches the same server sockets by the
 * ClusterIP. With CLIENT for both, each had p99 9-12 ms in every round of the full runs (1 ms
 * for every other row), and the first service's rate 82-91% of one DNAT rule.
 */
export const CLIENT_POD = '10.255.0.4';

export interface Lab {
  readonly tag: string;
  readonly client: Netns;
  readonly node: Netns;
  readonly pod: Netns;
  destroy(): Promise<void>;
}

export async function createLab(tag: string, podAddrs: readonly string[]): Promise<Lab> {
  const client = await Netns.create(`${tag}c`);
  const node = await Netns.create(`${tag}n`);
  const pod = await Netns.create(`${tag}p`);
  await client.ip([`link add c0 type veth peer name n0 netns ${node.name}`]);
  await node.ip([`link add n1 type veth peer name p0 netns ${pod.name}`]);
  await client.ip([`addr add ${CLIENT}/24 dev c0`, `addr add ${CLIENT_BPF}/24 dev c0`, `addr add ${CLIENT_POD}/24 dev c0`, 'link set c0 up', 'route add default via 10.255.0.1']);
  await node.ip(['addr add 10.255.0.1/24 dev n0', 'addr add 172.20.0.1/24 dev n1', `addr add ${NODE_IP}/32 dev lo`, 'link set n0 up', 'link set n1 up', 'route add 10.128.0.0/9 via 172.20.0.2']);
  await pod.ip(['addr add 172.20.0.2/24 dev p0', 'link set p0 up', 'route add default via 172.20.0.1', ...podAddrs.map((a) => `addr add ${a}/32 dev lo`)]);
  await node.sysctl({ 'net.ipv4.ip_forward': 1 });
  await client.sysctl({ 'net.ipv4.ip_local_port_range': '1024 65535' });
  await pod.sysctl({ 'net.core.somaxconn': 4096, 'net.ipv4.tcp_max_syn_backlog': 4096 });
  return {
    tag, client, node, pod,
    async destroy() { await client.destroy(); await node.destroy(); await pod.destroy(); },
  };
}

// A small multi-node lab: simulated Kubernetes nodes, each a network namespace running its
// own `nftproxy run --kubeconfig …` against the test process's fake API server, with pods
// attached to different nodes and routes between them.
//
//   fabric namespace: bridge br0 (a shared L2, 192.168.50.0/24 and 203.0.113.0/24)
//     |-- nN ---- node-N (eth0 192.168.50.N/24; forwards; the daemon, a relay, a host agent)
//     |             |-- pK ---- pod namespace (eth0 10.244.N.(10+K)/32, default via the node)
//     |-- x0 ---- external client (203.0.113.10/24; node-service addresses routed per test)
//     |-- u0 ---- upstream router (192.168.50.254/24): every node's default route
//
// - The upstream refuses everything it would forward with an ICMP error (topology.ts:
//   UPSTREAM_RULES). A real node has a default route, and that matters: a ClusterIP is not
//   a local address, so without a route a host-network connect() fails (ENETUNREACH) before
//   nftproxy's output hook sees a packet, and a forwarded pod packet gets the routing error
//   (rate limited: it looks like a drop) before the forward hook's checks.
// - Pod CIDR 10.244.N.0/24 per node. The node side of every pod veth carries 10.244.N.1/32
//   (the pods' gateway, like a CNI bridge address); each node routes every other node's pod
//   CIDR via that node's IP, so pod traffic crosses nodes unencapsulated, as with a flat
//   routed network (Calico BGP, host-gw flannel).
// - Every pod runs the lab agent (agent.mjs) listening on the lab's ports; agents are named
//   by their pod IP, so an answer says which endpoint the connection landed on. Each node
//   runs an agent too: the host-network client, binding the node IP.
// - The API server: the fake listens on a Unix socket in the test process (listenUnix); each
//   node namespace runs unix-relay.mjs on 127.0.0.1:6443, its loopback, piping to that socket.
//   Nothing listens or routes in the root namespace's network.
// - Everything lives in namespaces this process created (netns.ts: unique names, removed on
//   exit even when a test fails); destroy() ends every process started here.
import { type ResultPromise, execa } from 'execa';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Daemon, synced } from '../support/daemon.js';
import { Agent, type Proto, type Try } from './agent-process.js';
import { Netns } from './netns.js';
import { UPSTREAM_RULES, sysctlsFor } from './topology.js';

const RELAY = fileURLToPath(new URL('./unix-relay.mjs', import.meta.url));

export const FABRIC_PREFIX = '192.168.50';
export const CLUSTER_CIDR = '10.244.0.0/16';
export const EXTERNAL_IP = '203.0.113.10';
/** the fabric's router: every node's default route */
export const UPSTREAM_IP = '192.168.50.254';
const EXTERNAL_NET = '203.0.113.0/24';
/** where each node's relay listens, inside the node: what the kubeconfig names */
export const API_ADDRESS = 'https://127.0.0.1:6443';

export interface ClusterPod {
  /** node-N-pK */
  readonly name: string;
  readonly ip: string;
  readonly node: ClusterNode;
  readonly ns: Netns;
  readonly agent: Agent;
}

export interface ClusterNode {
  readonly index: number;
  /** node-N: the Node object's name and the daemon's --node */
  readonly name: string;
  readonly ip: string;
  readonly podCIDR: string;
  readonly zone: string;
  readonly ns: Netns;
  /** the host-network client (binds the node IP) */
  readonly agent: Agent;
  readonly pods: readonly ClusterPod[];
}

/** Where a connection comes from: an agent, and the address it binds (none: its only one). */
export interface Client {
  readonly label: string;
  readonly agent: Agent;
  readonly src?: string;
}

/**
 * What a probe saw: the sorted names (pod IPs) of the agents that answered, or 'DROP'
 * (every try timed out), 'REJECT' (refused), 'UNREACHABLE', or a 'MIXED …' sentence; and
 * the sorted source addresses the answering endpoints saw.
 */
export interface Seen { got: string[] | string; saw: string[] }

export interface ClusterOptions {
  /** the fake API server's Unix socket (FakeApiServer.listenUnix) */
  readonly apiSocket: string;
  /** kubeconfig text for the daemons: the fake's, with server API_ADDRESS */
  readonly kubeconfig: string;
  /** scratch directory (kubeconfig file) */
  readonly dir: string;
  /** TCP ports every pod listens on */
  readonly ports: readonly number[];
  readonly nodes?: number;
  readonly podsPerNode?: number;
  /** more `nftproxy run` flags for every daemon (e.g. --sync-period, --service-cidr) */
  readonly daemonArgs?: readonly string[];
}

const ZONES = ['zone-a', 'zone-b', 'zone-c', 'zone-d', 'zone-e'];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One relay process in a node namespace (see unix-relay.mjs). */
class Relay {
  private constructor(private readonly proc: ResultPromise) {}

  static async start(ns: Netns, socketPath: string): Promise<Relay> {
    const proc = execa('ip', ['netns', 'exec', ns.name, process.execPath, RELAY, socketPath], { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', buffer: false, reject: false });
    const relay = new Relay(proc);
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const ready = new Promise<void>((resolve, reject) => {
      createInterface({ input: proc.stdout! }).on('line', (l) => { if (l === 'listening') resolve(); });
      void proc.then((r) => reject(new Error(`relay in ${ns.name} exited (${r.exitCode ?? r.signal}): ${stderr.trim()}`)));
      setTimeout(() => reject(new Error(`relay in ${ns.name}: not listening after 10 s`)), 10_000);
    });
    try {
      await ready;
    } catch (e) {
      proc.kill('SIGKILL');
      throw e;
    }
    return relay;
  }

  async stop(): Promise<void> {
    this.proc.stdin!.end();
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 2000);
    await this.proc;
    clearTimeout(t);
  }
}

export class Cluster {
  readonly nodes: ClusterNode[] = [];
  /** the client outside the cluster, on the fabric */
  external!: Client;
  private externalNs!: Netns;
  private upstream!: Netns;
  private fabric!: Netns;
  private readonly namespaces: Netns[] = [];
  private readonly agents: Agent[] = [];
  private readonly relays: Relay[] = [];
  private readonly daemons = new Map<string, Daemon>();
  private readonly kubeconfigPath: string;

  private constructor(private readonly tag: string, private readonly o: ClusterOptions) {
    this.kubeconfigPath = join(o.dir, 'kubeconfig');
    writeFileSync(this.kubeconfigPath, o.kubeconfig);
  }

  /** Builds the fabric, the external client and `nodes` nodes with their pods; no daemons yet. */
  static async create(tag: string, o: ClusterOptions): Promise<Cluster> {
    const c = new Cluster(tag, o);
    try {
      c.fabric = await c.netns('f');
      await c.fabric.sysctl(sysctlsFor('client'));
      await c.fabric.ip(['link set lo up', 'link add br0 type bridge', 'link set br0 up']);
      c.externalNs = await c.netns('x');
      await c.externalNs.sysctl(sysctlsFor('client'));
      await c.plug(c.externalNs, 'x0');
      await c.externalNs.ip(['link set lo up', 'link set eth0 up', `address add ${EXTERNAL_IP}/24 dev eth0`, `route add ${FABRIC_PREFIX}.0/24 dev eth0`]);
      c.external = { label: 'external', agent: await c.agent(c.externalNs, 'external'), src: EXTERNAL_IP };
      c.upstream = await c.netns('u');
      await c.upstream.sysctl(sysctlsFor('upstream'));
      await c.plug(c.upstream, 'u0');
      await c.upstream.ip(['link set lo up', 'link set eth0 up', `address add ${UPSTREAM_IP}/24 dev eth0`, `route add ${EXTERNAL_NET} dev eth0`]);
      await c.upstream.exec(['nft', '-f', '-'], UPSTREAM_RULES);
      for (let i = 1; i <= (o.nodes ?? 3); i++) await c.addNode(i, o.podsPerNode ?? 2);
      return c;
    } catch (e) {
      await c.destroy();
      throw e;
    }
  }

  /**
   * A node namespace on the fabric, with its pods, routes both ways to every other node's
   * pod CIDR, and the relay to the API server. No daemon: startDaemon.
   */
  async addNode(index: number, pods: number): Promise<ClusterNode> {
    if (this.nodes.some((n) => n.index === index)) throw new Error(`node-${index} exists`);
    const ip = `${FABRIC_PREFIX}.${index}`;
    const gw = `10.244.${index}.1`;
    const ns = await this.netns(`n${index}`);
    const podNs = await Promise.all(Array.from({ length: pods }, (_, k) => this.netns(`n${index}p${k}`)));
    await Promise.all([ns.sysctl(sysctlsFor('node')), ...podNs.map((p) => p.sysctl(sysctlsFor('pod')))]);
    await this.plug(ns, `n${index}`);
    const podIPs = podNs.map((_, k) => `10.244.${index}.${10 + k}`);
    await ns.ip([
      'link set lo up', 'link set eth0 up',
      `address add ${ip}/24 dev eth0`,
      `route add ${EXTERNAL_NET} dev eth0`,
      `route add default via ${UPSTREAM_IP} dev eth0`,
      ...podNs.flatMap((p, k) => [
        `link add p${k} type veth peer name eth0 netns ${p.name}`,
        `address add ${gw}/32 dev p${k}`,
        `link set p${k} up`,
        `route add ${podIPs[k]}/32 dev p${k}`,
      ]),
      ...this.nodes.map((n) => `route add ${n.podCIDR} via ${n.ip} dev eth0`),
    ]);
    await Promise.all(podNs.map((p, k) => p.ip(['link set lo up', 'link set eth0 up', `address add ${podIPs[k]}/32 dev eth0`, `route add default via ${gw} dev eth0 onlink`])));
    const podCIDR = `10.244.${index}.0/24`;
    await Promise.all([this.upstream, ...this.nodes.map((n) => n.ns)].map((x) => x.ip([`route add ${podCIDR} via ${ip} dev eth0`])));

    const [agent, podAgents, relay] = await Promise.all([
      this.agent(ns, `node-${index}`),
      Promise.all(podNs.map(async (p, k) => {
        const a = await this.agent(p, podIPs[k]!);
        for (const port of this.o.ports) await a.listen('tcp', port);
        return a;
      })),
      Relay.start(ns, this.o.apiSocket),
    ]);
    this.relays.push(relay);
    const podList: ClusterPod[] = [];
    const node: ClusterNode = { index, name: `node-${index}`, ip, podCIDR, zone: ZONES[(index - 1) % ZONES.length]!, ns, agent, pods: podList };
    podNs.forEach((p, k) => podList.push({ name: `node-${index}-p${k}`, ip: podIPs[k]!, node, ns: p, agent: podAgents[k]! }));
    this.nodes.push(node);
    return node;
  }

  node(index: number): ClusterNode {
    const n = this.nodes.find((x) => x.index === index);
    if (!n) throw new Error(`no node-${index}`);
    return n;
  }

  /** The Node object for the fake: InternalIP, hostname and zone labels, pod CIDR. */
  nodeObject(n: ClusterNode): Record<string, unknown> {
    return {
      apiVersion: 'v1', kind: 'Node',
      metadata: { name: n.name, labels: { 'kubernetes.io/hostname': n.name, 'topology.kubernetes.io/zone': n.zone, 'topology.kubernetes.io/region': 'lab' } },
      spec: { podCIDR: n.podCIDR, podCIDRs: [n.podCIDR] },
      status: { addresses: [{ type: 'InternalIP', address: n.ip }, { type: 'Hostname', address: n.name }] },
    };
  }

  /** The host-network client of a node: its agent, binding the node IP. */
  host(n: ClusterNode): Client {
    return { label: n.name, agent: n.agent, src: n.ip };
  }

  pod(p: ClusterPod): Client {
    return { label: p.name, agent: p.agent };
  }

  /** Starts `nftproxy run` in the node (not awaited: see the returned Daemon's waitFor). */
  spawnDaemon(n: ClusterNode, extra: readonly string[] = []): Daemon {
    if (this.daemons.has(n.name)) throw new Error(`${n.name} already runs a daemon`);
    const d = new Daemon(n.ns.name, [
      '--kubeconfig', this.kubeconfigPath, '--node', n.name, '--node-ip', n.ip,
      '--cluster-cidr', CLUSTER_CIDR, '--min-sync-period', '100ms',
      ...(this.o.daemonArgs ?? []), ...extra,
    ]);
    this.daemons.set(n.name, d);
    return d;
  }

  /** Starts the node's daemon and waits for its first sync. */
  async startDaemon(n: ClusterNode, extra: readonly string[] = []): Promise<Daemon> {
    const d = this.spawnDaemon(n, extra);
    await Promise.race([
      d.waitFor(synced, 30_000, 0),
      d.exited.then((code) => { throw new Error(`${n.name}: nftproxy exited (${code}) before its first sync:\n${d.logs.slice(-10).map((l) => JSON.stringify(l)).join('\n')}`); }),
    ]);
    return d;
  }

  /** Every daemon started, by node name. */
  daemonsByNode(): ReadonlyMap<string, Daemon> {
    return this.daemons;
  }

  daemon(n: ClusterNode): Daemon {
    const d = this.daemons.get(n.name);
    if (!d) throw new Error(`${n.name} runs no daemon`);
    return d;
  }

  /** The external client sends traffic for `addr` (a LoadBalancer IP) to this node. */
  async routeExternal(addr: string, n: ClusterNode): Promise<void> {
    await this.externalNs.ip([`route replace ${addr}/32 via ${n.ip} dev eth0`]);
  }

  /** `count` connections at once from `from` to host:port, summarized. */
  async probe(from: Client, host: string, port: number, o: { count?: number; timeoutMs?: number; proto?: Proto } = {}): Promise<Seen> {
    const tries = await from.agent.connect({ proto: o.proto ?? 'tcp', host, port, ...(from.src ? { src: from.src } : {}), count: o.count ?? 30, timeoutMs: o.timeoutMs ?? 1000 });
    return summarize(tries);
  }

  /** `nft list tables` in the node. */
  async tables(n: ClusterNode): Promise<string> {
    return (await n.ns.exec(['nft', 'list', 'tables'])).trim();
  }

  /** The elements of nftproxy's cluster-ips set in the node (undefined: no table). */
  async clusterIPs(n: ClusterNode): Promise<string[] | undefined> {
    const r = await execa('ip', ['netns', 'exec', n.ns.name, 'nft', '-j', 'list', 'set', 'ip', 'nftproxy', 'cluster-ips'], { reject: false });
    if (r.exitCode !== 0) return undefined;
    const doc = JSON.parse(String(r.stdout)) as { nftables: { set?: { elem?: unknown[] } }[] };
    const elems = doc.nftables.find((x) => x.set)?.set?.elem ?? [];
    return elems.map((e) => String(e)).sort();
  }

  /** Ends every daemon, agent and relay, and removes every namespace. Safe to call twice. */
  async destroy(): Promise<void> {
    await Promise.all([...this.daemons.values()].map(async (d) => {
      d.kill('SIGTERM');
      const killed = await Promise.race([d.exited.then(() => false), sleep(3000).then(() => true)]);
      if (killed) { d.kill('SIGKILL'); await d.exited; }
    }));
    this.daemons.clear();
    await Promise.all([...this.agents.splice(0).map((a) => a.stop()), ...this.relays.splice(0).map((r) => r.stop())]);
    for (const ns of this.namespaces.splice(0).reverse()) await ns.destroy();
  }

  private async netns(t: string): Promise<Netns> {
    const ns = await Netns.create(`${this.tag}${t}`);
    this.namespaces.push(ns);
    return ns;
  }

  private async agent(ns: Netns, name: string): Promise<Agent> {
    const a = await Agent.start(ns, name);
    this.agents.push(a);
    return a;
  }

  /** A veth from the fabric's bridge (port `port`) to `ns`, where it is eth0. */
  private async plug(ns: Netns, port: string): Promise<void> {
    await this.fabric.ip([`link add ${port} type veth peer name eth0 netns ${ns.name}`, `link set ${port} master br0`, `link set ${port} up`]);
  }
}

function summarize(tries: readonly Try[]): Seen {
  const label = (t: Try): string => {
    if (t.ok) return t.name;
    switch (t.err) {
      case 'timeout': return 'DROP';
      case 'refused': return 'REJECT';
      case 'unreachable': return 'UNREACHABLE';
      default: return `ERROR ${t.err}`;
    }
  };
  const labels = tries.map(label);
  const distinct = [...new Set(labels)].sort();
  const saw = [...new Set(tries.flatMap((t) => (t.ok ? [t.saw] : [])))].sort();
  if (tries.every((t) => t.ok)) return { got: distinct, saw };
  if (tries.every((t) => !t.ok) && distinct.length === 1) return { got: distinct[0]!, saw };
  return { got: `MIXED ${distinct.map((d) => `${d} x${labels.filter((l) => l === d).length}`).join(', ')}`, saw };
}

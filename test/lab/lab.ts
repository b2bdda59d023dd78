// A traffic lab: the topology of topology.ts, an agent in every namespace that sends or
// answers traffic, and the three things a datapath test does with it: load a ruleset into
// the node, send real connections from a source address to a destination, read the outcome
// in the reference tables' notation.
import type { Ruleset } from '../../src/ir/types.js';
import { Applier } from '../../src/apply/applier.js';
import { execa } from 'execa';
import { NetlinkWriter } from '../../src/apply/netlink/writer.js';
import { Agent, type LoopRecord, type LoopRequest, type Proto } from './agent-process.js';
import type { Netns } from './netns.js';
import { type Observed, summarize } from './outcome.js';
import { type Attachment, type TopologySpec, GATEWAY, buildTopology, isV6 } from './topology.js';

export interface LabSpec extends TopologySpec {
  /** Ports every pod and the node listen on, TCP and UDP. */
  readonly ports: readonly number[];
}

export interface ProbeRequest {
  src: string; dst: string; proto: Proto; count: number; timeoutMs: number;
  /** send from the source's client agent inside a cgroup (see Lab.startCgroupClients) */
  cgroup?: boolean;
  /** do not bind `src`: the route chooses the source (for a pod, its only address is `src`) */
  unbound?: boolean;
}

export interface LoopSpec extends Omit<LoopRequest, 'host' | 'port' | 'src'> {
  src: string; dst: string;
  /** as ProbeRequest.cgroup */
  cgroup?: boolean;
}

/** Traffic that keeps flowing from one source until stopped (see agent.mjs: loop). */
export interface TrafficLoop {
  /** tries that began after `since` (ms since the epoch) and have ended */
  count(since: number): Promise<number>;
  /** waits until at least `n` tries that began after `since` have ended */
  waitFor(n: number, since: number, timeoutMs?: number): Promise<void>;
  /** the tries that began after `since` and have ended, while the loop goes on */
  peek(since: number): Promise<LoopRecord[]>;
  stop(): Promise<LoopRecord[]>;
}

const fmt = (addr: string, port: number): string => (isV6(addr) ? `[${addr}]:${port}` : `${addr}:${port}`);

export function parseDst(dst: string): { host: string; port: number } {
  const m = dst.match(/^\[?([^\]]+?)\]?:(\d+)$/);
  if (!m) throw new Error(`bad destination ${dst}`);
  return { host: m[1]!, port: Number(m[2]) };
}

export class Lab {
  private constructor(
    private readonly node: Netns,
    private readonly namespaces: readonly Netns[],
    private readonly agents: readonly Agent[],
    /** source address -> the agent that owns it */
    private readonly homes: ReadonlyMap<string, Agent>,
    private readonly nodeAddrs: ReadonlySet<string>,
    /** pod agents are named by their address */
    private readonly pods: ReadonlySet<string>,
    /** source address -> its namespace and the name of its agent */
    private readonly sourceHomes: ReadonlyMap<string, { ns: Netns; name: string }>,
  ) {}

  /** source address -> a client agent of the same namespace running inside a cgroup */
  private readonly cgroupClients = new Map<string, Agent>();

  static async create(tag: string, spec: LabSpec): Promise<Lab> {
    const namespaces: Netns[] = [];
    const agents: Agent[] = [];
    try {
      const { node, attachments } = await buildTopology(tag, spec, namespaces);
      const where = new Map<string, { ns: Netns; name: string }>();
      const homes = await startAgents(spec, node, attachments, agents, where);
      return new Lab(node, namespaces, agents, homes, new Set([...spec.nodeIPs, GATEWAY.v4, GATEWAY.v6]), new Set(spec.pods), where);
    } catch (e) {
      await teardown(agents, namespaces);
      throw e;
    }
  }

  /** The product's applier, bound to the node namespace: what the daemon would run there. */
  private applierInstance: Applier | undefined;
  get applier(): Applier {
    return (this.applierInstance ??= new Applier(this.writer()));
  }

  /** A kernel writer (netlink socket) into the node namespace; closed with the lab. */
  private readonly writers: NetlinkWriter[] = [];
  writer(): NetlinkWriter {
    const w = new NetlinkWriter({ netns: `/run/netns/${this.node.name}` });
    this.writers.push(w);
    return w;
  }

  /** The namespace that holds an address (a pod's, a client's, the node's), to run a program there. */
  namespaceOf(addr: string): string {
    const home = this.sourceHomes.get(addr);
    if (!home) throw new Error(`no namespace in this lab holds ${addr}`);
    return home.ns.name;
  }

  /** Runs a command in the node namespace (another process changing its tables, say). */
  async nodeExec(cmd: readonly string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const r = await execa('ip', ['netns', 'exec', this.node.name, ...cmd], { reject: false });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  }

  /** The node namespace's name (to run the daemon or conntrack there). */
  get nodeNetns(): string {
    return this.node.name;
  }

  /**
   * Puts the ruleset into the node's kernel through the product's applier, as a full sync
   * (an atomic replace of the table): rows that load a new scenario start from a clean table.
   * Tests of partial syncs call `lab.applier.syncRuleset(ruleset)` instead.
   */
  async load(ruleset: Ruleset): Promise<void> {
    await this.applier.syncRuleset(ruleset, { full: true });
  }

  /**
   * Forgets every tracked connection on the node. Between two rulesets a new try could reuse
   * a source port (UDP especially) and match an old conntrack entry, which keeps its old NAT
   * decision: the kube-proxy stale-UDP problem, which is not what these probes measure.
   */
  async forgetConnections(): Promise<void> {
    await this.node.exec(['conntrack', '-F', '-f', 'ipv4']);
    await this.node.exec(['conntrack', '-F', '-f', 'ipv6']);
  }

  /**
   * Starts, for every source in `srcs`, a client agent inside the cgroup v2 directory
   * `cgroupPath` (Agent.startInCgroup), beside the source's ordinary agent: one per namespace.
   * Probes and loops with `cgroup: true` go through it; the others still use the ordinary
   * agents, which stay outside. A source that had a cgroup client gets a new one.
   */
  async startCgroupClients(srcs: readonly string[], cgroupPath: string): Promise<void> {
    await this.stopCgroupClients(srcs);
    const byNs = new Map<Netns, { name: string; srcs: string[] }>();
    for (const src of new Set(srcs)) {
      const home = this.sourceHomes.get(src);
      if (!home) throw new Error(`no namespace in this lab owns source ${src}`);
      const entry = byNs.get(home.ns) ?? { name: home.name, srcs: [] };
      entry.srcs.push(src);
      byNs.set(home.ns, entry);
    }
    await Promise.all([...byNs].map(async ([ns, { name, srcs: mine }]) => {
      const agent = await Agent.startInCgroup(ns, `${name}@cgroup`, cgroupPath);
      for (const src of mine) this.cgroupClients.set(src, agent);
    }));
  }

  /** The ordinary agent that owns source `src` (started with `ip netns exec`), if any. */
  sourceAgent(src: string): Agent | undefined {
    return this.homes.get(src);
  }

  /** The cgroup client agent of `src` (its pid tells which cgroup it is in), if any. */
  cgroupClient(src: string): Agent | undefined {
    return this.cgroupClients.get(src);
  }

  /** Stops the cgroup client agents of `srcs` (all of them by default); a cgroup can then be removed. */
  async stopCgroupClients(srcs?: readonly string[]): Promise<void> {
    const which = srcs ?? [...this.cgroupClients.keys()];
    const agents = new Set(which.flatMap((s) => { const a = this.cgroupClients.get(s); return a ? [a] : []; }));
    // An agent serves every source of its namespace: forget them all.
    for (const [src, a] of [...this.cgroupClients]) if (agents.has(a)) this.cgroupClients.delete(src);
    await Promise.allSettled([...agents].map((a) => a.stop()));
  }

  private client(src: string, cgroup: boolean | undefined): Agent {
    const agent = cgroup ? this.cgroupClients.get(src) : this.homes.get(src);
    if (!agent) throw new Error(cgroup ? `no cgroup client for source ${src} (startCgroupClients)` : `no namespace in this lab owns source ${src}`);
    return agent;
  }

  /** `count` fresh connections from `src` (bound as source, unless unbound) to `dst`, read as one outcome. */
  async probe(req: ProbeRequest): Promise<Observed> {
    const agent = this.client(req.src, req.cgroup);
    const { host, port } = parseDst(req.dst);
    const tries = await agent.connect({ proto: req.proto, host, port, ...(req.unbound ? {} : { src: req.src }), count: req.count, timeoutMs: req.timeoutMs });
    return summarize(tries, req.src, {
      nodeAddrs: this.nodeAddrs,
      // The node's own listener answering means "not proxied".
      landing: (name, p) => (name === 'node' ? '' : this.pods.has(name) ? fmt(name, p) : undefined),
    });
  }

  private loopCounter = 0;

  /** Starts a loop of tries from `src` (bound as source) to `dst`; stop() returns them. */
  async loop(spec: LoopSpec): Promise<TrafficLoop> {
    const agent = this.client(spec.src, spec.cgroup);
    const { host, port } = parseDst(spec.dst);
    const id = `loop${++this.loopCounter}`;
    const { dst: _dst, cgroup: _cgroup, ...rest } = spec;
    await agent.startLoop(id, { ...rest, host, port });
    const count = (since: number): Promise<number> => agent.loopCount(id, since);
    return {
      count,
      async waitFor(n, since, timeoutMs = 20_000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const c = await count(since);
          if (c >= n) return;
          if (Date.now() > deadline) throw new Error(`loop ${spec.src} -> ${spec.dst}: only ${c} of ${n} tries after ${since} within ${timeoutMs} ms`);
          await new Promise((r) => setTimeout(r, 20));
        }
      },
      peek: (since) => agent.peekLoop(id, since),
      stop: () => agent.stopLoop(id),
    };
  }

  async destroy(): Promise<void> {
    await this.stopCgroupClients();
    // a socket keeps its network namespace alive after `ip netns del`: close them first
    await Promise.allSettled(this.writers.map((w) => w.close()));
    await teardown(this.agents, this.namespaces);
  }
}

/**
 * One agent per namespace (pods named by their address, so an answer says where it landed);
 * returns which agent owns each source address. Started agents are pushed to `started` so
 * the caller can stop them when a later one fails.
 */
async function startAgents(spec: LabSpec, node: Netns, attachments: readonly Attachment[], started: Agent[], where: Map<string, { ns: Netns; name: string }>): Promise<Map<string, Agent>> {
  // udpHosts: a UDP answer takes the source address routing picks, unless the socket is bound
  // to one. The node has many addresses and must answer from the one asked (a client's
  // connected UDP socket ignores any other); the others have one, so a wildcard socket will do.
  const start = async (ns: Netns, name: string, udpHosts?: readonly (string | undefined)[]): Promise<Agent> => {
    const agent = await Agent.start(ns, name);
    started.push(agent);
    if (udpHosts) await Promise.all(spec.ports.flatMap((port) => [agent.listen('tcp', port), ...udpHosts.map((h) => agent.listen('udp', port, h))]));
    return agent;
  };
  const homes = new Map<string, Agent>();
  await Promise.all([
    start(node, 'node', spec.nodeIPs).then((a) => { for (const ip of spec.nodeIPs) { homes.set(ip, a); where.set(ip, { ns: node, name: 'node' }); } }),
    ...attachments.map(async (att) => {
      const own = (a: Agent, ips: readonly string[]): void => { for (const ip of ips) { homes.set(ip, a); where.set(ip, { ns: att.ns, name: a.name }); } };
      switch (att.role) {
        case 'upstream': return; // answers nothing itself (UPSTREAM_RULES)
        case 'client': { own(await start(att.ns, 'client'), att.addrs); return; }
        // The self-addressed client listens too: a packet to its address that the node did not
        // translate comes back to it and is answered ("answered by self"), not refused.
        case 'self': { own(await start(att.ns, 'self', [undefined]), att.addrs); return; }
        case 'pod': { own(await start(att.ns, att.addrs[0]!, [undefined]), [att.addrs[0]!]); return; }
      }
    }),
  ]);
  return homes;
}

// Agents first: deleting a namespace does not end the processes inside it.
async function teardown(agents: readonly Agent[], namespaces: readonly Netns[]): Promise<void> {
  await Promise.allSettled(agents.map((a) => a.stop()));
  await Promise.allSettled(namespaces.map((ns) => ns.destroy()));
}

// A traffic lab: the topology of topology.ts, an agent in every namespace that sends or
// answers traffic, and the three things a datapath test does with it: load a ruleset into
// the node, send real connections from a source address to a destination, read the outcome
// in the reference tables' notation.
import type { Ruleset } from '../../src/ir/types.js';
import { Applier } from '../../src/apply/applier.js';
import { nftRunner } from '../../src/apply/nft-runner.js';
import { Agent, type LoopRecord, type LoopRequest, type Proto } from './agent-process.js';
import type { Netns } from './netns.js';
import { type Observed, summarize } from './outcome.js';
import { type Attachment, type TopologySpec, GATEWAY, buildTopology, isV6 } from './topology.js';

export interface LabSpec extends TopologySpec {
  /** Ports every pod and the node listen on, TCP and UDP. */
  readonly ports: readonly number[];
}

export interface ProbeRequest { src: string; dst: string; proto: Proto; count: number; timeoutMs: number }

export interface LoopSpec extends Omit<LoopRequest, 'host' | 'port' | 'src'> { src: string; dst: string }

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
  ) {}

  static async create(tag: string, spec: LabSpec): Promise<Lab> {
    const namespaces: Netns[] = [];
    const agents: Agent[] = [];
    try {
      const { node, attachments } = await buildTopology(tag, spec, namespaces);
      const homes = await startAgents(spec, node, attachments, agents);
      return new Lab(node, namespaces, agents, homes, new Set([...spec.nodeIPs, GATEWAY.v4, GATEWAY.v6]), new Set(spec.pods));
    } catch (e) {
      await teardown(agents, namespaces);
      throw e;
    }
  }

  /** The product's applier, bound to the node namespace: what the daemon would run there. */
  private applierInstance: Applier | undefined;
  get applier(): Applier {
    return (this.applierInstance ??= new Applier(nftRunner({ prefix: ['ip', 'netns', 'exec', this.node.name] })));
  }

  /** The node namespace's name (to run the daemon or conntrack there). */
  get nodeNetns(): string {
    return this.node.name;
  }

  /**
   * Puts the ruleset into the node's kernel through the product's applier, as a full sync
   * (an atomic replace of the table): rows that load a new scenario start from a clean table.
   * Tests of partial syncs call `lab.applier.sync(ruleset)` instead.
   */
  async load(ruleset: Ruleset): Promise<void> {
    await this.applier.sync(ruleset, { full: true });
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

  /** `count` fresh connections from `src` (bound as source) to `dst`, read as one outcome. */
  async probe(req: ProbeRequest): Promise<Observed> {
    const agent = this.homes.get(req.src);
    if (!agent) throw new Error(`no namespace in this lab owns source ${req.src}`);
    const { host, port } = parseDst(req.dst);
    const tries = await agent.connect({ proto: req.proto, host, port, src: req.src, count: req.count, timeoutMs: req.timeoutMs });
    return summarize(tries, req.src, {
      nodeAddrs: this.nodeAddrs,
      // The node's own listener answering means "not proxied".
      landing: (name, p) => (name === 'node' ? '' : this.pods.has(name) ? fmt(name, p) : undefined),
    });
  }

  private loopCounter = 0;

  /** Starts a loop of tries from `src` (bound as source) to `dst`; stop() returns them. */
  async loop(spec: LoopSpec): Promise<TrafficLoop> {
    const agent = this.homes.get(spec.src);
    if (!agent) throw new Error(`no namespace in this lab owns source ${spec.src}`);
    const { host, port } = parseDst(spec.dst);
    const id = `loop${++this.loopCounter}`;
    const { dst: _dst, ...rest } = spec;
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
    await teardown(this.agents, this.namespaces);
  }
}

/**
 * One agent per namespace (pods named by their address, so an answer says where it landed);
 * returns which agent owns each source address. Started agents are pushed to `started` so
 * the caller can stop them when a later one fails.
 */
async function startAgents(spec: LabSpec, node: Netns, attachments: readonly Attachment[], started: Agent[]): Promise<Map<string, Agent>> {
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
    start(node, 'node', spec.nodeIPs).then((a) => { for (const ip of spec.nodeIPs) homes.set(ip, a); }),
    ...attachments.map(async (att) => {
      switch (att.role) {
        case 'upstream': return; // answers nothing itself (UPSTREAM_RULES)
        case 'client': { const a = await start(att.ns, 'client'); for (const ip of att.addrs) homes.set(ip, a); return; }
        // The self-addressed client listens too: a packet to its address that the node did not
        // translate comes back to it and is answered ("answered by self"), not refused.
        case 'self': { const a = await start(att.ns, 'self', [undefined]); for (const ip of att.addrs) homes.set(ip, a); return; }
        case 'pod': { const a = await start(att.ns, att.addrs[0]!, [undefined]); homes.set(att.addrs[0]!, a); return; }
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

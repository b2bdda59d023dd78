// The test side of test/lab/agent.mjs: starts one agent inside a namespace and speaks
// its JSON-lines protocol. Every request gets an id, so many can be in flight at once.
import { execa, type ResultPromise } from 'execa';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Netns } from './netns.js';

const AGENT = fileURLToPath(new URL('./agent.mjs', import.meta.url));

export type Proto = 'tcp' | 'udp';
export type Try = { ok: true; name: string; saw: string; port: number } | { ok: false; err: string };
/** A try of a loop, with when it began and ended (ms since the epoch, the agent's clock). */
export type LoopRecord = Try & { t0: number; t1: number };

export interface LoopRequest {
  proto: Proto;
  host: string;
  port: number;
  src?: string;
  /** 'fresh': a new socket per try; 'socket': one connected UDP socket for the whole loop */
  mode: 'fresh' | 'socket';
  /** [first, last] source ports: one per try ('fresh'), the first only ('socket') */
  sports: [number, number];
  intervalMs: number;
  timeoutMs: number;
}

export class Agent {
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  private exited: Error | undefined;

  private constructor(readonly name: string, private readonly proc: ResultPromise) {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      let msg: Record<string, unknown>;
      try { msg = JSON.parse(line) as Record<string, unknown>; } catch { return; }
      const p = this.pending.get(msg.id as number);
      if (!p) return;
      this.pending.delete(msg.id as number);
      if (typeof msg.error === 'string') p.reject(new Error(`agent ${name}: ${msg.error}`));
      else p.resolve(msg);
    });
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    // reject: false below, so this settles with the result instead of throwing.
    void proc.then((r) => {
      this.exited = new Error(`agent ${name} exited (${r.exitCode ?? r.signal}): ${stderr.trim()}`);
      for (const p of this.pending.values()) p.reject(this.exited);
      this.pending.clear();
    });
  }

  /** `ip netns exec` execs node in place, so the pid we hold is the agent's own. */
  static async start(ns: Netns, name: string): Promise<Agent> {
    return Agent.spawn(name, ['ip', 'netns', 'exec', ns.name, process.execPath, AGENT, name]);
  }

  /**
   * An agent in namespace `ns` that runs inside the cgroup v2 directory `cgroupPath` (a
   * client of the BPF socket load balancer attached to that cgroup). `nsenter --net` and not
   * `ip netns exec`, which remounts /sys and would hide the cgroup filesystem; the fixed sh
   * wrapper writes its own pid into cgroup.procs BEFORE exec'ing node, so no socket of the
   * agent is ever opened outside the cgroup. nsenter (no --fork) and sh exec in place: the
   * pid we hold is the agent's own. Same protocol as start().
   */
  static async startInCgroup(ns: Netns, name: string, cgroupPath: string): Promise<Agent> {
    return Agent.spawn(name, [
      'nsenter', `--net=/run/netns/${ns.name}`, 'sh', '-c', 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"', 'sh', cgroupPath,
      process.execPath, AGENT, name,
    ]);
  }

  private static async spawn(name: string, cmd: string[]): Promise<Agent> {
    const proc = execa(cmd[0]!, cmd.slice(1), { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', buffer: false, reject: false });
    const agent = new Agent(name, proc);
    try {
      await agent.request({ op: 'ping' }, 10_000);
    } catch (e) {
      proc.kill('SIGKILL');
      throw e;
    }
    return agent;
  }

  /** The agent process's pid (see start / startInCgroup: no wrapper process in between). */
  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** A request without an answer after `timeoutMs` fails, so a wedged agent cannot hang a test. */
  request(req: Record<string, unknown>, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    if (this.exited) return Promise.reject(this.exited);
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`agent ${this.name}: no answer to ${JSON.stringify(req)} after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: (v) => { clearTimeout(timer); resolve(v); }, reject: (e) => { clearTimeout(timer); reject(e); } });
      this.proc.stdin!.write(JSON.stringify({ id, ...req }) + '\n');
    });
  }

  /** Without `host` the agent listens on every address, IPv4 and IPv6. */
  async listen(proto: Proto, port: number, host?: string): Promise<void> {
    await this.request({ op: 'listen', proto, port, ...(host ? { host } : {}) });
  }

  async connect(req: { proto: Proto; host: string; port: number; src?: string; count: number; timeoutMs: number }): Promise<Try[]> {
    const res = await this.request({ op: 'connect', ...req });
    return res.tries as Try[];
  }

  /** Starts trying in the background (see agent.mjs: loop); `loop` names it for the other calls. */
  async startLoop(loop: string, req: LoopRequest): Promise<void> {
    await this.request({ op: 'loop', loop, ...req });
  }

  /** How many tries of the loop that began after `since` (ms since the epoch) have ended. */
  async loopCount(loop: string, since: number): Promise<number> {
    const res = await this.request({ op: 'loopCount', loop, since });
    return res.count as number;
  }

  /** The loop's tries that began after `since` and have ended; the loop goes on. */
  async peekLoop(loop: string, since: number): Promise<LoopRecord[]> {
    const res = await this.request({ op: 'peek', loop, since });
    return res.records as LoopRecord[];
  }

  /** Ends the loop (after the try in flight) and returns every try it made. */
  async stopLoop(loop: string): Promise<LoopRecord[]> {
    const res = await this.request({ op: 'stop', loop });
    return res.records as LoopRecord[];
  }

  /** Closing stdin makes the agent exit; the kill is for an agent that hangs. */
  async stop(): Promise<void> {
    this.proc.stdin!.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 2000);
    await this.proc;
    clearTimeout(timer);
  }
}

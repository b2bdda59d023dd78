// Processes, network namespaces and cleanup. Every command is an argument array (execa, no
// shell); everything that touches netfilter or addresses runs inside a namespace this harness
// created (`ip netns exec NS …` / `ip -n NS …`); nothing touches the root namespace.
// Namespaces are named npx-bench-<tag>-<pid>-<n> and removed at the end, on failure, and on
// SIGINT/SIGTERM (plus a synchronous last resort in the exit hook). Other resources (the BPF
// phase's cgroup, bpffs mount and attached programs: bpf.ts) register their own undo here
// (registerCleanup), run by the same paths after our children are killed and before the
// namespaces go.
import { execa, type ResultPromise } from 'execa';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

export interface RunResult { readonly exitCode: number; readonly stdout: string; readonly stderr: string; readonly ms: number; readonly timedOut: boolean }

export async function run(cmd: readonly string[], opts: { input?: string; inputFile?: string; timeoutMs?: number; env?: Record<string, string>; track?: boolean } = {}): Promise<RunResult> {
  const [file, ...args] = cmd;
  const t0 = performance.now();
  const p = execa(file!, args, {
    reject: false, stripFinalNewline: false, maxBuffer: 1 << 30,
    ...(opts.input !== undefined ? { input: opts.input } : {}),
    ...(opts.inputFile !== undefined ? { inputFile: opts.inputFile } : {}),
    ...(opts.timeoutMs ? { timeout: opts.timeoutMs, killSignal: 'SIGKILL' as const } : {}),
    ...(opts.env ? { env: opts.env } : {}),
  });
  // track: killed by pid at cleanup (SIGINT) like spawn()ed processes, e.g. a client that
  // must be gone before its cgroup can be removed
  if (opts.track) { children.add(p); void p.finally(() => children.delete(p)).catch(() => undefined); }
  const r = await p;
  const ms = performance.now() - t0;
  return { exitCode: typeof r.exitCode === 'number' ? r.exitCode : -1, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), ms, timedOut: Boolean(r.timedOut) };
}

export async function must(cmd: readonly string[], opts: Parameters<typeof run>[1] = {}): Promise<RunResult> {
  const r = await run(cmd, opts);
  if (r.exitCode !== 0) throw new Error(`${cmd.join(' ')} failed (exit ${r.exitCode}${r.timedOut ? ', timed out' : ''}): ${r.stderr.trim().slice(0, 2000)}`);
  return r;
}

// ---- namespaces ----------------------------------------------------------------------------

const PREFIX = 'npx-bench';
let counter = 0;
const live = new Set<string>();
const children = new Set<ResultPromise>();

export class Netns {
  private constructor(readonly name: string) {}

  static async create(tag: string): Promise<Netns> {
    const name = `${PREFIX}-${tag}-${process.pid}-${++counter}`;
    live.add(name);
    await must(['ip', 'netns', 'add', name]);
    const ns = new Netns(name);
    await ns.mustExec(['ip', 'link', 'set', 'lo', 'up']);
    return ns;
  }

  /** argv prefix that runs a command inside this namespace */
  get prefix(): string[] { return ['ip', 'netns', 'exec', this.name]; }

  exec(cmd: readonly string[], opts: Parameters<typeof run>[1] = {}): Promise<RunResult> {
    return run([...this.prefix, ...cmd], opts);
  }

  mustExec(cmd: readonly string[], opts: Parameters<typeof run>[1] = {}): Promise<RunResult> {
    return must([...this.prefix, ...cmd], opts);
  }

  async ip(lines: readonly string[]): Promise<void> {
    if (lines.length) await this.mustExec(['ip', '-batch', '-'], { input: lines.join('\n') + '\n' });
  }

  async sysctl(settings: Record<string, string | number>): Promise<void> {
    await this.mustExec(['sysctl', '-q', '-w', ...Object.entries(settings).map(([k, v]) => `${k}=${v}`)]);
  }

  /**
   * A long-running process inside the namespace; killed by pid at cleanup if still alive.
   * `stdin: 'pipe'` keeps its stdin open (a process that exits when it closes: the API relay).
   */
  spawn(cmd: readonly string[], opts: { stderrLines?: (line: string) => void; stdoutLines?: (line: string) => void; stdin?: 'ignore' | 'pipe' } = {}): ResultPromise {
    const p = execa('ip', ['netns', 'exec', this.name, ...cmd], { reject: false, buffer: false, stdin: opts.stdin ?? 'ignore', stdout: opts.stdoutLines ? 'pipe' : 'ignore', stderr: opts.stderrLines ? 'pipe' : 'ignore' });
    children.add(p);
    void p.finally(() => children.delete(p));
    const lines = (stream: NodeJS.ReadableStream, each: (line: string) => void): void => {
      let rest = '';
      stream.on('data', (c: Buffer) => {
        rest += c.toString();
        const ls = rest.split('\n');
        rest = ls.pop()!;
        for (const l of ls) each(l);
      });
    };
    if (opts.stderrLines) lines(p.stderr!, opts.stderrLines);
    if (opts.stdoutLines) lines(p.stdout!, opts.stdoutLines);
    return p;
  }

  /**
   * Removes every rule synchronously (nft, and legacy iptables if it has tables), so that
   * deleting the namespace afterwards does not leave the kernel freeing a big ruleset in the
   * background while the next measurement runs.
   */
  async flushRules(): Promise<void> {
    await this.exec(['nft', 'flush', 'ruleset'], { timeoutMs: 600_000 });
    const legacy = await this.exec(['cat', '/proc/net/ip_tables_names']);
    if (legacy.exitCode === 0 && legacy.stdout.trim()) {
      const tables = legacy.stdout.trim().split('\n').map((t) => t.trim()).filter((t) => /^[a-z]+$/.test(t));
      await this.exec(['iptables-legacy-restore'], { input: tables.map((t) => `*${t}\nCOMMIT\n`).join(''), timeoutMs: 600_000 });
    }
  }

  async destroy(): Promise<void> {
    if (!live.has(this.name)) return;
    await run(['ip', 'netns', 'del', this.name]);
    live.delete(this.name);
  }
}

// ---- cleanup registry ----------------------------------------------------------------------

/** An undo step: `sync` must work on its own (the exit hook cannot await), `async` is preferred when given. */
export interface Cleanup { readonly name: string; readonly sync: () => void; readonly async?: () => Promise<void> }
const cleanups: Cleanup[] = [];

/**
 * Registers an undo step (steps run last-registered first). `run()` runs it now, once (and
 * unregisters it); errors are thrown to the caller there, and only logged at cleanup.
 */
export function registerCleanup(c: Cleanup): { run(): Promise<void> } {
  cleanups.push(c);
  return {
    async run() {
      const i = cleanups.indexOf(c);
      if (i < 0) return; // already run by cleanupAll / cleanupSync
      cleanups.splice(i, 1);
      await (c.async ? c.async() : c.sync());
    },
  };
}

/** Stop our own children (by pid), undo the registered steps, then remove our namespaces. Safe to call twice. */
export async function cleanupAll(): Promise<void> {
  for (const p of [...children]) {
    if (p.pid && p.exitCode === null) { try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ } }
  }
  await Promise.allSettled([...children]);
  while (cleanups.length) {
    const c = cleanups.pop()!;
    try { await (c.async ? c.async() : c.sync()); } catch (e) { process.stderr.write(`cleanup ${c.name}: ${(e as Error).message.split('\n')[0]}\n`); }
  }
  for (const name of [...live]) { await run(['ip', 'netns', 'del', name]); live.delete(name); }
}

export function cleanupSync(): void {
  for (const p of children) if (p.pid) { try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ } }
  while (cleanups.length) {
    const c = cleanups.pop()!;
    try { c.sync(); } catch (e) { process.stderr.write(`cleanup ${c.name}: ${(e as Error).message.split('\n')[0]}\n`); }
  }
  for (const name of live) spawnSync('ip', ['netns', 'del', name]);
  live.clear();
}

/** Namespaces of earlier bench runs whose process is gone (a crash, kill -9): removed. */
export async function removeOrphans(): Promise<string[]> {
  const r = await run(['ip', 'netns', 'list']);
  const removed: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = new RegExp(`^${PREFIX}-[a-z0-9]+-(\\d+)-\\d+$`).exec(name);
    if (!m || Number(m[1]) === process.pid || existsSync(`/proc/${m[1]}`)) continue;
    await run(['ip', 'netns', 'del', name]);
    removed.push(name);
  }
  return removed;
}

export function liveNamespaces(): number { return live.size; }

// ---- measured loads ------------------------------------------------------------------------

const TIME_MARK = '__bench_time=';
const TIME_FORMAT = `${TIME_MARK}%M %U %S`;

export interface Load {
  readonly ok: boolean; readonly ms: number; readonly rssKB: number | undefined; readonly stderr: string; readonly timedOut: boolean;
  /** CPU seconds of the loader in user space (nft: parse, evaluate) and in the kernel (the transaction) */
  readonly userSec?: number; readonly sysSec?: number;
}

/**
 * Runs a loader (nft -f, iptables-restore) inside a namespace under /usr/bin/time, which
 * reports the peak RSS and the user / system CPU time of the loader process (`ip netns exec`
 * execs it in place).
 */
export async function timedLoad(ns: Netns, cmd: readonly string[], opts: { input?: string; inputFile?: string; timeoutMs?: number }): Promise<Load> {
  const r = await run(['/usr/bin/time', '-f', TIME_FORMAT, ...ns.prefix, ...cmd], opts);
  return parseTimed(r);
}

export function timedPrefix(ns: Netns): string[] {
  return ['/usr/bin/time', '-f', TIME_FORMAT, ...ns.prefix];
}

export function parseTimed(r: RunResult): Load {
  const lines = r.stderr.split('\n');
  let rssKB: number | undefined, userSec: number | undefined, sysSec: number | undefined;
  const rest: string[] = [];
  for (const l of lines) {
    const i = l.indexOf(TIME_MARK);
    if (i >= 0) [rssKB, userSec, sysSec] = l.slice(i + TIME_MARK.length).trim().split(/\s+/).map(Number);
    else rest.push(l);
  }
  return { ok: r.exitCode === 0, ms: r.ms, rssKB, stderr: rest.join('\n').trim(), timedOut: r.timedOut, ...(userSec !== undefined && Number.isFinite(userSec) ? { userSec } : {}), ...(sysSec !== undefined && Number.isFinite(sysSec) ? { sysSec } : {}) };
}

export function rssOf(pid: number): number | undefined {
  return statusKB(pid, 'VmRSS');
}

/** A field of /proc/PID/status in kB (VmRSS, VmHWM: the peak RSS so far), or undefined when the process is gone. */
export function statusKB(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch { return undefined; }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A timer for Promise.race that does not keep the process alive and can be cancelled. */
export function deadline(ms: number): { promise: Promise<'timeout'>; cancel: () => void } {
  let t: NodeJS.Timeout | undefined;
  const promise = new Promise<'timeout'>((r) => { t = setTimeout(() => r('timeout'), ms); t.unref(); });
  return { promise, cancel: () => clearTimeout(t) };
}

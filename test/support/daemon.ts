// `nftproxy run` as a real child process inside a test namespace, with its JSON log lines
// collected so tests can wait for "synced" and read what it decided.
import { type ResultPromise, execa } from 'execa';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/nftproxy.js', import.meta.url));

export interface LogLine { level: number; msg: string; [k: string]: unknown }

export interface DaemonOptions {
  /** Run with nftproxy's own BPF defaults (--bpf=auto, the host's pin dir): only for a test
   * that checks those defaults stay contained in a test namespace. */
  bpfDefaults?: boolean;
  /** How to enter the namespace instead of `how`, e.g. nsenter --mount=… --net=… */
  enter?: string[];
}

export class Daemon {
  readonly logs: LogLine[] = [];
  private waiters: { pred: (l: LogLine) => boolean; from: number; resolve: (l: LogLine) => void }[] = [];
  readonly proc: ResultPromise;
  exited: Promise<number>;

  /** `nsenter`: keep the host's /sys (cgroup and BPF filesystems), which `ip netns exec` hides. */
  constructor(ns: string, args: string[], env: Record<string, string | undefined> = {}, how: 'ip-netns-exec' | 'nsenter' = 'ip-netns-exec', opts: DaemonOptions = {}) {
    // Never the host's cgroup: tests that want BPF pass --bpf and their own --bpf-cgroup.
    // With --bpf off the daemon removes programs a previous run left pinned: point it at a pin
    // directory that cannot exist, never the host's /sys/fs/bpf/nftproxy.
    const bpf = opts.bpfDefaults || args.some((a) => a === '--bpf' || a.startsWith('--bpf=')) ? [] : ['--bpf', 'off', '--bpf-pin-dir', '/nonexistent/nftproxy-test-pins'];
    // The inspection socket's default path is the host's /run/nftproxy: tests that want one give --socket.
    const socket = args.some((a) => a === '--socket' || a.startsWith('--socket=')) ? [] : ['--socket', ''];
    const enter = opts.enter ?? (how === 'nsenter' ? ['nsenter', `--net=/run/netns/${ns}`] : ['ip', 'netns', 'exec', ns]);
    this.proc = execa(enter[0]!, [...enter.slice(1), process.execPath, BIN, 'run', ...bpf, ...socket, ...args], { reject: false, buffer: false, stdin: 'ignore', stdout: 'ignore', env });
    let rest = '';
    this.proc.stderr!.on('data', (chunk: Buffer) => {
      rest += chunk.toString();
      const lines = rest.split('\n');
      rest = lines.pop()!;
      for (const text of lines) {
        let l: LogLine;
        try { l = JSON.parse(text) as LogLine; } catch { l = { level: 60, msg: text }; }
        this.logs.push(l);
        for (const w of [...this.waiters]) {
          if (this.logs.length - 1 >= w.from && w.pred(l)) { this.waiters.splice(this.waiters.indexOf(w), 1); w.resolve(l); }
        }
      }
    });
    this.exited = this.proc.then((r) => r.exitCode ?? (r.signal ? 128 : -1));
  }

  /** The next log line (after `from`, default: now) matching pred. */
  waitFor(pred: (l: LogLine) => boolean, timeoutMs = 15_000, from = this.logs.length): Promise<LogLine> {
    const seen = this.logs.slice(from).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for a log line; last lines:\n${this.logs.slice(-8).map((l) => JSON.stringify(l)).join('\n')}`)), timeoutMs);
      this.waiters.push({ pred, from, resolve: (l) => { clearTimeout(t); resolve(l); } });
    });
  }

  /** The node process's pid inside `ip netns exec` (it execs, so it is the same pid). */
  kill(signal: NodeJS.Signals): void {
    this.proc.kill(signal);
  }

  /** SIGTERM, SIGKILL if it has not exited after `graceMs`; resolves to its exit code. */
  async stop(graceMs = 5000): Promise<number> {
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

export const synced = (l: LogLine): boolean => l.msg === 'synced';

/** GET a URL from inside a namespace (the daemon's servers live there). */
export async function httpGet(ns: string, url: string): Promise<{ status: number; body: string }> {
  const script = `fetch(${JSON.stringify(url)}).then(async (r) => { process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })); }, (e) => { process.stdout.write(JSON.stringify({ status: 0, body: String(e.cause ?? e) })); })`;
  const r = await execa('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { reject: false });
  return JSON.parse(String(r.stdout)) as { status: number; body: string };
}

// Throwaway network namespaces for tests: unique names, always removed, nothing ever
// runs in the root namespace.
import { execa } from 'execa';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const canUseKernel = process.getuid?.() === 0 && ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft'].some((p) => existsSync(p));
export const KERNEL_SKIP_REASON = 'needs root and nft (real kernel in a network namespace)';

let counter = 0;
const uniqueName = (tag: string): string => `npx-${tag}-${process.pid}-${++counter}`;
/** The pid of the process that named a test namespace (uniqueName); undefined: not a test namespace. */
export function makerOf(name: string): number | undefined {
  const m = /^npx-[a-z0-9-]+?-(\d+)-\d+$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

// Namespaces created here and not yet removed. If the test process exits without reaching
// its finally blocks (an uncaught error, a worker torn down on timeout), the exit hook still
// removes them: a leaked namespace would outlive the test run.
const live = new Set<string>();
process.once('exit', () => {
  for (const name of live) spawnSync('ip', ['netns', 'del', name]);
});

/** Names of the namespaces this process created and has not removed yet. */
export const liveNetns = (): string[] => [...live];

/** Namespaces that exist now (`ip netns list`) and were named by this process. */
export async function netnsOfThisProcess(): Promise<string[]> {
  const r = await execa('ip', ['netns', 'list'], { reject: false });
  return String(r.stdout).split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith('npx-') && n.includes(`-${process.pid}-`));
}

export async function withNetns<T>(tag: string, fn: (exec: (cmd: string[], input?: string) => Promise<{ stdout: string; stderr: string; exitCode: number }>, name: string) => Promise<T>): Promise<T> {
  const name = uniqueName(tag);
  await execa('ip', ['netns', 'add', name]);
  live.add(name);
  try {
    return await fn(async (cmd, input) => {
      const r = await execa('ip', ['netns', 'exec', name, ...cmd], { input, reject: false });
      return { stdout: String(r.stdout), stderr: String(r.stderr), exitCode: r.exitCode ?? -1 };
    }, name);
  } finally {
    await execa('ip', ['netns', 'del', name], { reject: false });
    live.delete(name);
  }
}

/** A namespace that lives longer than one callback (a lab with many namespaces). */
export class Netns {
  private constructor(readonly name: string) {}

  static async create(tag: string): Promise<Netns> {
    const name = uniqueName(tag);
    await execa('ip', ['netns', 'add', name]);
    live.add(name);
    return new Netns(name);
  }

  /** Runs a command inside the namespace; throws with its stderr when it fails. */
  async exec(cmd: string[], input?: string): Promise<string> {
    const r = await execa('ip', ['netns', 'exec', this.name, ...cmd], { input, reject: false });
    if (r.exitCode !== 0) throw new Error(`[${this.name}] ${cmd.join(' ')} failed (${r.exitCode}): ${String(r.stderr).trim()}`);
    return String(r.stdout);
  }

  /** Several `ip` commands in one process (`ip -batch`), each line like `link set lo up`. */
  async ip(lines: string[]): Promise<void> {
    if (lines.length === 0) return;
    const r = await execa('ip', ['-n', this.name, '-batch', '-'], { input: lines.join('\n') + '\n', reject: false });
    if (r.exitCode !== 0) throw new Error(`[${this.name}] ip -batch failed: ${String(r.stderr).trim()}\n${lines.join('\n')}`);
  }

  async sysctl(settings: Record<string, string | number>): Promise<void> {
    await this.exec(['sysctl', '-q', '-w', ...Object.entries(settings).map(([k, v]) => `${k}=${v}`)]);
  }

  async destroy(): Promise<void> {
    await execa('ip', ['netns', 'del', this.name], { reject: false });
    live.delete(this.name);
  }
}

// Throwaway network namespaces for tests: unique names, always removed, nothing ever
// runs in the root namespace.
import { execa } from 'execa';
import { existsSync } from 'node:fs';

export const canUseKernel = process.getuid?.() === 0 && ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft'].some((p) => existsSync(p));
export const KERNEL_SKIP_REASON = 'needs root and nft (real kernel in a network namespace)';

let counter = 0;
export async function withNetns<T>(tag: string, fn: (exec: (cmd: string[], input?: string) => Promise<{ stdout: string; stderr: string; exitCode: number }>) => Promise<T>): Promise<T> {
  const name = `npx-${tag}-${process.pid}-${++counter}`;
  await execa('ip', ['netns', 'add', name]);
  try {
    return await fn(async (cmd, input) => {
      const r = await execa('ip', ['netns', 'exec', name, ...cmd], { input, reject: false });
      return { stdout: String(r.stdout), stderr: String(r.stderr), exitCode: r.exitCode ?? -1 };
    });
  } finally {
    await execa('ip', ['netns', 'del', name], { reject: false });
  }
}

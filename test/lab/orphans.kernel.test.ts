// The sweeper of the suite's global setup: it removes a test namespace whose maker has exited,
// and leaves one whose maker still runs (a parallel run of the suite).
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { canUseKernel, KERNEL_SKIP_REASON } from './netns.js';
import { removeOrphanedNetns } from './orphans.js';

const exists = async (name: string): Promise<boolean> => String((await execa('ip', ['netns', 'list'])).stdout).split('\n').some((l) => l.split(' ')[0] === name);

describe.skipIf(!canUseKernel)(`orphaned test namespaces${canUseKernel ? '' : ` [skipped: ${KERNEL_SKIP_REASON}]`}`, () => {
  it('removes the namespace of an exited process, keeps the one of a live process', async () => {
    const child = execa('true');
    const deadPid = child.pid!;
    await child; // exited and reaped: nothing runs under that pid now
    const orphan = `npx-orph-${deadPid}-1`, ours = `npx-orph-${process.pid}-1`;
    await execa('ip', ['netns', 'add', orphan]);
    await execa('ip', ['netns', 'add', ours]);
    try {
      const removed = await removeOrphanedNetns();
      expect(removed).toContain(orphan);
      expect(removed).not.toContain(ours);
      expect(await exists(orphan)).toBe(false);
      expect(await exists(ours)).toBe(true);
    } finally {
      await execa('ip', ['netns', 'del', orphan], { reject: false });
      await execa('ip', ['netns', 'del', ours], { reject: false });
    }
  });
});

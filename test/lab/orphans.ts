// Namespaces a test process made and did not live to remove. Every test namespace is named
// npx-TAG-PID-N by the process that made it (netns.ts: makerOf), which removes it in a finally
// block, or at exit. A worker killed outright (a signal, a run torn down mid-test) runs neither,
// and its namespaces would outlive the run on the host. Their maker is gone, so nothing else will remove
// them: the suite's global setup and teardown do (vitest.config.ts). A namespace whose maker
// still runs (a parallel run of the suite) is left alone.
import { execa } from 'execa';
import { processAlive } from '../../src/cli/process-alive.js';
import { makerOf } from './netns.js';

/** Removes the test namespaces whose maker has exited; returns their names. */
export async function removeOrphanedNetns(): Promise<string[]> {
  const r = await execa('ip', ['netns', 'list'], { reject: false });
  if (r.exitCode !== 0) return [];
  const orphans = String(r.stdout).split('\n').map((l) => l.split(' ')[0]!).filter((n) => {
    const pid = makerOf(n);
    return pid !== undefined && !processAlive(pid);
  });
  for (const name of orphans) await execa('ip', ['netns', 'del', name], { reject: false });
  return orphans;
}

// vitest's global setup: runs in the main process, before the first worker and after the last.
import { removeOrphanedNetns } from './orphans.js';

const sweep = async (when: string): Promise<void> => {
  if (process.getuid?.() !== 0) return;
  const gone = await removeOrphanedNetns();
  if (gone.length) console.warn(`removed ${gone.length} test namespaces left by exited test processes (${when}): ${gone.join(', ')}`);
};

export async function setup(): Promise<void> { await sweep('before the run'); }
export async function teardown(): Promise<void> { await sweep('after the run'); }

// One question, asked of the real kernel: does the table the netlink writer builds list the
// same as the table `nft -f` builds from dump's text? Two throwaway namespaces: the writer
// fills one (a full sync, the daemon's path), nft the other; both are read back with
// `nft -j list table` and normalized (handles, element order).
import type { KFamily } from '../../src/render/kernel/family.js';
import { Applier } from '../../src/apply/applier.js';
import { NetlinkWriter } from '../../src/apply/netlink/writer.js';
import { withNetns } from '../lab/netns.js';
import { readKernelTables } from './kernel-table.js';

type Exec = Parameters<Parameters<typeof withNetns>[1]>[0];

/** Runs fn with a pair of namespaces: `viaNetlink` and `viaNft` load into one each. */
export async function withEquivalence<T>(tag: string, fn: (pair: EquivalencePair) => Promise<T>): Promise<T> {
  return withNetns(`${tag}n`, async (execN) => withNetns(`${tag}t`, async (execT) => {
    const ns = (await execN(['ip', 'netns', 'identify'])).stdout.trim();
    const writer = new NetlinkWriter({ netns: `/run/netns/${ns}` });
    try {
      return await fn(new EquivalencePair(new Applier(writer), execN, execT));
    } finally {
      await writer.close();
    }
  }));
}

export class EquivalencePair {
  constructor(private readonly applier: Applier, private readonly execN: Exec, private readonly execT: Exec) {}

  /** Loads both ways; the two kernels' listings, normalized. */
  async load(fams: readonly KFamily[], text: string): Promise<{ netlink: string; nft: string }> {
    await this.applier.sync(fams, { full: true });
    // the test's own namespace: start nft's side from nothing, as the writer's full sync does
    await this.execT(['nft', 'flush', 'ruleset']);
    const r = await this.execT(['nft', '-f', '-'], text);
    if (r.exitCode !== 0) throw new Error(`nft -f refused dump's text: ${r.stderr}`);
    const [netlink, nft] = await Promise.all([readKernelTables(this.execN), readKernelTables(this.execT)]);
    return { netlink, nft };
  }
}

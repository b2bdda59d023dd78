// For every file in examples/, under configurations that exercise every rule shape (cluster
// CIDR or not, masquerade-all, NodePorts on every address, dual-stack): the table the netlink
// writer builds (the daemon's path: compileParts -> kernelFamily -> one batch) lists exactly as
// the table `nft -f` builds from dump's text. The property test (test/property/) asks the same
// of random valid and hostile snapshots.
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compileParts } from '../../src/compile/compile.js';
import { buildModel } from '../../src/model/build-model.js';
import { resolveConfig } from '../../src/model/config.js';
import { kernelFamily } from '../../src/render/kernel/family.js';
import { renderText } from '../../src/render/nft-text.js';
import { assemble } from '../../src/compile/compile.js';
import { readManifests } from '../../src/sources/manifests.js';
import { loadBaseConfig, type ConfigFlags } from '../../src/cli/config.js';
import { canUseKernel, KERNEL_SKIP_REASON } from '../lab/netns.js';
import { withEquivalence } from '../support/equivalence.js';

const EXAMPLES = readdirSync(new URL('../../examples/', import.meta.url)).filter((f) => f.endsWith('.yaml')).sort();
const CONFIGS: readonly { name: string; flags: ConfigFlags }[] = [
  { name: 'cluster CIDR, service CIDR, primary NodePorts', flags: { node: 'node-a', clusterCidr: '10.244.0.0/16,fd00:10:244::/56', serviceCidr: '10.96.0.0/12,fd00:10:96::/112', nodeIp: [], ipFamilies: 'dual' } },
  { name: 'no detector, NodePorts on every address, masquerade-all', flags: { node: 'node-a', nodeportAddresses: '0.0.0.0/0,::/0', masqueradeAll: true, nodeIp: ['192.168.0.2', '192.168.0.3', '2001:db8::2'], ipFamilies: 'dual' } },
  { name: 'byte-aligned and unaligned prefixes, NodePorts on CIDRs', flags: { node: 'node-b', clusterCidr: '10.0.0.0/8,fd00:10::/60', serviceCidr: '172.30.0.0/17,fd00:10:96::/108', nodeportAddresses: '192.168.0.0/24,2001:db8::/64', nodeIp: ['192.168.0.2', '2001:db8::2'] } },
];

describe.skipIf(!canUseKernel)(`netlink writer == nft -f of dump's text${canUseKernel ? '' : ` [skipped: ${KERNEL_SKIP_REASON}]`}`, () => {
  for (const c of CONFIGS) {
    it(`every example, ${c.name}`, async () => {
      const base = await loadBaseConfig(c.flags);
      if (!base.ok) throw new Error(base.error);
      await withEquivalence('eqx', async (pair) => {
        for (const file of EXAMPLES) {
          const objects = await readManifests([new URL(`../../examples/${file}`, import.meta.url).pathname]);
          if (!objects.ok) throw new Error(JSON.stringify(objects.error));
          const { model } = buildModel(objects.value);
          const { config } = resolveConfig(base.value, model);
          const parts = compileParts(model, config);
          const { netlink, nft } = await pair.load(parts.map(kernelFamily), renderText(assemble(parts)));
          expect(netlink, file).toBe(nft);
          expect(netlink, file).toContain('"table"');
        }
      });
    }, 60_000);
  }
});

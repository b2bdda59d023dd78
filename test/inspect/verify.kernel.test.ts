// `nftproxy verify -f` against tables the product's applier loaded (no daemon: nothing repairs
// drift behind the test's back), in a throwaway namespace:
// - every example under three configurations reads back as intended: the canonical forms of
//   rules (registers, defaults, nat flags, anonymous sets) agree between the encoder and the
//   kernel's dump, so "nothing to report" is not luck;
// - one change by another process per row, and the exact report: which service port, what is
//   missing, extra or changed; exit 1.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Applier } from '../../src/apply/applier.js';
import { NetlinkWriter } from '../../src/apply/netlink/writer.js';
import { loadBaseConfig } from '../../src/cli/config.js';
import { compileInputs } from '../../src/cli/load-inputs.js';
import { readManifests } from '../../src/sources/manifests.js';
import { canUseKernel, KERNEL_SKIP_REASON, Netns } from '../lab/netns.js';
import { BIN } from '../support/daemon.js';
import { must } from '../support/must.js';

const EXAMPLES = new URL('../../examples/', import.meta.url).pathname;
const BASE = ['--node', 'node-a', '--cluster-cidr', '10.244.0.0/16,fd00:10:244::/64', '--service-cidr', '10.96.0.0/12,fd00:10:96::/112', '--ip-families', 'dual'];
const CONFIGS: [string, string[]][] = [
  ['the README\'s flags', BASE],
  ['--masquerade-all, NodePorts on every address', [...BASE, '--masquerade-all', '--nodeport-addresses', '0.0.0.0/0,::/0']],
  ['no cluster CIDR (no local-traffic detector)', ['--node', 'node-a', '--ip-families', 'dual']],
];

/** what `-f examples/ FLAGS` compiles to, as the CLI compiles it */
async function compiled(flags: string[]): Promise<ReturnType<typeof compileInputs>> {
  const get = (f: string): string | undefined => { const i = flags.indexOf(f); return i < 0 ? undefined : flags[i + 1]; };
  const base = must(await loadBaseConfig({ node: get('--node'), clusterCidr: get('--cluster-cidr'), serviceCidr: get('--service-cidr'), nodeportAddresses: get('--nodeport-addresses'), ipFamilies: get('--ip-families'), masqueradeAll: flags.includes('--masquerade-all') || undefined }));
  const objects = await readManifests([EXAMPLES]);
  if (!objects.ok) throw new Error(objects.error.message);
  return compileInputs(objects.value, base, () => undefined);
}

describe.skipIf(!canUseKernel)(`nftproxy verify against tables the applier loaded${canUseKernel ? '' : ` [skipped: ${KERNEL_SKIP_REASON}]`}`, () => {
  let ns: Netns;
  let writer: NetlinkWriter;
  let dir: string;
  const verify = async (flags: string[], json = false): Promise<{ code: number; stdout: string; stderr: string }> => {
    const r = await execa('ip', ['netns', 'exec', ns.name, process.execPath, BIN, 'verify', '-f', EXAMPLES, ...flags, ...(json ? ['--json'] : [])], { reject: false });
    return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  };
  const load = async (flags: string[]): Promise<void> => {
    await new Applier(writer).syncRuleset((await compiled(flags)).ruleset, { full: true });
  };

  beforeAll(async () => {
    ns = await Netns.create('verify');
    writer = new NetlinkWriter({ netns: `/run/netns/${ns.name}` });
    dir = await mkdtemp(join(tmpdir(), 'nftproxy-verify-'));
  });
  afterAll(async () => {
    await writer?.close();
    await ns?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.each(CONFIGS)('examples/ under %s: as intended, exit 0', async (_name, flags) => {
    await load(flags);
    const r = await verify(flags);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^table ip nftproxy: as intended \(\d+ chains, \d+ rules, \d+ sets, \d+ elements\)\ntable ip6 nftproxy: as intended \(/);
  }, 30_000);

  // nft commands another process might run, and the report they must give (exit 1)
  it.each([
    {
      name: 'an element of a shared endpoints map deleted: its service port',
      nft: [['delete', 'element', 'ip', 'nftproxy', 'endpoints-cluster-2', '{ 10.96.0.20 . tcp . 80 . 1 }']],
      want: ['nodeport-demo/gateway port http 80/TCP (ip):', '  missing element 10.96.0.20 . tcp . 80 . 1 : 10.244.2.20 . 8080 in map endpoints-cluster-2'],
    },
    {
      name: 'an element nobody intends, under a service port\'s address and port',
      nft: [['add', 'element', 'ip', 'nftproxy', 'endpoints-cluster-2', '{ 10.96.0.20 . tcp . 80 . 7 : 192.0.2.1 . 80 }']],
      want: ['nodeport-demo/gateway port http 80/TCP (ip):', '  extra element 10.96.0.20 . tcp . 80 . 7 : 192.0.2.1 . 80 in map endpoints-cluster-2'],
    },
    {
      name: 'a dispatch element pointed elsewhere: changed, kernel vs intended',
      nft: [['delete', 'element', 'ip', 'nftproxy', 'service-ips', '{ 10.96.0.60 . tcp . 80 }'], ['add', 'element', 'ip', 'nftproxy', 'service-ips', '{ 10.96.0.60 . tcp . 80 : drop }']],
      want: ['affinity-demo/cart port http 80/TCP (ip):', '  changed element 10.96.0.60 . tcp . 80 in map service-ips', '      kernel:   10.96.0.60 . tcp . 80 : drop', '      intended: 10.96.0.60 . tcp . 80 comment "affinity-demo/cart:http" : goto service-TMKBZNGK-affinity-demo/cart/tcp/http'],
    },
    {
      name: 'a dispatch entry moved from its endpoint-count chain\'s set to a drop verdict',
      nft: [['delete', 'element', 'ip', 'nftproxy', 'service-ips-dnat-cluster-3', '{ 10.96.0.10 . tcp . 80 }'], ['add', 'element', 'ip', 'nftproxy', 'service-ips', '{ 10.96.0.10 . tcp . 80 : drop }']],
      want: ['shop/web port http 80/TCP (ip):', '  extra element 10.96.0.10 . tcp . 80 : drop in map service-ips', '  missing element 10.96.0.10 . tcp . 80 comment "shop/web:http" in set service-ips-dnat-cluster-3'],
    },
    {
      name: 'a service port\'s own chain flushed',
      nft: [['flush', 'chain', 'ip', 'nftproxy', 'firewall-3NRABODH-lb-demo/storefront/tcp/https']],
      want: ['lb-demo/storefront port https 443/TCP (ip):', '  missing rule 1 of chain firewall-3NRABODH-lb-demo/storefront/tcp/https: ip saddr != { 172.16.0.0/12, 192.168.0.0/24, 203.0.113.10, 203.0.113.11 } drop comment "source not in loadBalancerSourceRanges"'],
    },
    {
      name: 'a cluster IP gone from the set: the ports that answer on it',
      nft: [['delete', 'element', 'ip', 'nftproxy', 'cluster-ips', '{ 10.96.0.10 }']],
      want: ['shop/web port http 80/TCP, shop/web port metrics 9090/TCP (ip):', '  missing element 10.96.0.10 in set cluster-ips'],
    },
    {
      name: 'a base chain\'s rule deleted: the table\'s own',
      nft: [['flush', 'chain', 'ip', 'nftproxy', 'nat-output']],
      want: ['table ip nftproxy, not of one service port:', '  missing rule 1 of chain nat-output: jump services'],
    },
    {
      name: 'a chain and a set nobody intends',
      nft: [['add', 'chain', 'ip', 'nftproxy', 'mine'], ['add', 'set', 'ip', 'nftproxy', 'theirs', '{ type ipv4_addr; }']],
      want: ['table ip nftproxy, not of one service port:', '  extra chain mine', '  extra set theirs (0 elements)'],
    },
    {
      name: 'the IPv6 table deleted',
      nft: [['delete', 'table', 'ip6', 'nftproxy']],
      want: ['table ip6 nftproxy, not of one service port:', '  missing table ip6 nftproxy'],
    },
  ])('$name', async ({ nft, want }) => {
    await load(BASE);
    for (const cmd of nft) await ns.exec(['nft', ...cmd]);
    const r = await verify(BASE);
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stdout.split('\n');
    expect(lines.slice(0, -1)).toEqual(want);
    expect(lines.at(-1)).toMatch(/^\d+ differences?(, \d+ service ports? affected)?: the kernel does not hold what nftproxy intends$/);
  }, 30_000);

  it('--json: the same, for machines', async () => {
    await load(BASE);
    await ns.exec(['nft', 'delete', 'element', 'ip', 'nftproxy', 'service-ips-dnat-cluster-3', '{ 10.96.0.10 . tcp . 80 }']);
    const r = await verify(BASE, true);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({
      ok: false, source: 'files',
      differences: [{ family: 'ip', owners: ['shop/web/tcp/http'], servicePorts: ['shop/web port http 80/TCP'], kind: 'missing', what: 'element 10.96.0.10 . tcp . 80 comment "shop/web:http" in set service-ips-dnat-cluster-3' }],
    });
  }, 30_000);
});

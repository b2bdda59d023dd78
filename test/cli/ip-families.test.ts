// Which families are compiled when --ip-families is not given, and the flag itself.
// `run` asks the host (hostIPFamilies: IPv6 enabled in its network namespace); dump and explain
// are offline and take the families of their inputs, never the machine's, so the same files
// give the same output everywhere.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { hostIPFamilies } from '../../src/cli/host-families.js';
import { type BaseConfig, resolveConfig } from '../../src/model/config.js';
import { buildModel } from '../../src/model/build-model.js';
import { parseIP, type IP } from '../../src/model/ip.js';
import type { IPFamilies } from '../../src/model/config.js';
import { service } from '../support/builders.js';

const dir = mkdtempSync(join(tmpdir(), 'nftproxy-families-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('run: what the host carries (hostIPFamilies), read from a directory laid out as /proc', () => {
  it.each([
    { name: 'IPv6 enabled', ifInet6: true, disable: '0', want: ['ipv4', 'ipv6'] },
    { name: 'IPv6 switched off (net.ipv6.conf.all.disable_ipv6 = 1)', ifInet6: true, disable: '1', want: ['ipv4'] },
    { name: 'no IPv6 in the kernel (ipv6.disable=1: neither file exists)', ifInet6: false, disable: undefined, want: ['ipv4'] },
  ])('$name', async ({ name, ifInet6, disable, want }) => {
    const proc = join(dir, name.replace(/\W+/g, '-'));
    mkdirSync(join(proc, 'net'), { recursive: true });
    if (ifInet6) writeFileSync(join(proc, 'net', 'if_inet6'), '');
    if (disable !== undefined) {
      mkdirSync(join(proc, 'sys/net/ipv6/conf/all'), { recursive: true });
      writeFileSync(join(proc, 'sys/net/ipv6/conf/all/disable_ipv6'), `${disable}\n`);
    }
    expect((await hostIPFamilies(proc)).ipFamilies).toEqual(want);
  });
});

describe('dump and explain: the families of the node\'s addresses and of the services, unless --ip-families says', () => {
  const ip = (s: string): IP => { const r = parseIP(s); if (!r.ok) throw new Error(r.error); return r.value; };
  const v4 = service('ns', 'v4', { clusterIP: '10.96.0.4', ports: [{ port: 80 }] });
  const v6 = service('ns', 'v6', { clusterIP: 'fd00::6', clusterIPs: ['fd00::6'], ipFamilies: ['IPv6'], ports: [{ port: 80 }] });
  const base = (nodeIPs: string[], ipFamilies?: IPFamilies): BaseConfig => ({
    nodeName: 'node-a', nodeIPs: nodeIPs.map(ip), clusterCIDRs: [], serviceCIDRs: [], nodePortAddresses: { kind: 'primary' }, masqueradeAll: false, ...(ipFamilies ? { ipFamilies } : {}),
  });
  it.each([
    { name: 'node IPv4, IPv4 services', nodeIPs: ['192.168.0.2'], objects: [v4], want: ['ipv4'] },
    { name: 'node IPv4, an IPv6 service', nodeIPs: ['192.168.0.2'], objects: [v4, v6], want: ['ipv4', 'ipv6'] },
    { name: 'node IPv6, IPv4 services', nodeIPs: ['2001:db8::2'], objects: [v4], want: ['ipv4', 'ipv6'] },
    { name: 'node both, no services', nodeIPs: ['192.168.0.2', '2001:db8::2'], objects: [], want: ['ipv4', 'ipv6'] },
    { name: 'nothing at all: IPv4', nodeIPs: [], objects: [], want: ['ipv4'] },
    { name: '--ip-families ipv6 wins over the inputs', nodeIPs: ['192.168.0.2'], objects: [v4], flag: ['ipv6'] as const, want: ['ipv6'] },
  ])('$name', ({ nodeIPs, objects, flag, want }) => {
    const { model } = buildModel(objects.map((object) => ({ object })));
    expect(resolveConfig(base(nodeIPs, flag), model).config.ipFamilies).toEqual(want);
  });
});

describe('nftproxy dump --ip-families', () => {
  // A dual-stack service on a node whose Node object lists only an IPv4 InternalIP.
  const FILE = join(dir, 'dual.yaml');
  writeFileSync(FILE, `apiVersion: v1
kind: Node
metadata: { name: node-a }
status: { addresses: [{ type: InternalIP, address: 192.168.0.2 }] }
---
apiVersion: v1
kind: Service
metadata: { name: api, namespace: ds }
spec: { ipFamilyPolicy: RequireDualStack, ipFamilies: [IPv4, IPv6], clusterIP: 10.96.0.100, clusterIPs: [10.96.0.100, "fd00:10:96::100"], type: NodePort, ports: [{ port: 80, nodePort: 30100 }] }
`);
  const run = async (args: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = '', err = '';
    const code = await main(args, { out: (s) => { out += s; }, err: (s) => { err += s; } });
    return { code, out, err };
  };
  const tables = (nft: string): string[] => [...nft.matchAll(/^add table (\S+) nftproxy$/gm)].map((m) => m[1]!);

  it('default: both tables; a note says what stands in for the missing IPv6 node IP', async () => {
    const r = await run(['dump', '-f', FILE, '--node', 'node-a']);
    expect({ code: r.code, tables: tables(r.out) }).toEqual({ code: 0, tables: ['ip', 'ip6'] });
    expect(r.out).toContain('fd00:10:96::100');
    expect(r.err).toContain('note: node node-a has no ipv6 address: as in kube-proxy, ::1 stands in for its ipv6 node IP and ipv6 NodePorts are accepted on every local ipv6 address');
  });
  it.each([
    { flag: 'ipv4', want: ['ip'] },
    { flag: 'ipv6', want: ['ip6'] },
    { flag: 'dual', want: ['ip', 'ip6'] },
  ])('--ip-families $flag: $want', async ({ flag, want }) => {
    const r = await run(['dump', '-f', FILE, '--node', 'node-a', '--ip-families', flag]);
    expect({ code: r.code, tables: tables(r.out) }).toEqual({ code: 0, tables: want });
  });
  it('--ip-families ipv5: exit 2, naming the choices', async () => {
    const r = await run(['dump', '-f', FILE, '--node', 'node-a', '--ip-families', 'ipv5']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('ipv4, ipv6, dual');
  });
  it('explain answers for the IPv6 ClusterIP', async () => {
    const r = await run(['explain', '-f', FILE, '--node', 'node-a', '--src', 'fd00:10:244::5', '--dst', '[fd00:10:96::100]:80', '--json']);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.out) as { servicePort?: { service: string } }).servicePort?.service).toBe('ds/api');
  });
});

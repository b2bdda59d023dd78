// Dual stack on a node whose Node object lists addresses of one family only, with real packets:
// `nftproxy run --manifests` with its default families, in the node namespace of a lab
// (test/lab/) whose kernel has addresses of both families. kube-proxy runs both families
// wherever the host carries both, whatever the Node lists (cmd/kube-proxy/app/server.go,
// detectNodeIPs: the missing family's node IP is its loopback address). With the default
// `nodePortAddresses: primary`, that family then has no NodePort CIDR, and a family without one
// accepts NodePorts on every local address of the family (pkg/proxy/util/nodeport_addresses.go,
// NewNodePortAddresses): rows A.3 and B.2/B.3 assert that.
//
// Every row is also traced by explain's tracer on the same inputs compiled in-process, told the
// lab node's real addresses (explain itself knows only the node IPs it is given).
import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, type LabSpec } from '../lab/lab.js';
import { Netns, canUseKernel, KERNEL_SKIP_REASON, liveNetns, netnsOfThisProcess } from '../lab/netns.js';
import type { Observed } from '../lab/outcome.js';
import { type Expect, compileObjects, config, probe, service, slice } from '../support/builders.js';
import { Daemon, type LogLine, httpGet, synced } from '../support/daemon.js';

// ---- the address plan -----------------------------------------------------------------------------
// The lab node's own addresses (on its lo): what its kernel has, whatever the Node object lists.
const H4 = '192.168.0.2', H4B = '192.168.0.3', H6 = '2001:db8::1';
const HOST_ADDRS = [H4, H4B, H6];
const POD4 = '10.0.0.2', POD6 = 'fd00:10::2', EXT4 = '203.0.113.2', EXT6 = '2600:5200::1';
const A4 = '10.180.8.1', B4 = '10.180.8.2', A6 = 'fd00:10::8:1', B6 = 'fd00:10::8:2';
const CLUSTER_CIDRS = ['10.0.0.0/8', 'fd00:10::/64'];
// Nothing about families: the daemon decides them from its namespace.
const FLAGS = ['--node', 'test-node', '--cluster-cidr', CLUSTER_CIDRS.join(','), '--min-sync-period', '100ms'];
const PORTS = [80, 3001, 3002, 3999];
// 24 tries miss one of 2 endpoints with probability 2^-23; 1.5 s outlasts the 1 s SYN
// retransmit after which an IPv6 TCP reject is reported.
const TRIES = 24;
const TIMEOUT_MS = 1500;

const ep = (addr: string, port: number): string => (addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);
const V4 = [ep(A4, 80), ep(B4, 80)], V6 = [ep(A6, 80), ep(B6, 80)];
const Y = true, N = false;

const node = (addresses: string[]): unknown => ({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'test-node' }, status: { addresses: addresses.map((address) => ({ type: 'InternalIP', address })) } });
const slices = (name: string, fams: ('v4' | 'v6')[]): unknown[] => fams.map((f) =>
  slice('ds', name, `${name}-${f}`, [{ name: 'p80', port: 80 }], f === 'v4' ? [{ ip: A4, node: 'node2' }, { ip: B4, node: 'node3' }] : [{ ip: A6, node: 'node2' }, { ip: B6, node: 'node3' }], f === 'v4' ? 'IPv4' : 'IPv6'));

interface Row { id: string; what: string; src: string; dst: string; want: Expect; masq?: boolean }
/** healthCheckNodePort 30300 asked on each address: HTTP status, or 0 when nothing listens there */
type Health = Record<string, number>;
interface Case { tag: string; name: string; nodeLists: string[]; objects: unknown[]; rows: Row[]; note: string; health: Health }
const HC_PORT = 30300;
// eTP Local with its endpoints elsewhere: its health check answers 503 wherever it listens.
const hcService = (spec: Record<string, unknown>): unknown => service('ds', 'hc', {
  type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: HC_PORT, ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3100 }], ...spec,
});
const hcURL = (addr: string): string => `http://${addr.includes(':') ? `[${addr}]` : addr}:${HC_PORT}/`;

const CASES: Case[] = [
  {
    tag: 'ipf4', name: `A. the Node lists IPv4 only (${H4}); a RequireDualStack NodePort service`,
    nodeLists: [H4],
    note: 'node test-node has no ipv6 address: as in kube-proxy, ::1 stands in for its ipv6 node IP and ipv6 NodePorts are accepted on every local ipv6 address',
    objects: [
      service('ds', 'api', { type: 'NodePort', clusterIPs: ['172.30.8.1', 'fd00:10:96::81'], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack', ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }] }),
      ...slices('api', ['v4', 'v6']),
      hcService({ clusterIPs: ['172.30.8.3', 'fd00:10:96::83'], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack' }), ...slices('hc', ['v4', 'v6']),
    ],
    // IPv4: the primary only; IPv6: its wildcard, beside the IPv4 address on the same port
    health: { [H4]: 503, [H4B]: 0, [H6]: 503 },
    rows: [
      { id: 'A.1', what: 'the IPv6 ClusterIP, from a pod', src: POD6, dst: '[fd00:10:96::81]:80', want: V6, masq: N },
      { id: 'A.2', what: 'the IPv4 ClusterIP, from a pod', src: POD4, dst: '172.30.8.1:80', want: V4, masq: N },
      { id: 'A.3', what: 'IPv6 NodePort on an address the Node does not list: every local IPv6 address, as kube-proxy', src: EXT6, dst: `[${H6}]:3001`, want: V6, masq: Y },
      { id: 'A.4', what: 'IPv4 NodePort on the primary IP', src: EXT4, dst: `${H4}:3001`, want: V4, masq: Y },
      { id: 'A.5', what: 'IPv4 NodePort on another local address: the primary only, not proxied', src: EXT4, dst: `${H4B}:3001`, want: '' },
      { id: 'A.6', what: 'control: an IPv6 port no NodePort owns', src: EXT6, dst: `[${H6}]:3999`, want: '' },
    ],
  },
  {
    tag: 'ipf6', name: `B. the Node lists IPv6 only (${H6}); a single-stack IPv4 NodePort service`,
    nodeLists: [H6],
    note: 'node test-node has no ipv4 address: as in kube-proxy, 127.0.0.1 stands in for its ipv4 node IP and ipv4 NodePorts are accepted on every local ipv4 address',
    objects: [
      service('ds', 'web4', { type: 'NodePort', clusterIP: '172.30.8.2', ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3002 }] }),
      ...slices('web4', ['v4']),
      hcService({ clusterIP: '172.30.8.3' }), ...slices('hc', ['v4']),
    ],
    // IPv4: its wildcard; IPv6: the primary
    health: { [H4]: 503, [H4B]: 503, [H6]: 503 },
    rows: [
      { id: 'B.1', what: 'the IPv4 ClusterIP, from a pod', src: POD4, dst: '172.30.8.2:80', want: V4, masq: N },
      { id: 'B.2', what: 'IPv4 NodePort: every local IPv4 address, as kube-proxy', src: EXT4, dst: `${H4}:3002`, want: V4, masq: Y },
      { id: 'B.3', what: 'IPv4 NodePort: every local IPv4 address, as kube-proxy', src: EXT4, dst: `${H4B}:3002`, want: V4, masq: Y },
      { id: 'B.4', what: 'control: the service has no IPv6 half', src: EXT6, dst: `[${H6}]:3002`, want: '' },
    ],
  },
];

// ---- the kernel side ----------------------------------------------------------------------------

const manifests = (c: Case): string => JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [node(c.nodeLists), ...c.objects] });
const starting = (l: LogLine): boolean => l.msg === 'starting';
const tablesOf = async (ns: string): Promise<string[]> => {
  const out = String((await execa('ip', ['netns', 'exec', ns, 'nft', 'list', 'tables'])).stdout);
  return out.split('\n').filter((l) => l.includes('nftproxy')).map((l) => l.trim()).sort();
};

interface Measured { families: unknown; notes: unknown[]; tables: string[]; rows: Map<string, Observed>; health: Health; healthErrors: LogLine[] }

/** The lab and the daemon for one case, every row's outcome, then everything removed. */
async function measure(c: Case): Promise<Measured> {
  const dir = await mkdtemp(join(tmpdir(), 'nftproxy-ipf-'));
  const sources = [...new Set(c.rows.map((r) => r.src))];
  const spec: LabSpec = { nodeIPs: HOST_ADDRS, pods: [A4, B4, A6, B6], clients: sources, selfAddressed: [], ports: PORTS };
  let lab: Lab | undefined, daemon: Daemon | undefined;
  try {
    await writeFile(join(dir, 'cluster.json'), manifests(c));
    lab = await Lab.create(c.tag, spec);
    daemon = new Daemon(lab.nodeNetns, ['--manifests', dir, ...FLAGS]);
    const families = (await daemon.waitFor(starting, 15_000, 0)).ipFamilies;
    await daemon.waitFor(synced, 15_000, 0);
    const notes = daemon.logs.filter((l) => l.msg === 'configuration note').map((l) => l.note);
    const tables = await tablesOf(lab.nodeNetns);
    await lab.forgetConnections();
    const rows = new Map<string, Observed>();
    await Promise.all(c.rows.map(async (r) => { rows.set(r.id, await lab!.probe({ src: r.src, dst: r.dst, proto: 'tcp', count: TRIES, timeoutMs: TIMEOUT_MS })); }));
    // After the rows: the health servers start right after the "synced" line.
    const health: Health = {};
    for (const addr of Object.keys(c.health)) health[addr] = (await httpGet(lab.nodeNetns, hcURL(addr))).status;
    const healthErrors = daemon.logs.filter((l) => l.msg === 'cannot start the service health check server');
    return { families, notes, tables, rows, health, healthErrors };
  } finally {
    if (daemon) await daemon.stop();
    await lab?.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The table row in the notation both the kernel and the tracer are read in. */
const tableOutcome = (r: Row): Observed => ({ got: Array.isArray(r.want) ? [...r.want].sort() : r.want, masq: r.masq ?? (r.want === '' ? false : undefined) });

function tracerOutcome(c: Case, r: Row): Observed {
  const { ruleset, cfg, diagnostics } = compileObjects(c.objects, { nodeName: 'test-node', nodeIPs: c.nodeLists, clusterCIDRs: CLUSTER_CIDRS, ipFamilies: ['ipv4', 'ipv6'] });
  if (diagnostics.length > 0) throw new Error(`objects skipped: ${JSON.stringify(diagnostics)}`);
  const t = probe(ruleset, { ...cfg, nodeIPs: config({ nodeIPs: HOST_ADDRS }).nodeIPs }, r.src, r.dst);
  return { got: t.got, masq: t.got === '' ? false : t.masq };
}

const fmtWant = (want: Expect): string => (Array.isArray(want) ? want.join(', ') : want === '' ? '"" (not proxied)' : want);

describe.skipIf(!canUseKernel)(`dual stack on a node whose Node object lists one family, with real packets${canUseKernel ? '' : ` [skipped: ${KERNEL_SKIP_REASON}]`}`, () => {
  const results = new Map<Case, Promise<Measured>>();
  beforeAll(() => {
    for (const c of CASES) {
      const p = measure(c);
      p.catch(() => {}); // each row's `it` reports it
      results.set(c, p);
    }
  });
  afterAll(async () => { await Promise.allSettled(results.values()); }, 120_000);

  for (const c of CASES) {
    describe(c.name, () => {
      it('run without --ip-families compiles both families (the lab node has IPv6 on) and warns once about the unlisted one', async () => {
        const m = await results.get(c)!;
        expect({ families: m.families, tables: m.tables, notes: m.notes }).toEqual({ families: ['ipv4', 'ipv6'], tables: ['table ip nftproxy', 'table ip6 nftproxy'], notes: [c.note] });
      }, 120_000);
      it(`healthCheckNodePort ${HC_PORT} listens on ${Object.entries(c.health).filter(([, v]) => v !== 0).map(([a]) => a).join(', ')} only`, async () => {
        const m = await results.get(c)!;
        expect({ health: m.health, errors: m.healthErrors }).toEqual({ health: c.health, errors: [] });
      }, 120_000);
      for (const r of c.rows) {
        it(`${r.id} ${r.what}: ${r.src} -> ${r.dst} => ${fmtWant(r.want)}${r.masq === undefined ? '' : ` (masq ${r.masq ? 'yes' : 'no'})`}`, async () => {
          const table = tableOutcome(r);
          const kernel = (await results.get(c)!).rows.get(r.id);
          expect({ tracer: tracerOutcome(c, r), kernel }).toEqual({ tracer: table, kernel: table });
        }, 120_000);
      }
    });
  }

  // The same daemon and manifests in a namespace whose IPv6 is switched off: IPv4 alone.
  it('C. IPv6 switched off in the namespace (net.ipv6.conf.all.disable_ipv6=1): run compiles IPv4 only', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nftproxy-ipf-'));
    const ns = await Netns.create('ipfoff');
    let daemon: Daemon | undefined;
    try {
      await ns.sysctl({ 'net.ipv6.conf.all.disable_ipv6': 1, 'net.ipv6.conf.default.disable_ipv6': 1 });
      await writeFile(join(dir, 'cluster.json'), manifests(CASES[0]!));
      daemon = new Daemon(ns.name, ['--manifests', dir, ...FLAGS, '--healthz-bind-address', '', '--metrics-bind-address', '']);
      const start = await daemon.waitFor(starting, 15_000, 0);
      await daemon.waitFor(synced, 15_000, 0);
      expect({ families: start.ipFamilies, why: start.ipFamiliesWhy, tables: await tablesOf(ns.name) })
        .toEqual({ families: ['ipv4'], why: 'net.ipv6.conf.all.disable_ipv6 is 1: IPv6 is switched off in this network namespace', tables: ['table ip nftproxy'] });
    } finally {
      if (daemon) await daemon.stop();
      await ns.destroy();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('removes every namespace it created', async () => {
    await Promise.allSettled(results.values());
    expect(liveNetns()).toEqual([]);
    expect(await netnsOfThisProcess()).toEqual([]);
  }, 120_000);
});

// dump, explain and verify against a live node: `nftproxy run` as a real process in a test
// namespace serving its inspection socket, on manifests and, separately, on the fake API
// server (with the real client library, through the cluster lab's relay).
// - dump and explain without -f ask the socket and print exactly what -f prints with the
//   daemon's own inputs and flags passed by hand (stdout and stderr); --kubeconfig against
//   the fake API server likewise;
// - the socket refuses a client that is not root: by its file mode (0600 in a 0700
//   directory) and, with the mode loosened, by the peer's credentials;
// - verify reports nothing on a synced node and names the service port after another process
//   deletes one of its elements (the daemon's --min-sync-period of an hour keeps it from
//   repairing the drift during the test); the socket goes with the daemon.
import { execa } from 'execa';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canUseKernel, KERNEL_SKIP_REASON, Netns } from '../lab/netns.js';
import { BIN, Daemon, synced } from '../support/daemon.js';
import { FakeApiServer } from '../fake-apiserver/server.js';
import { API_ADDRESS, CLUSTER_CIDR, Cluster } from '../lab/cluster.js';
import { service, slice } from '../support/builders.js';

const EXAMPLES = new URL('../../examples/', import.meta.url).pathname;
// the daemon's configuration, as flags: dump -f and --kubeconfig get the same by hand
const FLAGS = ['--node', 'node-a', '--cluster-cidr', '10.244.0.0/16,fd00:10:244::/64', '--service-cidr', '10.96.0.0/12', '--ip-families', 'dual'];
/** a test that runs a few CLI processes (each a Node start, ~0.5-1 s on this VM) */
const CLI_BUDGET = 30_000;
const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];

interface Run { code: number; stdout: string; stderr: string }
const cli = async (args: string[], ns?: string, pre: string[] = []): Promise<Run> => {
  const cmd = [...(ns ? ['ip', 'netns', 'exec', ns] : []), ...pre, process.execPath, BIN, ...args];
  const r = await execa(cmd[0]!, cmd.slice(1), { reject: false });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
};

/** [name, args] of explain: ClusterIPs, a NodePort from outside, a rejected and an unknown port, IPv6 */
const EXPLAINS: [string, string[]][] = [
  ['ClusterIP from a pod', ['--src', '10.244.1.5', '--dst', '10.96.0.10:80']],
  ['NodePort from outside', ['--src', '203.0.113.7', '--dst', '192.168.0.2:30080']],
  ['UDP ClusterIP, --json', ['--src', '10.244.1.5', '--dst', '10.96.0.20:53', '--proto', 'udp', '--json']],
  ['no endpoints', ['--src', '10.244.1.5', '--dst', '10.96.0.90:80']],
  ['not proxied', ['--src', '10.244.1.5', '--dst', '10.1.2.3:80']],
  ['IPv6 ClusterIP', ['--src', 'fd00:10:244::5', '--dst', '[fd00:10:96::100]:80']],
];

describe.skipIf(!canUseKernel)(`the daemon's socket: dump, explain, verify${canUseKernel ? '' : ` [skipped: ${KERNEL_SKIP_REASON}]`}`, () => {
  describe('daemon on manifests', () => {
    let ns: Netns;
    let dir: string;
    let socket: string;
    let d: Daemon;

    beforeAll(async () => {
      ns = await Netns.create('live');
      dir = await mkdtemp(join(tmpdir(), 'nftproxy-live-'));
      socket = join(dir, 'run', 'nftproxy.sock');
      d = new Daemon(ns.name, ['--manifests', EXAMPLES, ...FLAGS, '--min-sync-period', '1h', '--socket', socket, '--healthz-bind-address', '', '--metrics-bind-address', '']);
      await d.waitFor(synced, 20_000, 0);
    }, 30_000);

    afterAll(async () => {
      await d?.stop();
      await ns?.destroy();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it.each([['nft'], ['json'], ['bpf']])('dump --format %s without -f prints what -f prints with the daemon\'s inputs', async (format) => {
      const live = await cli(['dump', '--socket', socket, '--format', format]);
      const byHand = await cli(['dump', '-f', EXAMPLES, ...FLAGS, '--format', format]);
      expect(live.code, live.stderr).toBe(0);
      expect(byHand.code).toBe(0);
      expect(live.stdout).toBe(byHand.stdout);
      expect(live.stderr).toBe(byHand.stderr);
      expect(live.stdout.length).toBeGreaterThan(1000);
    }, CLI_BUDGET);

    it.each(EXPLAINS)('explain without -f: %s', async (_name, args) => {
      const live = await cli(['explain', '--socket', socket, ...args]);
      const byHand = await cli(['explain', '-f', EXAMPLES, ...FLAGS, ...args]);
      expect(live.code, live.stderr).toBe(0);
      expect(live.stdout).toBe(byHand.stdout);
      expect(live.stderr).toBe(byHand.stderr);
    }, CLI_BUDGET);

    it('refuses configuration flags with the socket (the daemon\'s own are used)', async () => {
      const r = await cli(['dump', '--socket', socket, '--cluster-cidr', '10.0.0.0/8']);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('--cluster-cidr: without -f or --kubeconfig the daemon\'s own objects and configuration are used');
    }, CLI_BUDGET);

    it('is root only: 0600 in a 0700 directory; a client that is not root is refused', async () => {
      expect((await stat(socket)).mode & 0o777).toBe(0o600);
      expect((await stat(join(dir, 'run'))).mode & 0o777).toBe(0o700);
      const r = await cli(['dump', '--socket', socket], undefined, NOBODY);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`${socket}: permission denied: the socket answers root only`);
      expect(r.stdout).toBe('');
    }, CLI_BUDGET);

    it('still refuses a client that is not root when the modes were loosened (peer credentials)', async () => {
      await chmod(dir, 0o755);
      await chmod(join(dir, 'run'), 0o755);
      await chmod(socket, 0o666);
      try {
        const r = await cli(['explain', '--socket', socket, ...EXPLAINS[0]![1]], undefined, NOBODY);
        expect(r.code).toBe(2);
        expect(r.stderr).toContain('the nftproxy socket answers root only (run as root)');
        expect(r.stdout).toBe('');
      } finally {
        await chmod(socket, 0o600);
        await chmod(join(dir, 'run'), 0o700);
        await chmod(dir, 0o700);
      }
    }, CLI_BUDGET);

    it('verify reports nothing on a synced node, and names the service port whose element another process deleted', async () => {
      const ok = await cli(['verify', '--socket', socket], ns.name);
      expect(ok.code, ok.stdout + ok.stderr).toBe(0);
      expect(ok.stdout).toMatch(/^table ip nftproxy: as intended \(\d+ chains, \d+ rules, \d+ sets, \d+ elements\)\ntable ip6 nftproxy: as intended/);
      // the same against what -f compiles to (no daemon involved in the intent)
      expect((await cli(['verify', '-f', EXAMPLES, ...FLAGS], ns.name)).code).toBe(0);

      await ns.exec(['nft', 'delete', 'element', 'ip', 'nftproxy', 'service-ips-dnat-cluster-3', '{ 10.96.0.10 . tcp . 80 }']);
      const drift = await cli(['verify', '--socket', socket], ns.name);
      expect(drift.code).toBe(1);
      expect(drift.stdout).toBe([
        'shop/web port http 80/TCP (ip):',
        '  missing element 10.96.0.10 . tcp . 80 comment "shop/web:http" in set service-ips-dnat-cluster-3',
        '1 difference, 1 service port affected: the kernel does not hold what nftproxy intends',
      ].join('\n')); // execa drops the last newline
      const json = JSON.parse((await cli(['verify', '--socket', socket, '--json'], ns.name)).stdout) as { ok: boolean; differences: { servicePorts: string[]; kind: string }[] };
      expect(json.ok).toBe(false);
      expect(json.differences).toMatchObject([{ kind: 'missing', servicePorts: ['shop/web port http 80/TCP'] }]);
    }, CLI_BUDGET);

    it('removes its socket when it stops', async () => {
      expect(existsSync(socket)).toBe(true);
      expect(await d.stop()).toBe(0);
      expect(existsSync(socket)).toBe(false);
      const r = await cli(['dump', '--socket', socket]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`no daemon socket at ${socket}. Give -f FILE_OR_DIR (manifests) or --kubeconfig FILE --node NAME`);
    }, CLI_BUDGET);
  });

  describe('daemon on the fake API server', () => {
    let fake: FakeApiServer;
    let dir: string;
    let cluster: Cluster | undefined;
    let socket: string;
    let flags: string[];

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'nftproxy-live-api-'));
      socket = join(dir, 'nftproxy.sock');
      fake = new FakeApiServer();
      await fake.start();
      await fake.listenUnix(join(dir, 'api.sock'));
      cluster = await Cluster.create('liveapi', { apiSocket: join(dir, 'api.sock'), kubeconfig: fake.kubeconfig('default', API_ADDRESS), dir, ports: [8080], nodes: 1, podsPerNode: 2 });
      const n = cluster.node(1);
      fake.create('Node', cluster.nodeObject(n));
      const port = { name: 'http', port: 80, protocol: 'TCP' as const };
      fake.create('Service', service('lab', 'web', { type: 'NodePort', clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'], ipFamilies: ['IPv4'], ports: [{ ...port, targetPort: 8080, nodePort: 30080 }] }));
      fake.create('EndpointSlice', slice('lab', 'web', 'web-1', [{ name: 'http', port: 8080 }], n.pods.map((p) => ({ ip: p.ip, node: n.name }))));
      fake.create('Service', service('lab', 'none', { clusterIP: '10.96.0.11', clusterIPs: ['10.96.0.11'], ipFamilies: ['IPv4'], ports: [port] }));
      // what spawnDaemon adds, plus ours: dump --kubeconfig gets the same by hand
      flags = ['--node', n.name, '--node-ip', n.ip, '--cluster-cidr', CLUSTER_CIDR, '--service-cidr', '10.96.0.0/16', '--ip-families', 'ipv4'];
      await cluster.startDaemon(n, ['--service-cidr', '10.96.0.0/16', '--ip-families', 'ipv4', '--socket', socket]);
    }, 90_000);

    afterAll(async () => {
      await cluster?.destroy();
      await fake?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('dump without -f, dump --kubeconfig and dump -f of the same objects print the same', async () => {
      const kubeconfig = join(dir, 'test-kubeconfig');
      await writeFile(kubeconfig, fake.kubeconfig());
      const live = await cli(['dump', '--socket', socket]);
      const api = await cli(['dump', '--kubeconfig', kubeconfig, ...flags]);
      const objects = join(dir, 'objects.json');
      await writeFile(objects, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: (['Service', 'EndpointSlice', 'Node'] as const).flatMap((k) => fake.store.list(k) ?? []) }));
      const byHand = await cli(['dump', '-f', objects, ...flags]);
      expect(live.code, live.stderr).toBe(0);
      expect(api.code, api.stderr).toBe(0);
      expect(live.stdout).toContain('10.96.0.10 . tcp . 80');
      expect(api.stdout).toBe(live.stdout);
      expect(byHand.stdout).toBe(live.stdout);
      expect(api.stderr).toBe(live.stderr);
    }, CLI_BUDGET);

    it.each([
      ['ClusterIP from a pod', ['--src', '10.244.1.10', '--dst', '10.96.0.10:80']],
      ['NodePort from outside', ['--src', '203.0.113.10', '--dst', '192.168.50.1:30080']],
      ['no endpoints', ['--src', '10.244.1.10', '--dst', '10.96.0.11:80']],
    ])('explain without -f and with --kubeconfig: %s', async (_name, args) => {
      const kubeconfig = join(dir, 'test-kubeconfig');
      await writeFile(kubeconfig, fake.kubeconfig());
      const live = await cli(['explain', '--socket', socket, ...args]);
      const api = await cli(['explain', '--kubeconfig', kubeconfig, ...flags, ...args]);
      expect(live.code, live.stderr).toBe(0);
      expect(api.stdout).toBe(live.stdout);
    }, CLI_BUDGET);

    it('verify (socket) in the node: as intended', async () => {
      const r = await cli(['verify', '--socket', socket], cluster!.node(1).ns.name);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^table ip nftproxy: as intended/);
    }, CLI_BUDGET);
  });
});

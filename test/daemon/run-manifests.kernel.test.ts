// `nftproxy run --manifests DIR` as a real process in a throwaway namespace: it converges on
// the directory's content after every change, keeps a half-written file's last good version,
// stops on SIGTERM leaving the rules, converges after SIGKILL in the middle of a sync, and
// `nftproxy cleanup` removes only its tables.
import { execa } from 'execa';
import { renameSync, writeFileSync } from 'node:fs';
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canUseKernel, KERNEL_SKIP_REASON, withNetns } from '../lab/netns.js';
import { BIN, Daemon, synced } from '../support/daemon.js';
import { readKernelTables } from '../support/kernel-table.js';

// --ip-families: by default run compiles the families the host carries (both here) and dump,
// offline, those of its inputs (IPv4 only): the comparison needs the same on both sides.
const FLAGS = ['--node', 'node-a', '--cluster-cidr', '10.244.0.0/16,fd00:10:244::/64', '--service-cidr', '10.96.0.0/12', '--ip-families', 'dual'];
type Exec = Parameters<Parameters<typeof withNetns>[1]>[0];

/** lab/dns: UDP 53 on 10.96.0.53, endpoints on 5353 */
const udpSvc = (eps: string[]): string => `apiVersion: v1
kind: Service
metadata: { name: dns, namespace: lab }
spec: { clusterIP: 10.96.0.53, ports: [{ name: dns, port: 53, protocol: UDP, targetPort: 5353 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: dns-1, namespace: lab, labels: { kubernetes.io/service-name: dns } }
addressType: IPv4
ports: [{ name: dns, port: 5353, protocol: UDP }]
endpoints: [${eps.map((e) => `{ addresses: [${e}], nodeName: node-a }`).join(', ')}]
`;

const svc = (name: string, ip: string, eps: string[], port = 80): string => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: lab }
spec: { type: NodePort, clusterIP: ${ip}, ports: [{ name: http, port: ${port}, targetPort: 8080 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}-1, namespace: lab, labels: { kubernetes.io/service-name: ${name} } }
addressType: IPv4
ports: [{ name: http, port: 8080 }]
endpoints: [${eps.map((e) => `{ addresses: [${e}], nodeName: node-a }`).join(', ')}]
`;

/** What one `dump` of the directory, loaded fresh, leaves in the kernel. */
async function expected(dir: string): Promise<string> {
  const text = (await execa(process.execPath, [BIN, 'dump', '-f', dir, ...FLAGS])).stdout;
  return withNetns('want', async (exec) => {
    const r = await exec(['nft', '-f', '-'], text);
    if (r.exitCode !== 0) throw new Error(r.stderr);
    return readKernelTables(exec);
  });
}

async function nsName(exec: Exec): Promise<string> {
  return (await exec(['ip', 'netns', 'identify'])).stdout.trim();
}

describe.skipIf(!canUseKernel)(`nftproxy run --manifests${canUseKernel ? '' : ` [skipped: ${KERNEL_SKIP_REASON}]`}`, () => {
  let dir: string;
  beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'nftproxy-run-')); });
  afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

  it('follows changes, keeps a broken file\'s last good version, stops on SIGTERM leaving the rules', async () => {
    await writeFile(join(dir, 'web.yaml'), svc('web', '10.96.0.10', ['10.244.1.1', '10.244.1.2']));
    await writeFile(join(dir, 'db.yaml'), svc('db', '10.96.0.11', ['10.244.2.1'], 5432));
    await withNetns('run', async (exec) => {
      const d = new Daemon(await nsName(exec), ['--manifests', dir, ...FLAGS, '--min-sync-period', '100ms', '--log-level', 'debug']);
      try {
        const first = await d.waitFor(synced, 15_000, 0);
        expect(first).toMatchObject({ reason: 'start', kind: 'full', services: 2 });
        expect(await readKernelTables(exec)).toEqual(await expected(dir));

        // a change: one more endpoint -> a partial sync
        let mark = d.logs.length;
        const written = performance.now();
        await writeFile(join(dir, 'web.yaml'), svc('web', '10.96.0.10', ['10.244.1.1', '10.244.1.2', '10.244.1.3']));
        const second = await d.waitFor(synced, 10_000, mark);
        const seen = performance.now();
        expect(second).toMatchObject({ reason: 'change', kind: 'partial' });
        // event -> last kernel ack, as the daemon reports it: after the write, before we read the line
        expect(second.eventToAckMs).toBeGreaterThanOrEqual(0);
        expect(second.eventToAckMs).toBeLessThanOrEqual(seen - written);
        // where the sync's time went: each phase is part of the sync up to the kernel's ack
        const phases = ['modelMs', 'compileMs', 'objectsMs', 'applyMs'].map((k) => second[k] as number);
        for (const ms of phases) expect(ms).toBeGreaterThanOrEqual(0);
        expect(phases.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual((second.ackMs as number) + 0.5);
        // 2 -> 3 endpoints: the port moves to the endpoint-count group of 3 (its maps, dispatch
        // sets and chains created, group 2's removed, the two dispatch chains refilled with the
        // groups' rules twice: with group 3, then without group 2): a few dozen ops, not the table
        expect(second.ops as number).toBeLessThan(80);
        expect(await readKernelTables(exec)).toEqual(await expected(dir));

        // a half-written file: logged, its last good version kept, nothing else changes
        const good = await readKernelTables(exec);
        mark = d.logs.length;
        await writeFile(join(dir, 'web.yaml'), svc('web', '10.96.0.10', ['10.244.1.9']).slice(0, 150));
        const rejected = await d.waitFor((l) => l.msg === 'manifest rejected; keeping its last good version', 10_000, mark);
        expect(rejected).toMatchObject({ kept: true });
        expect(String(rejected.file)).toContain('web.yaml');
        await new Promise((r) => setTimeout(r, 300));
        expect(await readKernelTables(exec)).toEqual(good);

        // fixed: recovers
        mark = d.logs.length;
        await writeFile(join(dir, 'web.yaml'), svc('web', '10.96.0.10', ['10.244.1.9']));
        await d.waitFor(synced, 10_000, mark);
        expect(await readKernelTables(exec)).toEqual(await expected(dir));

        d.kill('SIGTERM');
        expect(await d.exited).toBe(0);
        expect(d.logs.some((l) => l.msg.startsWith('stopping'))).toBe(true);
        expect(await readKernelTables(exec)).toEqual(await expected(dir));

        // cleanup removes nftproxy's tables and nothing else
        await exec(['nft', 'add', 'table', 'inet', 'mine']);
        const c = await exec([process.execPath, BIN, 'cleanup']);
        expect(c.exitCode).toBe(0);
        expect((await exec(['nft', 'list', 'tables'])).stdout.trim()).toBe('table inet mine');
      } finally {
        d.kill('SIGKILL');
        await d.exited;
      }
    });
  }, 60_000);

  it('a file replaced by rename 20 times: 20 syncs, each started by the directory watch', async () => {
    const own = await mkdtemp(join(tmpdir(), 'nftproxy-rename-'));
    const file = join(own, 'web.yaml');
    try {
      await writeFile(file, svc('web', '10.96.0.10', ['10.244.1.1']));
      await withNetns('rename', async (exec) => {
        const d = new Daemon(await nsName(exec), ['--manifests', own, ...FLAGS, '--min-sync-period', '50ms', '--log-level', 'debug']);
        try {
          await d.waitFor(synced, 15_000, 0);
          for (let i = 2; i <= 21; i++) {
            const mark = d.logs.length;
            // As editors and config tools write: a temporary file renamed over the old one,
            // with no pause between (Node's recursive watch stops seeing this after a few).
            writeFileSync(`${file}.tmp`, svc('web', '10.96.0.10', [`10.244.1.${i}`]));
            renameSync(`${file}.tmp`, file);
            // The rescan poll (5 s) would find it too, and log by: 'poll'.
            expect(await d.waitFor((l) => l.msg === 'manifest changed', 10_000, mark)).toMatchObject({ file, by: 'watch' });
            expect(await d.waitFor(synced, 10_000, mark)).toMatchObject({ reason: 'change', kind: 'partial', endpoints: 1 });
          }
          expect(d.logs.filter(synced).length).toBe(21);
          expect(await readKernelTables(exec)).toEqual(await expected(own));
        } finally {
          d.kill('SIGTERM');
          await d.exited;
        }
        await exec([process.execPath, BIN, 'cleanup']);
      });
    } finally {
      await rm(own, { recursive: true, force: true });
    }
  }, 90_000);

  it('SIGKILL in the middle of a sync: the next start converges', async () => {
    const big = await mkdtemp(join(tmpdir(), 'nftproxy-kill-'));
    try {
      await writeFile(join(big, 'web.yaml'), svc('web', '10.96.0.10', ['10.244.1.1', '10.244.1.2']));
      await withNetns('kill', async (exec) => {
        const ns = await nsName(exec);
        const d = new Daemon(ns, ['--manifests', big, ...FLAGS, '--min-sync-period', '50ms', '--log-level', 'debug']);
        try {
          await d.waitFor(synced, 15_000, 0);
          // A change big enough that its sync takes a while, killed once nft is running.
          const many = Array.from({ length: 1500 }, (_, i) => svc(`s${i}`, `10.97.${i >> 8}.${i & 255}`, [`10.245.${i >> 8}.${i & 255}`, `10.246.${i >> 8}.${i & 255}`])).join('---\n');
          const mark = d.logs.length;
          await writeFile(join(big, 'many.yaml'), many);
          await d.waitFor((l) => l.msg === 'sync started', 15_000, mark);
          d.kill('SIGKILL');
          await d.exited;
        } finally {
          d.kill('SIGKILL');
          await d.exited;
        }
        // Whatever the kernel holds now (old or new: nft is atomic), a restart converges.
        const again = new Daemon(ns, ['--manifests', big, ...FLAGS, '--log-level', 'debug']);
        try {
          expect(await again.waitFor(synced, 30_000, 0)).toMatchObject({ reason: 'start', kind: 'full', services: 1501 });
          expect(await readKernelTables(exec)).toEqual(await expected(big));
        } finally {
          again.kill('SIGTERM');
          await again.exited;
        }
        await exec([process.execPath, BIN, 'cleanup']);
      });
    } finally {
      await rm(big, { recursive: true, force: true });
    }
  }, 90_000);

  it('never runs nft or conntrack: start, partial syncs, a UDP endpoint removal and --sync-period full syncs, with tools that fail and leave a mark', async () => {
    const fake = await mkdtemp(join(tmpdir(), 'nftproxy-nonft-'));
    const mark = join(fake, 'tool-was-run');
    try {
      // Any nft or conntrack on the PATH (and the usual places) fails loudly and leaves a mark.
      for (const tool of ['nft', 'conntrack']) await writeFile(join(fake, tool), `#!/bin/sh\necho "${tool} $@" >> ${mark}\necho '${tool} must not run' >&2\nexit 1\n`, { mode: 0o755 });
      await mkdir(join(fake, 'm'));
      await writeFile(join(fake, 'm', 'web.yaml'), svc('web', '10.96.0.10', ['10.244.1.1', '10.244.1.2']));
      await writeFile(join(fake, 'm', 'dns.yaml'), udpSvc(['10.244.1.5', '10.244.1.6']));
      await withNetns('nonft', async (exec) => {
        const d = new Daemon(await nsName(exec), ['--manifests', join(fake, 'm'), ...FLAGS, '--min-sync-period', '100ms', '--sync-period', '1s'], { PATH: `${fake}:/usr/bin:/bin` });
        try {
          expect(await d.waitFor(synced, 15_000, 0)).toMatchObject({ reason: 'start', kind: 'full' });
          let at = d.logs.length;
          await writeFile(join(fake, 'm', 'extra.yaml'), svc('extra', '10.96.0.11', ['10.244.1.3']));
          expect(await d.waitFor((l) => synced(l) && l.reason === 'change', 10_000, at)).toMatchObject({ kind: 'partial' });
          expect(await d.waitFor((l) => synced(l) && l.reason === 'periodic', 10_000, at)).toMatchObject({ kind: 'full' });
          expect((await exec(['nft', 'list', 'table', 'ip', 'nftproxy'])).stdout).toContain('"lab/extra:http"');

          // A flow pinned to the endpoint about to go (inserted with the real tool, from the
          // test's PATH): the daemon's cleanup must delete it, over netlink.
          const flow = ['-p', 'udp', '-s', '10.244.9.9', '-d', '10.96.0.53', '--sport', '40000', '--dport', '53',
            '--reply-src', '10.244.1.6', '--reply-dst', '10.244.9.9', '--reply-port-src', '5353', '--reply-port-dst', '40000'];
          expect((await exec(['conntrack', '-I', ...flow, '-t', '300'])).exitCode).toBe(0);
          at = d.logs.length;
          await writeFile(join(fake, 'm', 'dns.yaml'), udpSvc(['10.244.1.5']));
          expect(await d.waitFor((l) => l.msg === 'stale UDP conntrack entries deleted', 10_000, at)).toMatchObject({ deleted: 1 });
          expect((await exec(['conntrack', '-L', '-p', 'udp', '--orig-src', '10.244.9.9'])).stdout).toBe('');
        } finally {
          d.kill('SIGTERM');
          await d.exited;
        }
        await expect(access(mark)).rejects.toThrow();
      });
    } finally {
      await rm(fake, { recursive: true, force: true });
    }
  }, 60_000);

  it('refuses to start without netfilter netlink (not root), with one clear line and exit 3', async () => {
    await withNetns('noroot', async (exec) => {
      const r = await execa('ip', ['netns', 'exec', await nsName(exec), 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BIN, 'run', '--bpf', 'off', '--manifests', dir, '--node', 'n', '--healthz-bind-address', '', '--metrics-bind-address', ''], { reject: false });
      expect(r.exitCode).toBe(3);
      expect(r.stderr).toMatch(/^nftproxy: .*netlink.*EPERM/m);
    });
  });
});

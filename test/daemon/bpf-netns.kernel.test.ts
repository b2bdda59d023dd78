// The socket load balancer and network namespaces (issue 14). Run in a test namespace the way
// a lab or a cautious first try would (nsenter --net: the host's /sys, cgroup and BPF
// filesystems in view), `nftproxy run` with default flags must not attach anything to the
// host's cgroup v2 root nor pin or mount anything under /sys/fs/bpf; `--bpf=on` there needs an
// explicit --bpf-cgroup. `status` and `cleanup` run through `ip netns exec`, which hides /sys/fs/bpf,
// still find the pins and name the cgroup, or fail.
//
// The first two cases are the dangerous ones by design: were the product wrong, it would
// attach to the host's root. The afterAll hook undoes exactly what the root snapshot shows
// was added, so a failure here does not outlive the test.
import { execa } from 'execa';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isBpffs } from '../../native/bpffs.js';
import { bpfSupport } from '../../native/loader.js';
import { Netns } from '../lab/netns.js';
import { BIN, Daemon, synced } from '../support/daemon.js';
import { webManifest } from '../support/manifests.js';
import { createTestCgroup, kernelSkipReason, privateSysBpffs, removeTestCgroup, rootCgroupPrograms } from '../bpf/env.js';

const skip = kernelSkipReason(bpfSupport) ?? (['/usr/sbin/bpftool', '/usr/bin/bpftool', '/sbin/bpftool'].some((p) => existsSync(p)) ? null : 'needs bpftool');

const MANIFESTS = webManifest(['10.244.0.1', '10.244.0.2']);

/** What the host shows of BPF: the root cgroup's programs, and /sys/fs/bpf. */
interface HostBpf { root: string[]; sysFsBpf: string[] | 'not a bpffs' }
const hostBpf = async (): Promise<HostBpf> => ({ root: await rootCgroupPrograms(), sysFsBpf: isBpffs('/sys/fs/bpf') ? readdirSync('/sys/fs/bpf').sort() : 'not a bpffs' });

describe.skipIf(skip !== null)(`BPF and network namespaces${skip ? ` [skipped: ${skip}]` : ''}`, () => {
  let ns: Netns, dir: string, before: HostBpf;
  beforeAll(async () => {
    ns = await Netns.create('bpfns');
    await ns.ip(['link set lo up']);
    dir = await mkdtemp(join(tmpdir(), 'nftproxy-bpfns-'));
    await writeFile(join(dir, 'web.yaml'), MANIFESTS);
    before = await hostBpf();
  });
  afterAll(async () => {
    // Only if a case failed the way issue 14 describes: undo what it added to the host.
    const now = await hostBpf().catch(() => before);
    if (now.root.some((p) => !before.root.includes(p)) && ns) {
      await execa('nsenter', [`--net=/run/netns/${ns.name}`, process.execPath, BIN, 'cleanup'], { reject: false });
    }
    if (before && before.sysFsBpf === 'not a bpffs' && isBpffs('/sys/fs/bpf')) await execa('umount', ['/sys/fs/bpf'], { reject: false });
    if (dir) await rm(dir, { recursive: true, force: true });
    await ns?.destroy();
  });

  it('a test namespace is never taken for the host\'s', async () => {
    const place = fileURLToPath(new URL('../../dist/native/netns.js', import.meta.url));
    const r = await execa('nsenter', [`--net=/run/netns/${ns.name}`, process.execPath, '-e', `import(${JSON.stringify(place)}).then((m) => console.log(JSON.stringify(m.netnsPlace())))`]);
    const got = JSON.parse(r.stdout) as { kind: string; self: string };
    expect(['other', 'unknown']).toContain(got.kind);
    expect(got.self).toBe((await execa('ip', ['netns', 'exec', ns.name, 'readlink', '/proc/self/ns/net'])).stdout.trim());
  });

  it('run with default flags in a test namespace: BPF off with one line why, nothing attached to the root, nothing pinned', async () => {
    // nsenter --net: the host's /sys, so the host's cgroup root and /sys/fs/bpf are in reach
    const d = new Daemon(ns.name, ['--manifests', dir, '--node', 'node-a', '--node-ip', '192.168.0.2', '--cluster-cidr', '10.244.0.0/16'], {}, 'nsenter', { bpfDefaults: true });
    try {
      const off = await d.waitFor((l) => l.msg.startsWith('BPF hot path'), 15_000, 0);
      expect(off.msg).toBe('BPF hot path off (--bpf=auto): the nftables rules carry all traffic');
      expect(String(off.reason)).toMatch(/host's network namespace/);
      await d.waitFor(synced, 15_000, 0);
      expect(d.logs.filter((l) => /bpf/i.test(l.msg))).toHaveLength(1);
      expect(await hostBpf()).toEqual(before);
      expect((await hostBpf()).root.filter((p) => p.includes('npx_'))).toEqual([]);
    } finally {
      d.kill('SIGTERM');
      await d.exited;
    }
    expect(await hostBpf()).toEqual(before);
  }, 40_000);

  it('--bpf=on in a test namespace without --bpf-cgroup refuses: exit 2, one line saying what to give', async () => {
    const r = await execa('nsenter', [`--net=/run/netns/${ns.name}`, process.execPath, BIN, 'run', '--manifests', dir, '--node', 'node-a', '--bpf', 'on', '--healthz-bind-address', '', '--metrics-bind-address', ''], { reject: false, timeout: 20_000 });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/^nftproxy: --bpf=on needs --bpf-cgroup here: .*host's network namespace.*Give --bpf-cgroup the cgroup of the processes in this namespace/m);
    expect(await hostBpf()).toEqual(before);
  }, 30_000);

  it('status and cleanup through ip netns exec, which hides /sys/fs/bpf, find the pins and name the cgroup; another namespace leaves them alone', async () => {
    // A stand-in host: a private mount namespace with its own bpffs on /sys/fs/bpf, where the
    // daemon pins at the default /sys/fs/bpf/nftproxy; programs on a test cgroup only.
    const other = await Netns.create('bpfns2'); // before the stand-in host, so it sees it
    const host = await privateSysBpffs();
    const cg = createTestCgroup();
    const inHost = (cmd: string[]): Promise<{ exitCode?: number; stdout: string; stderr: string }> => {
      const c = host.enter(cmd);
      return execa(c[0]!, c.slice(1), { reject: false }) as never;
    };
    // `ip netns exec` as an operator runs it: from a shell in the (stand-in) host, which stays
    // its parent and so the mount view it was started from
    const viaIpNetnsExec = (netns: string, args: string[]): ReturnType<typeof inHost> => inHost(['sh', '-c', 'ip netns exec "$@"; exit $?', 'sh', netns, ...args]);
    const nftproxy = (netns: string, args: string[]): ReturnType<typeof inHost> => viaIpNetnsExec(netns, [process.execPath, BIN, ...args]);
    const attachedToCg = async (): Promise<string> => (await execa('bpftool', ['cgroup', 'show', cg])).stdout.trim();
    const flags = ['--manifests', dir, '--node', 'node-a', '--node-ip', '192.168.0.2', '--cluster-cidr', '10.244.0.0/16', '--healthz-bind-address', '', '--metrics-bind-address', ''];
    try {
      const d = new Daemon(ns.name, [...flags, '--bpf', 'on', '--bpf-cgroup', cg, '--bpf-netns-dir', '/run/netns'], {}, 'nsenter', { enter: host.enter(['nsenter', `--net=/run/netns/${ns.name}`]) });
      try {
        await d.waitFor((l) => l.msg.startsWith('BPF hot path on'), 15_000, 0);
        await d.waitFor(synced, 15_000, 0);
      } finally {
        d.kill('SIGTERM');
        await d.exited;
      }
      expect(await attachedToCg()).toContain('npx_connect4');
      expect((await viaIpNetnsExec(ns.name, ['stat', '-f', '-c', '%T', '/sys/fs/bpf'])).stdout.trim()).toBe('sysfs'); // the premise: hidden

      const json = await nftproxy(ns.name, ['status', '--json']);
      expect(json.exitCode, json.stderr).toBe(0);
      const st = (JSON.parse(json.stdout) as { bpf: { pinned: boolean; active: boolean; cgroups: string[]; netnsDir: string; attachments: { hook: string; cgroup: string }[]; seenFrom: string } }).bpf;
      expect(st).toMatchObject({ pinned: true, active: true, cgroups: [cg], netnsDir: '/run/netns' });
      expect(st.attachments.map((a) => a.hook).sort()).toEqual(['connect4', 'connect6', 'getpeername4', 'getpeername6', 'recvmsg4', 'recvmsg6', 'sendmsg4', 'sendmsg6']);
      expect(new Set(st.attachments.map((a) => a.cgroup))).toEqual(new Set([cg]));
      expect(st.seenFrom).toMatch(/started from/);
      const text = await nftproxy(ns.name, ['status']);
      expect(text.stdout).toContain(`attached to cgroup ${cg}: connect4 connect6`);
      expect(text.stdout).toContain('each namespace file in /run/netns');

      // not root: the view it was started from cannot be read, so it cannot tell: it says so, exit 1
      const blind = await viaIpNetnsExec(ns.name, ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BIN, 'status']);
      expect(blind.exitCode).toBe(1);
      expect(blind.stdout).toMatch(/^bpf: cannot tell whether anything is pinned at \/sys\/fs\/bpf\/nftproxy: .*EACCES/m);

      // another namespace: a default-flags daemon and cleanup there leave these pins alone
      const o = new Daemon(other.name, flags, {}, 'nsenter', { bpfDefaults: true, enter: host.enter(['nsenter', `--net=/run/netns/${other.name}`]) });
      try {
        const off = await o.waitFor((l) => l.msg.startsWith('BPF hot path'), 15_000, 0);
        expect(String(off.leftovers)).toMatch(/^left the pins at \/sys\/fs\/bpf\/nftproxy in place: they were pinned by the nftproxy of network namespace net:\[\d+\]/);
        await o.waitFor(synced, 15_000, 0);
      } finally {
        o.kill('SIGTERM');
        await o.exited;
      }
      const refused = await nftproxy(other.name, ['cleanup']);
      expect(refused.exitCode).toBe(1);
      expect(refused.stderr).toMatch(new RegExp(`BPF programs pinned at /sys/fs/bpf/nftproxy \\(attached to ${cg}\\) left in place: .*Run nftproxy cleanup in that network namespace`));
      expect(await attachedToCg()).toContain('npx_connect4');

      const c = await nftproxy(ns.name, ['cleanup']);
      expect(c.exitCode, c.stderr).toBe(0);
      expect(c.stderr).toContain(`BPF programs detached from cgroup ${cg}`);
      expect(await attachedToCg()).toBe('');
      const after = await nftproxy(ns.name, ['status', '--json']);
      expect(after.exitCode).toBe(0);
      expect((JSON.parse(after.stdout) as { bpf: { pinned: boolean } }).bpf.pinned).toBe(false);
    } finally {
      await host.stop(); // the namespace goes, and with it its bpffs and any pin left in it
      await removeTestCgroup(cg);
      await other.destroy();
    }
    expect(await hostBpf()).toEqual(before);
  }, 90_000);
});

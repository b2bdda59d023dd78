// native/bpffs.ts and the pin bookkeeping of native/loader.ts on the real kernel, contained:
// bpffs mounts on temp dirs only (never /sys/fs/bpf), programs attached only to cgroups this
// test creates, no traffic (sock-lb.kernel.test.ts does that).
import { afterAll, describe, expect, it } from 'vitest';
import { closeSync, existsSync, mkdtempSync, readdirSync, rmdirSync, rmSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureBpffs, ensurePinDir, isBpffs, unmountBpffs } from '../../native/bpffs.js';
import { adopt, bpfSupport, loadSockLb, pinnedMapCounts, PROGRAMS, removePinned } from '../../native/loader.js';
import { libbpf } from '../../native/libbpf.js';
import { encodeSvcKey, encodeSvcVal } from '../../native/layout.js';
import { createTestCgroup, kernelSkipReason, mountTestBpffs, removeTestCgroup, unmountTestBpffs } from './env.js';

const SKIP = kernelSkipReason(() => bpfSupport());

describe.skipIf(SKIP !== null)(`BPF loader bookkeeping (${SKIP ?? 'root, cgroup v2, BPF'})`, () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterAll(async () => {
    for (const f of cleanup.reverse()) await f();
  });

  it('ensureBpffs / ensurePinDir mount a bpffs where there is none, and only once', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'npx-bpffs-ensure-'));
    const mnt = path.join(dir, 'fs');
    try {
      expect(isBpffs(dir)).toBe(false);
      expect((await ensurePinDir(path.join(mnt, 'nftproxy'))).mounted).toBe(mnt);
      expect(isBpffs(path.join(mnt, 'nftproxy'))).toBe(true);
      expect((await ensureBpffs(mnt)).mounted).toBe(false);
      expect((await ensurePinDir(path.join(mnt, 'nftproxy'))).mounted).toBe(null);
    } finally {
      await unmountBpffs(mnt);
      rmdirSync(mnt);
      rmdirSync(dir);
    }
    expect(isBpffs(mnt)).toBe(false);
  });

  it('refuses a pin dir that is not on a bpffs', () => {
    const cg = createTestCgroup();
    cleanup.push(() => removeTestCgroup(cg));
    const dir = mkdtempSync(path.join(os.tmpdir(), 'npx-notbpffs-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    expect(() => loadSockLb({ cgroupPath: cg, pinDir: dir })).toThrow(/not on a BPF filesystem/);
  });

  it('fresh load, reload in place, move to another cgroup, adopt, detach, unpin', async () => {
    const cgA = createTestCgroup();
    const cgB = createTestCgroup();
    const fs = await mountTestBpffs();
    cleanup.push(() => unmountTestBpffs(fs), () => removeTestCgroup(cgA), () => removeTestCgroup(cgB));
    const pinDir = path.join(fs, 'nftproxy');

    const a = loadSockLb({ cgroupPath: cgA, pinDir });
    expect(a.report).toEqual({ attached: [...PROGRAMS], replaced: [], moved: [], reusedMaps: [], replacedMaps: [] });
    const key = encodeSvcKey({ addr: '10.96.0.1', port: 443, proto: 'tcp' });
    a.update('svcs', key, encodeSvcVal({ gen: 1, count: 0 }));
    a.close();
    expect(readdirSync(pinDir).sort()).toEqual(
      [...PROGRAMS.map((p) => `link_${p}`), 'nftproxy_affinity', 'nftproxy_backends', 'nftproxy_members', 'nftproxy_podcidrs', 'nftproxy_revnat', 'nftproxy_svcs'].sort(),
    );

    const b = loadSockLb({ cgroupPath: cgA, pinDir });
    expect(b.report.replaced).toEqual([...PROGRAMS]);
    expect(b.lookup('svcs', key)).toEqual(encodeSvcVal({ gen: 1, count: 0 })); // map contents survived
    b.update('members', Buffer.alloc(28, 7), Buffer.from([1]));
    b.close();

    // An upgrade that changed a map's layout: stand-in, the affinity map pinned where the
    // services map was. That one is made afresh; the others keep their contents.
    const lib = libbpf();
    const aff = lib.obj_get(path.join(pinDir, 'nftproxy_affinity'));
    unlinkSync(path.join(pinDir, 'nftproxy_svcs'));
    lib.obj_pin(aff, path.join(pinDir, 'nftproxy_svcs'));
    closeSync(aff);
    const u = loadSockLb({ cgroupPath: cgA, pinDir });
    expect(u.report.replacedMaps).toEqual(['nftproxy_svcs']);
    expect(u.report.reusedMaps).toHaveLength(5);
    expect(u.report.replaced).toEqual([...PROGRAMS]); // links switched in place: no gap
    expect(u.keys('svcs')).toEqual([]); // the new, empty services map: everything goes to nft until a sync
    expect(u.lookup('members', Buffer.alloc(28, 7))).toEqual(Buffer.from([1]));
    u.update('svcs', key, encodeSvcVal({ gen: 1, count: 0 }));
    u.close();

    const c = loadSockLb({ cgroupPath: cgB, pinDir });
    expect(c.report.moved).toEqual([...PROGRAMS]);
    expect(c.report.attached).toEqual([...PROGRAMS]);
    c.close();

    const d = adopt(pinDir);
    expect(d.keys('svcs')).toEqual([key]);
    expect(d.delete('svcs', key)).toBe(true);
    expect(d.delete('svcs', key)).toBe(false);
    expect(() => d.update('svcs', Buffer.alloc(3), Buffer.alloc(12))).toThrow(/key is 3 bytes, expected 20/);
    d.detach();
    d.unpin();
    d.close();
    expect(existsSync(pinDir)).toBe(false);
    expect(() => adopt(pinDir)).toThrow(/nothing to adopt/);

    // cleanup of what any version left: a map missing (an older nftproxy had fewer) is no error
    const e = loadSockLb({ cgroupPath: cgA, pinDir });
    e.close();
    unlinkSync(path.join(pinDir, 'nftproxy_podcidrs'));
    expect(() => adopt(pinDir)).toThrow(/nothing to adopt/);
    expect(pinnedMapCounts(pinDir)).toEqual({ svcs: 0, backends: 0, members: 0, affinity: 0, revnat: 0 });
    expect(removePinned(pinDir)).toBe(true);
    expect(existsSync(pinDir)).toBe(false);
    expect(removePinned(pinDir)).toBe(false);
  });
});

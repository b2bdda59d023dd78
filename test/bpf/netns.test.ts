// native/netns.ts: whether a process is in the host's network namespace, from PID 1's
// namespace when the kernel's fixed inode does not say (a fake /proc: hard links share an inode).
import { linkSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { netnsPlace } from '../../native/netns.js';

describe('netnsPlace', () => {
  const dirs: string[] = [];
  afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
  const fakeProc = (pid1: 'same' | 'other' | 'missing'): string => {
    const proc = mkdtempSync(path.join(os.tmpdir(), 'npx-fakeproc-'));
    dirs.push(proc);
    mkdirSync(path.join(proc, 'self', 'ns'), { recursive: true });
    mkdirSync(path.join(proc, '1', 'ns'), { recursive: true });
    writeFileSync(path.join(proc, 'self', 'ns', 'net'), '');
    if (pid1 === 'same') linkSync(path.join(proc, 'self', 'ns', 'net'), path.join(proc, '1', 'ns', 'net'));
    if (pid1 === 'other') writeFileSync(path.join(proc, '1', 'ns', 'net'), '');
    return proc;
  };

  it.each([
    { name: 'PID 1 in the same namespace: the host\'s', pid1: 'same' as const, want: 'initial' },
    { name: 'PID 1 in another namespace: not the host\'s', pid1: 'other' as const, want: 'other' },
    { name: 'PID 1 unreadable: cannot tell', pid1: 'missing' as const, want: 'unknown' },
  ])('$name', ({ pid1, want }) => {
    const p = netnsPlace(fakeProc(pid1));
    expect(p.kind).toBe(want);
    expect(p.self).toMatch(/^net:\[\d+\]$/);
    if (p.kind === 'unknown') expect(p.reason).toMatch(/1\/ns\/net \(ENOENT\)/);
  });
});

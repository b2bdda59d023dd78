// The shipped eBPF objects are built from the shipped sources. bpf/SHA256SUMS (written by
// `make bpf`) lists the sources and the objects; every hash must match what is in the repo,
// and, where clang is installed, `make bpf BPF_OUT=<temp dir>` must rebuild byte-identical
// objects. The build is byte-reproducible (relative paths, -fdebug-prefix-map; checked from
// a different checkout path and output dir) with the SAME compiler: SHA256SUMS records the
// clang version, and with another version the rebuild comparison is skipped, saying so.
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SUMS = path.join(REPO, 'bpf', 'SHA256SUMS');
const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

function readSums(): { entries: Map<string, string>; compiler: string | null } {
  const entries = new Map<string, string>();
  let compiler: string | null = null;
  for (const line of readFileSync(SUMS, 'utf8').split('\n')) {
    if (line.startsWith('#')) {
      const m = /with (.*clang version [^\s]+)/.exec(line);
      if (m) compiler = m[1]!;
      continue;
    }
    if (!line.trim()) continue;
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!m) throw new Error(`bad SHA256SUMS line: ${line}`);
    entries.set(m[2]!, m[1]!);
  }
  return { entries, compiler };
}

const which = (cmd: string): boolean => ['/usr/bin', '/bin', '/usr/local/bin'].some((d) => existsSync(path.join(d, cmd)));
const canBuild = which('clang') && which('make') && existsSync('/usr/include/bpf/bpf_helpers.h');

describe('bpf/*.o is built from bpf/*.c', () => {
  it('SHA256SUMS covers every source and object in bpf/, and every hash matches', () => {
    const { entries } = readSums();
    const files = readdirSync(path.join(REPO, 'bpf')).filter((f) => /\.(c|h|o)$/.test(f)).map((f) => `bpf/${f}`).sort();
    expect([...entries.keys()].sort()).toEqual(files);
    expect(files).toEqual(expect.arrayContaining(['bpf/sock_lb.c', 'bpf/sock_lb.o', 'bpf/nftproxy_maps.h']));
    for (const [file, hash] of entries) expect(sha256(path.join(REPO, file)), file).toBe(hash);
  });

  it.skipIf(!canBuild)(`make bpf rebuilds byte-identical objects${canBuild ? '' : ' (skipped: needs clang, make and libbpf-dev headers)'}`, async (ctx) => {
    const { entries, compiler } = readSums();
    const local = String((await execa('clang', ['--version'])).stdout).split('\n')[0]!.trim();
    if (compiler && !local.startsWith(compiler)) {
      ctx.skip(`shipped objects were built with "${compiler}", this machine has "${local}": not byte-comparable`);
      return;
    }
    const out = mkdtempSync(path.join(os.tmpdir(), 'npx-bpf-build-'));
    try {
      await execa('make', ['-s', '-C', REPO, 'bpf', `BPF_OUT=${out}`]);
      const objects = [...entries.keys()].filter((f) => f.endsWith('.o'));
      expect(objects.length).toBeGreaterThanOrEqual(1);
      for (const obj of objects) expect(sha256(path.join(out, path.basename(obj))), obj).toBe(entries.get(obj));
      // Nothing of the build machine leaks into the object.
      for (const obj of objects) expect(readFileSync(path.join(REPO, obj)).includes(Buffer.from(REPO))).toBe(false);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 60_000);
});

// Contained environment for the real-kernel BPF tests: a test cgroup v2 (never the root or
// anyone else's), a private bpffs in a temp dir (never /sys/fs/bpf), probe processes in a
// test network namespace, and a reference applier for the map update protocol. Everything
// is removed in the tests' afterAll and, should the process die first, by the exit hook.
import { execa, type ResultPromise } from 'execa';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { isBpffs } from '../../native/bpffs.js';
import { findCgroup2Root, type SockLbHandle } from '../../native/loader.js';
import {
  MEMBER_VAL, encodeBeKey, encodeBeVal, encodeMemberKey, encodeSvcKey, encodeSvcVal, type Endpoint, type ServiceKey,
} from '../../native/layout.js';

export const PROBE = fileURLToPath(new URL('./sockprobe.mjs', import.meta.url));
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

let counter = 0;
const cgroups = new Set<string>();
const mounts = new Set<string>();
const procs = new Set<ResultPromise>();

process.once('exit', () => {
  for (const p of procs) p.kill('SIGKILL');
  for (const cg of cgroups) {
    // Members are our own children (killed above); move any survivor to the parent first.
    try {
      for (const pid of readFileSync(path.join(cg, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
      }
    } catch { /* gone */ }
    for (let i = 0; i < 50 && existsSync(cg); i++) {
      try { rmdirSync(cg); } catch { spawnSync('sleep', ['0.02']); }
    }
  }
  for (const m of mounts) {
    spawnSync('umount', ['-l', m]);
    try { rmdirSync(m); } catch { /* ignore */ }
  }
});

/** Why the real-kernel BPF tests cannot run here, or null. */
export function kernelSkipReason(bpfSupport: () => { ok: true } | { ok: false; reason: string }): string | null {
  if (process.getuid?.() !== 0) return 'needs root';
  if (!findCgroup2Root()) return 'no cgroup v2 hierarchy';
  if (!['/usr/bin/nsenter', '/bin/nsenter'].some((p) => existsSync(p))) return 'needs nsenter (util-linux)';
  const s = bpfSupport();
  return s.ok ? null : s.reason;
}

/** A fresh cgroup v2 directory npx-bpf-<pid>-<n> under the cgroup2 root. */
export function createTestCgroup(): string {
  const root = findCgroup2Root();
  if (!root) throw new Error('no cgroup v2');
  const cg = path.join(root, `npx-bpf-${process.pid}-${++counter}`);
  mkdirSync(cg);
  cgroups.add(cg);
  return cg;
}

/** Remove a test cgroup: its processes must be gone (kill them first); retries while they exit. */
export async function removeTestCgroup(cg: string): Promise<void> {
  if (!cgroups.has(cg)) throw new Error(`refusing to remove ${cg}: not created by this test`);
  for (let i = 0; i < 100; i++) {
    const left = readFileSync(path.join(cg, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
    if (left.length === 0) {
      rmdirSync(cg);
      cgroups.delete(cg);
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`cgroup ${cg} still has processes`);
}

/** A private bpffs mounted on a fresh temp dir. */
export async function mountTestBpffs(): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'npx-bpffs-'));
  await execa('mount', ['-t', 'bpf', 'bpf', dir]);
  mounts.add(dir);
  if (!isBpffs(dir)) throw new Error(`mount -t bpf on ${dir} did not give a bpffs`);
  return dir;
}

export async function unmountTestBpffs(dir: string): Promise<void> {
  if (!mounts.has(dir)) throw new Error(`refusing to unmount ${dir}: not mounted by this test`);
  await execa('umount', [dir]);
  rmdirSync(dir);
  mounts.delete(dir);
}

/**
 * A private mount namespace whose /sys/fs/bpf is a bpffs of its own: a host with its BPF
 * filesystem, without touching the host's. `ip netns exec` started from inside it remounts /sys
 * and hides that bpffs, as it hides the host's. A sleeping process holds the namespace; stop()
 * (or the exit hook) kills it, and with it go the namespace, the bpffs and every pin in it.
 * Create the network namespaces it should see first: /run/netns entries made later do not
 * propagate into it.
 */
export async function privateSysBpffs(): Promise<{ pid: number; enter: (cmd: string[]) => string[]; stop: () => Promise<void> }> {
  const proc = execa('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mount -t bpf bpf /sys/fs/bpf && echo ready && exec sleep 3600'], { stdout: 'pipe', stderr: 'pipe', buffer: false, reject: false });
  procs.add(proc);
  const ready = await new Promise<boolean>((resolve) => {
    createInterface({ input: proc.stdout! }).once('line', (l) => resolve(l === 'ready'));
    void proc.then(() => resolve(false));
  });
  if (!ready || !proc.pid) {
    proc.kill('SIGKILL');
    throw new Error('unshare --mount with a bpffs on /sys/fs/bpf failed');
  }
  const pid = proc.pid;
  return {
    pid,
    enter: (cmd) => ['nsenter', `--mount=/proc/${pid}/ns/mnt`, ...cmd],
    stop: async () => {
      proc.kill('SIGKILL');
      await proc;
      procs.delete(proc);
    },
  };
}

/**
 * What is attached to the cgroup v2 root, per bpftool: "attach_type name" per program. The
 * root is never a test's to attach to: tests compare this before and after.
 */
export async function rootCgroupPrograms(): Promise<string[]> {
  const root = findCgroup2Root();
  if (!root) throw new Error('no cgroup v2');
  const r = await execa('bpftool', ['-j', 'cgroup', 'show', root]);
  const list = (String(r.stdout).trim() ? JSON.parse(String(r.stdout)) : []) as { attach_type: string; name: string }[];
  return list.map((p) => `${p.attach_type} ${p.name}`).sort();
}

/** One sockprobe.mjs process; `cmd` starts it (ip netns exec / nsenter ... node sockprobe.mjs). */
export class Probe {
  private nextId = 0;
  private readonly pending = new Map<number, (v: Record<string, unknown>) => void>();
  private exited: Error | undefined;
  pid = 0;

  private constructor(readonly name: string, private readonly proc: ResultPromise) {
    procs.add(proc);
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      let msg: Record<string, unknown>;
      try { msg = JSON.parse(line) as Record<string, unknown>; } catch { return; }
      const p = this.pending.get(msg.id as number);
      if (p) { this.pending.delete(msg.id as number); p(msg); }
    });
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    void proc.then((r) => {
      procs.delete(proc);
      this.exited = new Error(`probe ${name} exited (${r.exitCode ?? r.signal}): ${stderr.trim()}`);
      for (const p of this.pending.values()) p({ error: this.exited.message });
      this.pending.clear();
    });
  }

  static async start(name: string, cmd: string[]): Promise<Probe> {
    const proc = execa(cmd[0]!, cmd.slice(1), { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', buffer: false, reject: false });
    const p = new Probe(name, proc);
    try {
      const r = await p.req({ op: 'ping' }, 10_000);
      p.pid = r.pid as number;
    } catch (e) {
      proc.kill('SIGKILL');
      throw e;
    }
    return p;
  }

  req(r: Record<string, unknown>, timeoutMs = 20_000): Promise<Record<string, unknown>> {
    if (this.exited) return Promise.reject(this.exited);
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.pending.delete(id); reject(new Error(`probe ${this.name}: no answer to ${JSON.stringify(r)}`)); }, timeoutMs);
      this.pending.set(id, (v) => {
        clearTimeout(t);
        if (typeof v.error === 'string') reject(new Error(`probe ${this.name}: ${v.error}`));
        else resolve(v);
      });
      this.proc.stdin!.write(JSON.stringify({ id, ...r }) + '\n');
    });
  }

  async stop(): Promise<void> {
    this.proc.stdin!.end();
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 3000);
    await this.proc;
    clearTimeout(t);
  }
}

/** `ip netns exec` (servers: no cgroup needed). */
export const inNetns = (ns: string): string[] => ['ip', 'netns', 'exec', ns, process.execPath, PROBE];

/**
 * nsenter keeps /sys (ip netns exec would remount it and hide the cgroup fs); the fixed sh
 * wrapper puts itself into the cgroup ($1) BEFORE exec'ing node, so no socket is ever opened
 * outside it.
 */
export const inNetnsAndCgroup = (ns: string, cgroup: string): string[] => [
  'nsenter', `--net=/run/netns/${ns}`, 'sh', '-c', 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"', 'sh', cgroup, process.execPath, PROBE,
];
export const inNetnsOnly = (ns: string): string[] => ['nsenter', `--net=/run/netns/${ns}`, process.execPath, PROBE];

/** The cgroup v2 path of a process (the "0::" line), e.g. /npx-bpf-123-1. */
export function cgroupOf(pid: number): string {
  const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'));
  return line ? line.slice(3) : '';
}

/**
 * The reference implementation of the map update protocol (bpf/nftproxy_maps.h): a service's
 * slots go in under a NEW generation (gen numbers are global: be_key has no service in it),
 * then the service entry flips to it, then the old generation is deleted.
 */
export class RefApplier {
  private gen = 0;
  private readonly live = new Map<string, { gen: number; slots: Endpoint[]; members: Endpoint[] }>();
  /** `handle()` is asked on every write: a reload (loadSockLb again) gives a new handle. */
  constructor(private readonly handle: () => SockLbHandle) {}
  private get h(): SockLbHandle {
    return this.handle();
  }

  set(svc: ServiceKey, slots: Endpoint[], opts: { affinityTimeoutS?: number; members?: Endpoint[]; localCount?: number } = {}): number {
    const gen = ++this.gen;
    const members = opts.members ?? slots;
    slots.forEach((b, i) => this.h.update('backends', encodeBeKey(gen, i), encodeBeVal(b)));
    for (const m of members) this.h.update('members', encodeMemberKey(gen, m), MEMBER_VAL);
    this.h.update('svcs', encodeSvcKey(svc), encodeSvcVal({ gen, count: slots.length, affinity: opts.affinityTimeoutS !== undefined, affinityTimeoutS: opts.affinityTimeoutS ?? 0, localCount: opts.localCount ?? 0 }));
    const k = `${svc.addr}|${svc.port}|${svc.proto}`;
    const old = this.live.get(k);
    this.live.set(k, { gen, slots, members });
    if (old) this.drop(old);
    return gen;
  }

  delete(svc: ServiceKey): void {
    const k = `${svc.addr}|${svc.port}|${svc.proto}`;
    this.h.delete('svcs', encodeSvcKey(svc));
    const old = this.live.get(k);
    this.live.delete(k);
    if (old) this.drop(old);
  }

  private drop(old: { gen: number; slots: Endpoint[]; members: Endpoint[] }): void {
    old.slots.forEach((_b, i) => this.h.delete('backends', encodeBeKey(old.gen, i)));
    for (const m of old.members) this.h.delete('members', encodeMemberKey(old.gen, m));
  }
}


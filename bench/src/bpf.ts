// The BPF hot path for the data-plane phase, contained: a bench cgroup v2
// (<cgroup2 root>/npx-bench-<pid>-<n>: never the root cgroup or anyone else's), a private bpffs
// mounted on a fresh temp dir (/tmp/npx-bench-bpffs-<pid>-XXXXXX: never /sys/fs/bpf), and the
// product's socket load balancer (bpf/sock_lb.o) attached to THAT cgroup only, its maps filled
// by the product's BpfApplier with the entries bpfServices() computes for the ruleset the lab
// holds. Only processes put into the cgroup see it: the client runs through nsenter (network
// namespace only; `ip netns exec` would remount /sys and hide the cgroup fs) and a fixed sh
// wrapper that writes its own pid into cgroup.procs BEFORE exec'ing the client, so no socket is
// ever opened outside the cgroup.
//
// Every piece registers its undo with sys.ts (registerCleanup) as soon as it exists, so the
// end of the phase, a failure, SIGINT/SIGTERM and the exit hook all remove it: the programs
// detached and unpinned, the bpffs unmounted, the cgroup emptied (its processes are ours) and
// removed. Leftovers of a bench run that died (kill -9) are removed at the next start.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isBpffs } from '../../native/bpffs.js';
import { adopt, bpfSupport, findCgroup2Root, loadSockLb, type LoadReport, type SockLbHandle } from '../../native/loader.js';
import { BpfApplier } from '../../src/apply/bpf-applier.js';
import type { ServicePortInfo } from '../../src/ir/types.js';
import type { ProxyConfig } from '../../src/model/config.js';
import { type BpfService, bpfKey, bpfKeptSources, bpfServices } from '../../src/compile/bpf-coverage.js';
import { type Netns, registerCleanup, run, sleep } from './sys.js';

const CG_PREFIX = 'npx-bench';
const FS_PREFIX = 'npx-bench-bpffs';
let counter = 0;

/** The shipped object, from the repository (the loader's own default looks next to dist/native/). */
export const bpfObject = (repo: string): string => join(repo, 'bpf', 'sock_lb.o');

/** Why the BPF rows cannot run here, or null. */
export function bpfSkipReason(repo: string): string | null {
  if (!['/usr/bin/nsenter', '/bin/nsenter'].some((p) => existsSync(p))) return 'needs nsenter (util-linux) to run the client in its namespace and the bench cgroup';
  const root = findCgroup2Root();
  if (!root) return 'no cgroup v2 hierarchy mounted (looked at /sys/fs/cgroup and /sys/fs/cgroup/unified)';
  const s = bpfSupport({ objectPath: bpfObject(repo), cgroupPath: root });
  return s.ok ? null : s.reason;
}

export interface BpfLab {
  readonly cgroup: string;
  readonly bpffs: string;
  readonly pinDir: string;
  readonly report: LoadReport;
  /** the entries written (bpfServices of the lab's ruleset) and the map writes it took */
  readonly services: readonly BpfService[];
  readonly writes: number;
  has(addr: string, port: number, proto: 'tcp' | 'udp'): boolean;
  /** argv running `cmd` in `ns` (network namespace only) and inside the bench cgroup */
  wrap(ns: Netns, cmd: readonly string[]): string[];
  /** Detach + unpin + close, unmount the bpffs, remove the cgroup (killing what is left in it). */
  destroy(): Promise<void>;
}

/**
 * Creates the cgroup and the bpffs, loads the socket LB attached to the cgroup, fills its maps
 * for `ports`. On failure everything created so far is removed before the error is thrown.
 */
export async function createBpfLab(o: { repo: string; ports: readonly ServicePortInfo[]; cfg: ProxyConfig }): Promise<BpfLab> {
  const root = findCgroup2Root();
  if (!root) throw new Error('no cgroup v2 hierarchy');
  const undo: Array<{ run(): Promise<void> }> = [];
  const destroy = async (): Promise<void> => {
    const errs: string[] = [];
    while (undo.length) {
      try { await undo.pop()!.run(); } catch (e) { errs.push((e as Error).message.split('\n')[0]!); }
    }
    if (errs.length) throw new Error(`BPF lab cleanup: ${errs.join('; ')}`);
  };
  try {
    // 1. the cgroup (removed last)
    const cgroup = join(root, `${CG_PREFIX}-${process.pid}-${++counter}`);
    mkdirSync(cgroup);
    undo.push(registerCleanup({ name: `cgroup ${cgroup}`, sync: () => removeCgroupSync(cgroup), async: () => removeCgroup(cgroup) }));
    // 2. the private bpffs
    const bpffs = mkdtempSync(join(tmpdir(), `${FS_PREFIX}-${process.pid}-`));
    undo.push(registerCleanup({ name: `bpffs ${bpffs}`, sync: () => unmountSync(bpffs), async: () => unmount(bpffs) }));
    const m = await run(['mount', '-t', 'bpf', 'bpf', bpffs]);
    if (m.exitCode !== 0 || !isBpffs(bpffs)) throw new Error(`mount -t bpf on ${bpffs} failed: ${m.stderr.trim() || `exit ${m.exitCode}`}`);
    // 3. the programs, attached to the cgroup, pinned in the private bpffs
    const pinDir = join(bpffs, 'sock_lb');
    const handle = loadSockLb({ cgroupPath: cgroup, pinDir, objectPath: bpfObject(o.repo) });
    undo.push(registerCleanup({ name: `sock_lb ${pinDir}`, sync: () => release(handle) }));
    // 4. the maps
    // (as the daemon: the sources nft's ClusterIP masquerade keeps, then the services; the
    // BPF rows' client binds CLIENT_BPF, inside the cluster CIDR)
    const services = bpfServices(o.ports, o.cfg);
    const applier = new BpfApplier(handle);
    const writes = applier.keepSources(bpfKeptSources(o.cfg.clusterCIDRs)) + applier.sync(services).writes;
    const keys = new Set(services.map(bpfKey));
    return {
      cgroup, bpffs, pinDir, report: handle.report, services, writes,
      has: (addr, port, proto) => keys.has(bpfKey({ addr: addr as BpfService['addr'], port, proto })),
      wrap: (ns, cmd) => ['nsenter', `--net=/run/netns/${ns.name}`, 'sh', '-c', 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"', 'sh', cgroup, ...cmd],
      destroy,
    };
  } catch (e) {
    await destroy().catch(() => undefined);
    throw e;
  }
}

function release(h: SockLbHandle): void {
  const errs: string[] = [];
  for (const f of [() => h.detach(), () => h.unpin(), () => h.close()]) {
    try { f(); } catch (e) { errs.push((e as Error).message.split('\n')[0]!); }
  }
  if (errs.length) throw new Error(errs.join('; '));
}

const procsOf = (cg: string): number[] => {
  try { return readFileSync(join(cg, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number); } catch { return []; }
};
/** Only our clients are ever put into the bench cgroup: whatever is still there is killed. */
const killProcs = (cg: string): void => {
  for (const pid of procsOf(cg)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
};
const tryRmdir = (d: string): boolean => {
  try { rmdirSync(d); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'ENOENT'; }
};
const sleepSync = (ms: number): void => { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms); };

async function removeCgroup(cg: string): Promise<void> {
  for (let i = 0; i < 250; i++) {
    killProcs(cg);
    if (tryRmdir(cg)) return;
    await sleep(20);
  }
  throw new Error(`cannot remove cgroup ${cg} (processes: ${procsOf(cg).join(' ') || 'none'})`);
}

function removeCgroupSync(cg: string): void {
  for (let i = 0; i < 250; i++) {
    killProcs(cg);
    if (tryRmdir(cg)) return;
    sleepSync(20);
  }
  throw new Error(`cannot remove cgroup ${cg}`);
}

async function unmount(dir: string): Promise<void> {
  if (isBpffs(dir)) {
    const r = await run(['umount', dir]);
    if (r.exitCode !== 0) {
      const lazy = await run(['umount', '-l', dir]);
      if (lazy.exitCode !== 0) throw new Error(`umount ${dir}: ${r.stderr.trim()}`);
    }
  }
  tryRmdir(dir);
}

function unmountSync(dir: string): void {
  if (isBpffs(dir)) spawnSync('umount', ['-l', dir]); // lazy: the exit hook must not hang on a busy mount
  tryRmdir(dir);
}

/**
 * Leftovers of bench runs whose process is gone (kill -9): their bpffs mounts (programs
 * detached and unpinned first, then unmounted) and their empty cgroups. Returns what it removed.
 */
export function removeBpfOrphans(): string[] {
  const removed: string[] = [];
  const dead = (pid: string): boolean => Number(pid) !== process.pid && !existsSync(`/proc/${pid}`);
  let mounts: string[] = [];
  try { mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n'); } catch { /* none */ }
  const fsRe = new RegExp(`/${FS_PREFIX}-(\\d+)-[^/]+$`);
  for (const line of mounts) {
    const [, mnt, type] = line.split(' ');
    if (type !== 'bpf' || !mnt) continue;
    const m = fsRe.exec(mnt);
    if (!m || !dead(m[1]!)) continue;
    const pinDir = join(mnt, 'sock_lb');
    if (existsSync(pinDir)) { try { release(adopt(pinDir)); } catch { /* a partial pin set: the unmount releases it */ } }
    unmountSync(mnt);
    removed.push(mnt);
  }
  const root = findCgroup2Root();
  if (root) {
    const cgRe = new RegExp(`^${CG_PREFIX}-(\\d+)-\\d+$`);
    for (const name of readdirSync(root)) {
      const m = cgRe.exec(name);
      if (!m || !dead(m[1]!)) continue;
      const cg = join(root, name);
      if (procsOf(cg).length === 0 && tryRmdir(cg)) removed.push(cg);
    }
  }
  return removed;
}

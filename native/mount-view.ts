// Where `nftproxy status` and `cleanup` look for the pins and the cgroups. A pin path and a
// cgroup path mean something only in a mount namespace: `ip netns exec` gives its command a
// mount namespace of its own with a fresh /sys, where /sys/fs/bpf is an empty sysfs directory
// and /sys/fs/cgroup does not exist. Run that way, a lookup in the process's own view finds
// nothing while the programs stay attached (issue 14).
//
// So besides its own view a command looks, through /proc/PID/root (which resolves paths in
// that process's mount namespace), in:
// - the view it was started from: the nearest ancestor process in another mount namespace
//   (for `ip netns exec`, the operator's shell), readable because it is our own ancestor;
// - PID 1's view, when readable (root, and a kernel or sandbox that allows it).
// The first view with a BPF filesystem where the pin directory would be is the one the path
// means; a view that cannot be read is reported, never taken as "nothing pinned".
import { readdirSync, readFileSync, statSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { BPF_FS_MAGIC } from './bpffs.js';

const CGROUP2_SUPER_MAGIC = 0x63677270;

export interface MountView {
  /** '' for this process's own view, else `/proc/PID/root` */
  readonly root: string;
  /** for messages */
  readonly label: string;
}

const OWN_VIEW: MountView = { root: '', label: 'this mount namespace' };

const mntIno = (proc: string, pid: string): bigint => statSync(`${proc}/${pid}/ns/mnt`, { bigint: true }).ino;

function parentOf(proc: string, pid: number): number {
  // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses
  const stat = readFileSync(`${proc}/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

const commOf = (proc: string, pid: number): string => {
  try {
    return readFileSync(`${proc}/${pid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
};

export interface MountViews {
  readonly views: readonly MountView[];
  /** set when the view this command was started from could not be found: which process we could not read */
  readonly blind: string | undefined;
}

/** This process's view, the view it was started from, PID 1's: each once, in that order. */
export function mountViews(proc = '/proc'): MountViews {
  const views: MountView[] = [OWN_VIEW];
  let self: bigint;
  try {
    self = mntIno(proc, 'self');
  } catch (e) {
    return { views, blind: `${proc}/self/ns/mnt: ${(e as NodeJS.ErrnoException).code ?? String(e)}` };
  }
  const seen = new Set<bigint>([self]);
  let blind: string | undefined;
  let pid = 0;
  try {
    pid = parentOf(proc, process.pid);
    for (let hops = 0; pid > 1 && hops < 64; pid = parentOf(proc, pid), hops++) {
      const ino = mntIno(proc, String(pid));
      if (ino !== self) {
        views.push({ root: `${proc}/${pid}/root`, label: `the mount namespace this command was started from (pid ${pid}, ${commOf(proc, pid)})` });
        seen.add(ino);
        break;
      }
    }
  } catch (e) {
    // An ancestor we may not read (not root): whether it is in another mount namespace is
    // unknown, so our own view may be a partial one.
    blind = `${proc}/${pid}/ns/mnt: ${(e as NodeJS.ErrnoException).code ?? String(e)}`;
  }
  try {
    if (!seen.has(mntIno(proc, '1'))) views.push({ root: `${proc}/1/root`, label: 'PID 1\'s mount namespace' });
  } catch {
    /* not readable (not root, or a sandbox): the views above are all there is */
  }
  return { views, blind };
}

export type PinLocation =
  /** `path` is the pin directory, reached in `view`, on a BPF filesystem */
  | { readonly kind: 'found'; readonly path: string; readonly view: MountView }
  /** no view has the pin directory: `where` says what each view has instead */
  | { readonly kind: 'absent'; readonly where: readonly string[] }
  /** a view that may hold it could not be read */
  | { readonly kind: 'unreadable'; readonly where: readonly string[]; readonly reason: string };

type ViewAnswer = { kind: 'found'; path: string } | { kind: 'bpffs-without-dir'; mount: string } | { kind: 'no-bpffs'; nearest: string } | { kind: 'error'; reason: string };

function lookIn(view: MountView, pinDir: string): ViewAnswer {
  const full = view.root + path.resolve(pinDir);
  const rel = (p: string): string => p.slice(view.root.length) || '/';
  try {
    statSync(full);
    if (statfsSync(full).type === BPF_FS_MAGIC) return { kind: 'found', path: full };
    return { kind: 'no-bpffs', nearest: rel(full) };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return { kind: 'error', reason: `${rel(full)}: ${(e as NodeJS.ErrnoException).code ?? String(e)}` };
  }
  // absent: is the place it would be on a BPF filesystem (then nothing is pinned there)?
  for (let dir = path.dirname(full); ; dir = path.dirname(dir)) {
    try {
      const t = statfsSync(dir).type;
      return t === BPF_FS_MAGIC ? { kind: 'bpffs-without-dir', mount: rel(dir) } : { kind: 'no-bpffs', nearest: rel(dir) };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') return { kind: 'error', reason: `${rel(dir)}: ${code ?? String(e)}` };
      if (dir === path.dirname(dir) || dir === view.root) return { kind: 'no-bpffs', nearest: rel(dir) };
    }
  }
}

/** Find `pinDir` in the views (see the header). */
export function locatePinDir(pinDir: string, mv: MountViews = mountViews()): PinLocation {
  const where: string[] = [];
  let unreadable: string | undefined;
  const views = mv.views;
  for (const v of views) {
    const a = lookIn(v, pinDir);
    switch (a.kind) {
      case 'found':
        return { kind: 'found', path: a.path, view: v };
      case 'bpffs-without-dir':
        // this view has the BPF filesystem the path points into: it is the one meant
        where.push(`${v.label}: no ${pinDir} on the BPF filesystem at ${a.mount}`);
        return { kind: 'absent', where };
      case 'no-bpffs':
        where.push(`${v.label}: no BPF filesystem at ${a.nearest}`);
        break;
      case 'error':
        where.push(`${v.label}: cannot read ${a.reason}`);
        unreadable ??= a.reason;
        break;
    }
  }
  if (mv.blind && !unreadable) {
    where.push(`the mount namespace this command was started from: cannot read ${mv.blind}`);
    unreadable = mv.blind;
  }
  return unreadable ? { kind: 'unreadable', where, reason: unreadable } : { kind: 'absent', where };
}

/**
 * The cgroup v2 mounts of a view, from its mountinfo (a DaemonSet mounts the host's hierarchy
 * where it likes, e.g. /run/nftproxy/cgroup); /sys/fs/cgroup and /sys/fs/cgroup/unified first.
 */
function cgroup2Mounts(view: MountView): string[] {
  const isCgroup2 = (p: string): boolean => {
    try {
      return statfsSync(p).type === CGROUP2_SUPER_MAGIC;
    } catch {
      return false;
    }
  };
  const usual = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'];
  let listed: string[] = [];
  try {
    const info = view.root === '' ? '/proc/self/mountinfo' : `${path.dirname(view.root)}/mountinfo`;
    listed = readFileSync(info, 'utf8').split('\n').flatMap((line) => {
      // "36 35 98:0 /mnt1 /mnt/point rw,noatime master:1 - cgroup2 cgroup2 rw": point is field 5
      const [pre, post] = line.split(' - ');
      const point = pre?.split(' ')[4];
      return post?.startsWith('cgroup2 ') && point ? [point.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)))] : [];
    });
  } catch {
    /* the usual places only */
  }
  return [...new Set([...usual, ...listed])].map((p) => view.root + p).filter(isCgroup2);
}

/**
 * The path of the cgroup v2 whose id is `id` (on cgroup v2 the id is the directory's inode
 * number), as the first view that has it mounts it; null when no view has it (removed, or
 * outside this cgroup namespace). Walks the hierarchy breadth-first: cheap next to a BPF load,
 * and the kernel offers no id -> path lookup short of open_by_handle_at.
 */
export function cgroupPathById(id: bigint, views: readonly MountView[] = mountViews().views): { path: string; view: MountView } | null {
  for (const view of views) {
    for (const mount of cgroup2Mounts(view)) {
      const queue = [mount];
      for (let next = 0; next < queue.length && next < 200_000; next++) {
        const dir = queue[next]!;
        try {
          if (statSync(dir, { bigint: true }).ino === id) return { path: dir.slice(view.root.length), view };
          for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) queue.push(path.join(dir, e.name));
        } catch {
          /* removed meanwhile */
        }
      }
    }
  }
  return null;
}

// High-level loader for the precompiled socket load balancer (bpf/sock_lb.o) and the UDP
// socket destroyer (bpf/sock_destroy.o).
//
//   loadSockLb({ cgroupPath, pinDir, objectPath })  open + load + attach to a cgroup v2, pin
//       links and maps under pinDir. If pinDir already holds nftproxy's maps and links (a
//       restart), the pinned maps are REUSED (their contents survive) and each pinned link is
//       switched to the new program with bpf_link_update: the hooks never go away, no gap.
//   adopt(pinDir)        the pinned maps and links of a running instance, without loading
//                        anything (programs keep running; the handle writes the maps).
//   handle.detach()      detach every hook now and remove the link pins.
//   handle.unpin()       remove the map pins (and pinDir when empty).
//   handle.close()       release this process's fds; pinned objects stay.
//   bpfSupport()         {ok} or {ok:false, reason} for --bpf=auto.
//   loadSockDestroy()    destroy connected UDP sockets whose peer is a removed backend.
//   pinnedLinks(pinDir)  what the kernel says about each pinned link: program, cgroup id, hook.
//   write/readPinRecord  who pinned (network namespace) and where sockets are destroyed: what
//                        the kernel cannot say, as symlinks beside the pins.
//
// Maps are read and written with Buffers laid out as in native/layout.ts.
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readlinkSync, readSync, rmdirSync, statSync, statfsSync, symlinkSync, unlinkSync, constants as fsc } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isBpffs } from './bpffs.js';
import { BPF_PROG_TYPE_CGROUP_SOCK_ADDR, LibbpfError, libbpf, mapInfo, type MapDef, type Ptr } from './libbpf.js';
import { MAPS, SIZES, decodeDestroyedRecs, encodeDeadKey, DEAD_VAL, type Endpoint } from './layout.js';

// native/loader.ts runs from the repo (tests) or from dist/native/ (the build): the repo is
// whichever ancestor holds bpf/.
const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = [path.resolve(HERE, '..'), path.resolve(HERE, '..', '..')].find((d) => existsSync(path.join(d, 'bpf', 'sock_lb.o'))) ?? path.resolve(HERE, '..');
export const DEFAULT_OBJECT = path.join(REPO, 'bpf', 'sock_lb.o');
export const DEFAULT_DESTROY_OBJECT = path.join(REPO, 'bpf', 'sock_destroy.o');

/** Reverse hooks first, so a rewritten socket can always be translated back. */
export const PROGRAMS = ['npx_recvmsg4', 'npx_recvmsg6', 'npx_getpeer4', 'npx_getpeer6', 'npx_connect4', 'npx_connect6', 'npx_sendmsg4', 'npx_sendmsg6'] as const;
export type ProgramName = (typeof PROGRAMS)[number];

export type LbMap = 'svcs' | 'backends' | 'members' | 'affinity' | 'revnat' | 'podcidrs';
export const LB_MAPS: Record<LbMap, { name: string; key: number; value: number }> = {
  svcs: { name: MAPS.svcs, key: SIZES.svc_key, value: SIZES.svc_val },
  backends: { name: MAPS.backends, key: SIZES.be_key, value: SIZES.be_val },
  members: { name: MAPS.members, key: SIZES.member_key, value: SIZES.member_val },
  affinity: { name: MAPS.affinity, key: SIZES.aff_key, value: SIZES.aff_val },
  revnat: { name: MAPS.revnat, key: SIZES.rev_key, value: SIZES.rev_val },
  podcidrs: { name: MAPS.podcidrs, key: SIZES.cidr_key, value: SIZES.cidr_val },
};

const linkPin = (pinDir: string, prog: string): string => path.join(pinDir, `link_${prog}`);
const mapPin = (pinDir: string, m: LbMap): string => path.join(pinDir, LB_MAPS[m].name);

const BPF_LINK_TYPE_CGROUP = 3;
const CLONE_NEWNET = 0x40000000;

export interface SockLbOptions {
  /** A cgroup v2 directory: every socket of every process below it is load-balanced. */
  cgroupPath: string;
  /** A directory on a bpffs (see ensurePinDir in bpffs.ts). */
  pinDir: string;
  objectPath?: string;
}

export interface LoadReport {
  /** programs attached fresh / switched in place on an existing pinned link / re-attached because the pinned link was on another cgroup */
  attached: string[];
  replaced: string[];
  moved: string[];
  /** maps found pinned and reused (contents kept) */
  reusedMaps: string[];
  /** maps found pinned with another layout (an older nftproxy): unpinned and created afresh.
   * The old programs keep theirs until their links are switched; the new ones start empty,
   * so their connections go to nft until the first sync fills them. */
  replacedMaps: string[];
}

export interface SockLbHandle {
  readonly pinDir: string;
  readonly report: LoadReport;
  /** map fds (valid until close()) */
  readonly fds: Readonly<Record<LbMap, number>>;
  update(map: LbMap, key: Buffer, value: Buffer, flags?: bigint): void;
  /** false when the key was absent */
  delete(map: LbMap, key: Buffer): boolean;
  lookup(map: LbMap, key: Buffer): Buffer | null;
  keys(map: LbMap): Buffer[];
  /** [key, value] pairs (a snapshot; entries deleted meanwhile are skipped) */
  entries(map: LbMap): Array<[Buffer, Buffer]>;
  /** Detach every hook now and remove the link pins. */
  detach(): void;
  /** Remove the map pins (and pinDir when empty). */
  unpin(): void;
  /** Release this process's fds and object; pinned links/maps stay. Idempotent. */
  close(): void;
}

function sizeCheck(map: LbMap, what: 'key' | 'value', b: Buffer): void {
  const want = LB_MAPS[map][what];
  if (b.length !== want) throw new Error(`${LB_MAPS[map].name}: ${what} is ${b.length} bytes, expected ${want}`);
}

function makeHandle(pinDir: string, fds: Record<LbMap, number>, links: Map<string, number>, report: LoadReport, release: () => void): SockLbHandle {
  const lib = libbpf();
  let closed = false;
  const live = (): void => {
    if (closed) throw new Error('sock_lb handle is closed');
  };
  const handle: SockLbHandle = {
    pinDir,
    report,
    fds,
    update(map, key, value, flags) {
      live();
      sizeCheck(map, 'key', key);
      sizeCheck(map, 'value', value);
      lib.map_update_elem(fds[map], key, value, flags);
    },
    delete(map, key) {
      live();
      sizeCheck(map, 'key', key);
      return lib.map_delete_elem(fds[map], key);
    },
    lookup(map, key) {
      live();
      sizeCheck(map, 'key', key);
      const v = Buffer.alloc(LB_MAPS[map].value);
      return lib.map_lookup_elem(fds[map], key, v) ? v : null;
    },
    keys(map) {
      live();
      return mapKeys(fds[map], LB_MAPS[map].key, LB_MAPS[map].name);
    },
    entries(map) {
      const out: Array<[Buffer, Buffer]> = [];
      for (const k of handle.keys(map)) {
        const v = handle.lookup(map, k);
        if (v) out.push([k, v]);
      }
      return out;
    },
    detach() {
      live();
      for (const [prog, fd] of links) {
        detachLink(fd);
        links.delete(prog);
      }
      for (const prog of PROGRAMS) rmPin(linkPin(pinDir, prog));
    },
    unpin() {
      unpinMaps(pinDir);
    },
    close() {
      if (closed) return;
      closed = true;
      for (const fd of links.values()) closeSync(fd);
      links.clear();
      release();
    },
  };
  return handle;
}

/** Every key of a map, by bpf_map_get_next_key (a snapshot). */
function mapKeys(fd: number, keySize: number, name: string): Buffer[] {
  const lib = libbpf();
  const out: Buffer[] = [];
  let prev: Buffer | null = null;
  for (;;) {
    const next = Buffer.alloc(keySize);
    if (!lib.map_get_next_key(fd, prev, next)) break;
    out.push(next);
    prev = next;
    if (out.length > 16_000_000) throw new Error(`${name}: iteration does not end`);
  }
  return out;
}

/** Detach a cgroup link now and close our fd. */
function detachLink(fd: number): void {
  try {
    libbpf().link_detach(fd);
  } catch (e) {
    // Old kernels without BPF_LINK_DETACH: dropping the pin and our fd releases it.
    if (!(e instanceof LibbpfError)) throw e;
  } finally {
    closeSync(fd);
  }
}

/** Remove the map pins and the record, and pinDir when nothing else is left in it. */
function unpinMaps(pinDir: string): void {
  for (const m of Object.keys(LB_MAPS) as LbMap[]) rmPin(mapPin(pinDir, m));
  for (const r of Object.values(PIN_RECORD)) rmPin(path.join(pinDir, r));
  try {
    if (existsSync(pinDir) && readdirSync(pinDir).length === 0) rmdirSync(pinDir);
  } catch {
    /* not empty / already gone */
  }
}

function rmPin(p: string): void {
  try {
    unlinkSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

export interface LinkInfo {
  /** BPF_LINK_TYPE_*: 3 is a cgroup link */
  readonly type: number;
  readonly id: number;
  readonly progId: number;
  /** for a cgroup link: the cgroup's id (its directory's inode number), 0 once detached */
  readonly cgroupId: bigint;
  /** for a cgroup link: BPF_CGROUP_* (see HOOKS) */
  readonly attachType: number;
}

/** struct bpf_link_info of a link fd (the cgroup member of its union). */
export function linkInfo(fd: number): LinkInfo {
  const info = Buffer.alloc(64);
  libbpf().obj_get_info_by_fd(fd, info);
  return { type: info.readUInt32LE(0), id: info.readUInt32LE(4), progId: info.readUInt32LE(8), cgroupId: info.readBigUInt64LE(16), attachType: info.readUInt32LE(24) };
}

/** enum bpf_attach_type values of the socket LB's hooks, named as bpftool names them. */
export const HOOKS: Readonly<Record<number, string>> = { 10: 'connect4', 11: 'connect6', 14: 'sendmsg4', 15: 'sendmsg6', 19: 'recvmsg4', 20: 'recvmsg6', 29: 'getpeername4', 30: 'getpeername6' };

/** The name the kernel has for a loaded program (bpf_prog_info.name, 15 chars at most). */
export function progName(progId: number): string {
  const lib = libbpf();
  const fd = lib.prog_get_fd_by_id(progId);
  try {
    const info = Buffer.alloc(80); // up to and including name[16] at offset 64
    lib.obj_get_info_by_fd(fd, info);
    const name = info.subarray(64, 80);
    return name.toString('utf8', 0, name.indexOf(0) < 0 ? 16 : name.indexOf(0));
  } finally {
    closeSync(fd);
  }
}

/**
 * Is the link with this id still attached to a cgroup? Gone (freed) or detached (kept alive,
 * defunct, by someone's fd) both say no. The kernel's word, whatever mount view we are in.
 */
export function linkAttached(id: number): boolean {
  let fd: number;
  try {
    fd = libbpf().link_get_fd_by_id(id);
  } catch (e) {
    if (e instanceof LibbpfError && e.code === 'ENOENT') return false;
    throw e;
  }
  try {
    return linkInfo(fd).cgroupId !== 0n;
  } finally {
    closeSync(fd);
  }
}

export interface PinnedLink {
  /** the pin's file name, e.g. link_npx_connect4 */
  readonly pin: string;
  readonly link: LinkInfo;
  /** the program the link runs, by the kernel's name for it; null when it cannot be read */
  readonly program: string | null;
  /** e.g. connect4; `attach type N` for one this version does not name */
  readonly hook: string;
}

/** Every link pinned under `pinDir` (any version's names: `link_*`), as the kernel describes it. */
export function pinnedLinks(pinDir: string): PinnedLink[] {
  const lib = libbpf();
  const out: PinnedLink[] = [];
  for (const pin of readdirSync(pinDir).filter((f) => f.startsWith('link_')).sort()) {
    const fd = lib.obj_get(path.join(pinDir, pin));
    let link: LinkInfo;
    try {
      link = linkInfo(fd);
    } finally {
      closeSync(fd);
    }
    let program: string | null = null;
    try {
      program = progName(link.progId);
    } catch {
      /* unloaded meanwhile */
    }
    out.push({ pin, link, program, hook: HOOKS[link.attachType] ?? `attach type ${link.attachType}` });
  }
  return out;
}

/**
 * What the kernel cannot tell about a pin set, recorded beside the pins as symlinks (a bpffs
 * holds no regular files; `ls -l` shows them): the network namespace of the daemon that pinned
 * them, `net:[ino]` as /proc/PID/ns/net reads, and its --bpf-netns-dir.
 */
export const PIN_RECORD = { ownerNetns: 'owner_netns', netnsDir: 'netns_dir' } as const;

export interface PinRecord {
  readonly ownerNetns: string | null;
  readonly netnsDir: string | null;
}

export function readPinRecord(pinDir: string): PinRecord {
  const read = (name: string): string | null => {
    try {
      return readlinkSync(path.join(pinDir, name));
    } catch {
      return null;
    }
  };
  return { ownerNetns: read(PIN_RECORD.ownerNetns), netnsDir: read(PIN_RECORD.netnsDir) };
}

export function writePinRecord(pinDir: string, r: { ownerNetns: string; netnsDir?: string | undefined }): void {
  const put = (name: string, target: string | undefined): void => {
    const p = path.join(pinDir, name);
    rmPin(p);
    if (target !== undefined) symlinkSync(target, p);
  };
  put(PIN_RECORD.ownerNetns, r.ownerNetns);
  put(PIN_RECORD.netnsDir, r.netnsDir);
}

/** Load bpf/sock_lb.o, attach it to `cgroupPath`, pin under `pinDir` (see the header). */
export function loadSockLb(opts: SockLbOptions): SockLbHandle {
  const lib = libbpf();
  const objectPath = opts.objectPath ?? DEFAULT_OBJECT;
  const { pinDir, cgroupPath } = opts;
  if (!existsSync(objectPath)) throw new Error(`BPF object ${objectPath} not found (build it with \`make bpf\`)`);
  mkdirSync(pinDir, { recursive: true });
  if (!isBpffs(pinDir)) throw new Error(`${pinDir} is not on a BPF filesystem (ensurePinDir() mounts one)`);
  const cgStat = statSync(cgroupPath, { bigint: true });
  if (!cgStat.isDirectory()) throw new Error(`${cgroupPath} is not a cgroup directory`);

  const report: LoadReport = { attached: [], replaced: [], moved: [], reusedMaps: [], replacedMaps: [] };

  const obj = lib.object_open_file(objectPath);
  const links = new Map<string, number>();
  const fresh: string[] = [];
  let cgFd = -1;
  try {
    for (const m of Object.keys(LB_MAPS) as LbMap[]) {
      const map = lib.find_map(obj, LB_MAPS[m].name);
      const pin = mapPin(pinDir, m);
      if (existsSync(pin)) {
        // libbpf refuses to reuse a pinned map whose layout differs (an upgrade that changed
        // it): that one is unpinned and made afresh, the others keep their contents.
        const fd = lib.obj_get(pin);
        let pinned: MapDef;
        try {
          pinned = mapInfo(lib, fd);
        } finally {
          closeSync(fd);
        }
        const want = lib.map_def(map);
        if ((Object.keys(want) as (keyof MapDef)[]).every((k) => want[k] === pinned[k])) report.reusedMaps.push(LB_MAPS[m].name);
        else {
          rmPin(pin);
          report.replacedMaps.push(LB_MAPS[m].name);
        }
      }
      lib.map_set_pin_path(map, pin);
    }
    try {
      lib.object_load(obj); // creates + pins the maps, or reuses the pinned ones (libbpf checks they are compatible)
    } catch (e) {
      if (e instanceof LibbpfError && /reuse pinned map/.test(e.log)) {
        e.message += `\nThe maps pinned under ${pinDir} do not match this object's layout (an older nftproxy?): detach and unpin them (or remove ${pinDir}) and start again.`;
      }
      throw e;
    }
    const fds = {} as Record<LbMap, number>;
    for (const m of Object.keys(LB_MAPS) as LbMap[]) fds[m] = lib.map_fd(lib.find_map(obj, LB_MAPS[m].name));

    cgFd = openSync(cgroupPath, fsc.O_RDONLY | fsc.O_DIRECTORY);
    for (const prog of PROGRAMS) {
      const p = lib.find_program(obj, prog);
      const progFd = lib.program_fd(p);
      const pin = linkPin(pinDir, prog);
      if (existsSync(pin)) {
        const fd = lib.obj_get(pin);
        const info = linkInfo(fd);
        if (info.type === BPF_LINK_TYPE_CGROUP && info.cgroupId === cgStat.ino) {
          lib.link_update(fd, progFd); // atomic replacement: the hook never goes away
          links.set(prog, fd);
          report.replaced.push(prog);
          continue;
        }
        // Pinned on another (or a removed) cgroup: detach it and attach here.
        try {
          lib.link_detach(fd);
        } catch {
          /* defunct already */
        }
        closeSync(fd);
        rmPin(pin);
        report.moved.push(prog);
      }
      const link: Ptr = lib.attach_cgroup(p, cgFd);
      try {
        lib.link_pin(link, pin);
      } catch (e) {
        lib.link_destroy(link); // unpinned: destroying it detaches it
        throw e;
      }
      lib.link_destroy(link); // closes our fd only: the pin keeps the link attached
      fresh.push(prog);
      links.set(prog, lib.obj_get(pin));
      report.attached.push(prog);
    }
    closeSync(cgFd);
    cgFd = -1;
    return makeHandle(pinDir, fds, links, report, () => lib.object_close(obj));
  } catch (e) {
    // Undo what this call attached; replaced links keep whatever program they run.
    for (const prog of fresh) {
      const fd = links.get(prog);
      if (fd !== undefined) {
        try {
          lib.link_detach(fd);
        } catch {
          /* ignore */
        }
      }
      rmPin(linkPin(pinDir, prog));
    }
    for (const fd of links.values()) closeSync(fd);
    if (cgFd >= 0) closeSync(cgFd);
    lib.object_close(obj);
    throw e;
  }
}

/** Take over the pinned maps and links of a running instance without loading anything. */
export function adopt(pinDir: string): SockLbHandle {
  const lib = libbpf();
  const fds = {} as Record<LbMap, number>;
  const links = new Map<string, number>();
  const all: number[] = [];
  try {
    for (const m of Object.keys(LB_MAPS) as LbMap[]) {
      const p = mapPin(pinDir, m);
      if (!existsSync(p)) throw new Error(`nothing to adopt: ${p} is not pinned`);
      fds[m] = lib.obj_get(p);
      all.push(fds[m]);
    }
    for (const prog of PROGRAMS) {
      const p = linkPin(pinDir, prog);
      if (!existsSync(p)) throw new Error(`nothing to adopt: ${p} is not pinned`);
      const fd = lib.obj_get(p);
      links.set(prog, fd);
    }
  } catch (e) {
    for (const fd of [...all, ...links.values()]) closeSync(fd);
    throw e;
  }
  const report: LoadReport = { attached: [], replaced: [], moved: [], reusedMaps: Object.values(LB_MAPS).map((m) => m.name), replacedMaps: [] };
  return makeHandle(pinDir, fds, links, report, () => {
    for (const fd of all) closeSync(fd);
  });
}

/**
 * Detach every pinned link under `pinDir` and remove nftproxy's pins there (and pinDir when
 * empty), whatever version pinned them (some maps may be missing or laid out differently).
 * Returns whether anything was pinned.
 */
export function removePinned(pinDir: string): boolean {
  if (!existsSync(pinDir)) return false;
  for (const pin of readdirSync(pinDir).filter((f) => f.startsWith('link_'))) {
    detachLink(libbpf().obj_get(path.join(pinDir, pin)));
    rmPin(path.join(pinDir, pin));
  }
  unpinMaps(pinDir);
  return true;
}

/** Entries of each pinned map under `pinDir` (absent maps omitted), for `nftproxy status`. */
export function pinnedMapCounts(pinDir: string): Partial<Record<LbMap, number>> {
  const lib = libbpf();
  const out: Partial<Record<LbMap, number>> = {};
  for (const m of Object.keys(LB_MAPS) as LbMap[]) {
    const pin = mapPin(pinDir, m);
    if (!existsSync(pin)) continue;
    const fd = lib.obj_get(pin);
    try {
      // the pinned map's own key size: it may be another version's layout
      out[m] = mapKeys(fd, mapInfo(lib, fd).keySize, LB_MAPS[m].name).length;
    } finally {
      closeSync(fd);
    }
  }
  return out;
}

/** Where cgroup v2 is mounted: /sys/fs/cgroup (unified hosts) or /sys/fs/cgroup/unified (hybrid). */
export function findCgroup2Root(): string | null {
  const CGROUP2_SUPER_MAGIC = 0x63677270;
  for (const p of ['/sys/fs/cgroup', '/sys/fs/cgroup/unified']) {
    try {
      if (statfsSync(p).type === CGROUP2_SUPER_MAGIC) return p;
    } catch {
      /* next */
    }
  }
  return null;
}

export type Support = { ok: true } | { ok: false; reason: string };

/** Can the socket load balancer run here? For --bpf=auto: {ok:false, reason} says why not. */
export function bpfSupport(opts: { objectPath?: string; cgroupPath?: string } = {}): Support {
  if (process.platform !== 'linux') return { ok: false, reason: `not Linux (${process.platform})` };
  if (os.endianness() !== 'LE') return { ok: false, reason: 'the shipped BPF object is little-endian' };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)' };
  const [maj = 0, min = 0] = os.release().split(/[.-]/).map(Number);
  if (maj < 5 || (maj === 5 && min < 8)) return { ok: false, reason: `kernel ${os.release()} is older than 5.8 (cgroup getpeername hooks, netns cookie)` };
  const objectPath = opts.objectPath ?? DEFAULT_OBJECT;
  if (!existsSync(objectPath)) return { ok: false, reason: `BPF object ${objectPath} not found (make bpf)` };
  const cg = opts.cgroupPath ?? findCgroup2Root();
  if (!cg) return { ok: false, reason: 'no cgroup v2 hierarchy mounted (looked at /sys/fs/cgroup and /sys/fs/cgroup/unified)' };
  if (!existsSync(cg)) return { ok: false, reason: `cgroup ${cg} does not exist` };
  let lib;
  try {
    lib = libbpf();
  } catch (e) {
    return { ok: false, reason: `cannot load libbpf.so.1 through koffi: ${(e as Error).message}` };
  }
  const probe = lib.probe_prog_type(BPF_PROG_TYPE_CGROUP_SOCK_ADDR);
  if (probe !== 1) return { ok: false, reason: `the kernel refuses cgroup/sock_addr programs (probe ${probe})` };
  return { ok: true };
}

export interface DestroyedSocket extends Endpoint {
  family: number;
  err: number;
  /** the namespace file it was found in, null for nftproxy's own */
  netns: string | null;
}

export interface SockDestroyer {
  /**
   * Destroy every connected UDP socket whose peer is one of `backends`, in each of the
   * network namespaces given as files (/run/netns/X, /proc/PID/ns/net); null = this
   * process's namespace. The owner of a destroyed socket gets ECONNABORTED.
   */
  destroyUdpSockets(backends: Endpoint[], netns?: Array<string | null>): DestroyedSocket[];
  close(): void;
}

/** Load bpf/sock_destroy.o (iter/udp + bpf_sock_destroy, kernel >= 6.5 with BTF). */
export function loadSockDestroy(objectPath: string = DEFAULT_DESTROY_OBJECT): SockDestroyer {
  const lib = libbpf();
  if (!existsSync(objectPath)) throw new Error(`BPF object ${objectPath} not found (build it with \`make bpf\`)`);
  const obj = lib.object_open_file(objectPath);
  let prog: Ptr, deadFd: number;
  try {
    lib.object_load(obj);
    prog = lib.find_program(obj, 'npx_udp_destroy');
    deadFd = lib.map_fd(lib.find_map(obj, MAPS.dead));
  } catch (e) {
    lib.object_close(obj);
    throw e;
  }
  let closed = false;
  return {
    destroyUdpSockets(backends, netns = [null]) {
      if (closed) throw new Error('sock_destroy handle is closed');
      const keys = backends.map((b) => encodeDeadKey(b, 'udp'));
      const out: DestroyedSocket[] = [];
      try {
        for (const k of keys) lib.map_update_elem(deadFd, k, DEAD_VAL);
        const link = lib.attach_iter(prog);
        try {
          const linkFd = lib.link_fd(link);
          for (const ns of netns) {
            const iterFd = ns === null ? lib.iter_create(linkFd) : iterCreateIn(ns, linkFd);
            try {
              for (const r of decodeDestroyedRecs(readAll(iterFd))) out.push({ ...r, netns: ns });
            } finally {
              closeSync(iterFd);
            }
          }
        } finally {
          lib.link_destroy(link);
        }
      } finally {
        for (const k of keys) lib.map_delete_elem(deadFd, k);
      }
      return out;
    },
    close() {
      if (closed) return;
      closed = true;
      lib.object_close(obj);
    },
  };
}

/**
 * The udp iterator walks the sockets of the namespace of whoever creates it: switch THIS
 * thread (the JS main thread) into `nsFile` for the bpf_iter_create() call only, then back.
 * setns(CLONE_NEWNET) affects the calling thread alone, and nothing else runs on it meanwhile.
 */
function iterCreateIn(nsFile: string, linkFd: number): number {
  const lib = libbpf();
  const self = openSync('/proc/thread-self/ns/net', fsc.O_RDONLY);
  let target = -1;
  try {
    target = openSync(nsFile, fsc.O_RDONLY);
    lib.setns(target, CLONE_NEWNET);
    try {
      return lib.iter_create(linkFd);
    } finally {
      try {
        lib.setns(self, CLONE_NEWNET);
      } catch (e) {
        // Could not go home: this thread would open sockets in a pod's namespace. Never continue.
        process.stderr.write(`nftproxy: FATAL: cannot return to own network namespace: ${(e as Error).message}\n`);
        process.abort();
      }
    }
  } finally {
    if (target >= 0) closeSync(target);
    closeSync(self);
  }
}

function readAll(fd: number): Buffer {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(64 * 1024);
  for (;;) {
    const n = readSync(fd, buf, 0, buf.length, null);
    if (n <= 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks);
}

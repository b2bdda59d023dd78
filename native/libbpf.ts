// A minimal binding to libbpf.so.1 (Debian `libbpf1`, 1.1.x) through koffi: only the calls the
// loader needs. libbpf 1.x reports errors as NULL / a negative return AND errno; every wrapper
// here turns that into a thrown LibbpfError carrying the errno and whatever libbpf printed
// (the verifier log on a failed load).
//
// Loaded lazily: importing this module never fails; `libbpf()` throws when the library or
// koffi is missing (bpfSupport() in loader.ts turns that into a reason).
import { createRequire } from 'node:module';
import os from 'node:os';

const require = createRequire(import.meta.url);

/** An opaque native pointer (koffi External); null never escapes the wrappers. */
export type Ptr = { readonly __nativePointer: unique symbol };

export const BPF_PROG_TYPE_CGROUP_SOCK_ADDR = 18;
export const BPF_PROG_TYPE_TRACING = 26;
export const BPF_ANY = 0n;
export const BPF_NOEXIST = 1n;
export const BPF_EXIST = 2n;
export const LIBBPF_PATH = 'libbpf.so.1';

export class LibbpfError extends Error {
  constructor(readonly call: string, readonly errno: number, readonly log: string) {
    const name = errnoName(errno);
    super(`${call} failed: ${name}${log ? `\n--- libbpf output ---\n${log.trimEnd()}` : ''}`);
    this.name = 'LibbpfError';
  }
  /** e.g. 'ENOENT' */
  get code(): string {
    return errnoName(this.errno).split(' ')[0]!;
  }
}

export function errnoName(errno: number): string {
  const e = Math.abs(errno);
  for (const [name, value] of Object.entries(os.constants.errno)) if (value === e) return `${name} (${e})`;
  return `errno ${e}`;
}

/* eslint-disable @typescript-eslint/no-explicit-any */
type Fn = (...args: any[]) => any;

export interface Libbpf {
  koffi: any;
  object_open_file(path: string): Ptr;
  object_load(obj: Ptr): void;
  object_close(obj: Ptr): void;
  find_program(obj: Ptr, name: string): Ptr;
  program_fd(prog: Ptr): number;
  /** Returns the link; pin it or keep it (bpf_link__destroy detaches an unpinned link). */
  attach_cgroup(prog: Ptr, cgroupFd: number): Ptr;
  attach_iter(prog: Ptr): Ptr;
  link_pin(link: Ptr, path: string): void;
  link_fd(link: Ptr): number;
  link_destroy(link: Ptr): void;
  find_map(obj: Ptr, name: string): Ptr;
  map_fd(map: Ptr): number;
  map_set_pin_path(map: Ptr, path: string): void;
  /** what the object declares for a map (before load): type, key and value size, max entries, flags */
  map_def(map: Ptr): MapDef;
  map_reuse_fd(map: Ptr, fd: number): void;
  map_pin(map: Ptr, path: string): void;
  /** The raw calls on fds (bpf.h). */
  map_update_elem(fd: number, key: Buffer, value: Buffer, flags?: bigint): void;
  /** false when the key is absent (ENOENT) */
  map_delete_elem(fd: number, key: Buffer): boolean;
  /** false when the key is absent (ENOENT); the value is written into `value` */
  map_lookup_elem(fd: number, key: Buffer, value: Buffer): boolean;
  /** false at the end (ENOENT); `key` null for the first key */
  map_get_next_key(fd: number, key: Buffer | null, next: Buffer): boolean;
  obj_get(path: string): number;
  obj_pin(fd: number, path: string): void;
  link_update(linkFd: number, progFd: number): void;
  link_detach(linkFd: number): void;
  iter_create(linkFd: number): number;
  /** an fd for a link / program by its kernel id (CAP_SYS_ADMIN); ENOENT when it is gone */
  link_get_fd_by_id(id: number): number;
  prog_get_fd_by_id(id: number): number;
  /** bpf_obj_get_info_by_fd into `info`; returns the length the kernel filled */
  obj_get_info_by_fd(fd: number, info: Buffer): number;
  /** 1 supported, 0 not (libbpf_probe_bpf_prog_type) */
  probe_prog_type(type: number): number;
  /** setns(2) for the calling (main) thread */
  setns(fd: number, nstype: number): void;
  close(fd: number): void;
  /** Everything libbpf printed since the last call (verifier logs included). */
  takeLog(): string;
}

let cached: Libbpf | undefined;
let loadError: Error | undefined;

export interface MapDef {
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
}

/** struct bpf_map_info, as bpf_obj_get_info_by_fd fills it (the fields libbpf compares for reuse). */
export function mapInfo(lib: Libbpf, fd: number): MapDef {
  const info = Buffer.alloc(96);
  lib.obj_get_info_by_fd(fd, info);
  return { type: info.readUInt32LE(0), keySize: info.readUInt32LE(8), valueSize: info.readUInt32LE(12), maxEntries: info.readUInt32LE(16), flags: info.readUInt32LE(20) };
}

export function libbpf(): Libbpf {
  if (cached) return cached;
  if (loadError) throw loadError;
  try {
    cached = bind();
    return cached;
  } catch (e) {
    loadError = e instanceof Error ? e : new Error(String(e));
    throw loadError;
  }
}

function bind(): Libbpf {
  const koffi = require('koffi');
  const lib = koffi.load(LIBBPF_PATH);
  const libc = koffi.load('libc.so.6');

  const f = (sig: string): Fn => lib.func(sig);
  const c = (sig: string): Fn => libc.func(sig);

  // libbpf output: a registered print callback formats with vsnprintf (va_list is a pointer
  // on x86-64 SysV) and keeps the text, so a failed load can report the verifier log.
  const vsnprintf = c('int vsnprintf(void *str, size_t size, void *fmt, void *ap)');
  const PrintFn = koffi.proto('int nftproxy_libbpf_print_fn(int level, void *fmt, void *ap)');
  let log = '';
  const printBuf = Buffer.alloc(64 * 1024);
  const printCb = koffi.register((level: number, fmt: unknown, ap: unknown): number => {
    const n = vsnprintf(printBuf, printBuf.length, fmt, ap) as number;
    if (n > 0) {
      const text = printBuf.toString('utf8', 0, Math.min(n, printBuf.length - 1));
      // LIBBPF_WARN 0, INFO 1, DEBUG 2: keep warnings and info, bound the size.
      if (level <= 1) log = (log + text).slice(-256 * 1024);
    }
    return 0;
  }, koffi.pointer(PrintFn));
  f('void *libbpf_set_print(nftproxy_libbpf_print_fn *fn)')(printCb);

  const open_file = f('void *bpf_object__open_file(const char *path, void *opts)');
  const load = f('int bpf_object__load(void *obj)');
  const close_obj = f('void bpf_object__close(void *obj)');
  const find_prog = f('void *bpf_object__find_program_by_name(void *obj, const char *name)');
  const prog_fd = f('int bpf_program__fd(void *prog)');
  const attach_cg = f('void *bpf_program__attach_cgroup(void *prog, int cgroup_fd)');
  const attach_iter = f('void *bpf_program__attach_iter(void *prog, void *opts)');
  const link_pin = f('int bpf_link__pin(void *link, const char *path)');
  const link_fd = f('int bpf_link__fd(void *link)');
  const link_destroy = f('int bpf_link__destroy(void *link)');
  const find_map = f('void *bpf_object__find_map_by_name(void *obj, const char *name)');
  const map_fd = f('int bpf_map__fd(void *map)');
  const set_pin_path = f('int bpf_map__set_pin_path(void *map, const char *path)');
  const reuse_fd = f('int bpf_map__reuse_fd(void *map, int fd)');
  const map_type = f('int bpf_map__type(void *map)');
  const map_key_size = f('uint32_t bpf_map__key_size(void *map)');
  const map_value_size = f('uint32_t bpf_map__value_size(void *map)');
  const map_max_entries = f('uint32_t bpf_map__max_entries(void *map)');
  const map_flags = f('uint32_t bpf_map__map_flags(void *map)');
  const map_pin = f('int bpf_map__pin(void *map, const char *path)');
  const update = f('int bpf_map_update_elem(int fd, void *key, void *value, uint64_t flags)');
  const del = f('int bpf_map_delete_elem(int fd, void *key)');
  const lookup = f('int bpf_map_lookup_elem(int fd, void *key, void *value)');
  const next_key = f('int bpf_map_get_next_key(int fd, void *key, void *next_key)');
  const obj_get = f('int bpf_obj_get(const char *pathname)');
  const obj_pin = f('int bpf_obj_pin(int fd, const char *pathname)');
  const link_update = f('int bpf_link_update(int link_fd, int new_prog_fd, void *opts)');
  const link_detach = f('int bpf_link_detach(int link_fd)');
  const iter_create = f('int bpf_iter_create(int link_fd)');
  const link_by_id = f('int bpf_link_get_fd_by_id(uint32_t id)');
  const prog_by_id = f('int bpf_prog_get_fd_by_id(uint32_t id)');
  const info_by_fd = f('int bpf_obj_get_info_by_fd(int fd, void *info, _Inout_ uint32_t *len)');
  const probe = f('int libbpf_probe_bpf_prog_type(int prog_type, void *opts)');
  const setns = c('int setns(int fd, int nstype)');
  const close = c('int close(int fd)');

  const takeLog = (): string => {
    const s = log;
    log = '';
    return s;
  };
  const fail = (call: string, ret?: number): never => {
    const e = koffi.errno() as number;
    throw new LibbpfError(call, ret !== undefined && ret < 0 ? -ret : e, takeLog());
  };
  const ptr = (call: string, p: unknown): Ptr => {
    if (p === null || p === undefined) fail(call);
    return p as Ptr;
  };
  const ok = (call: string, ret: number): number => {
    if (ret < 0) fail(call, ret);
    return ret;
  };
  const ENOENT = os.constants.errno.ENOENT;
  const absent = (call: string, ret: number): boolean => {
    if (ret === 0) return true;
    const e = ret < 0 ? -ret : (koffi.errno() as number);
    if (e === ENOENT) return false;
    throw new LibbpfError(call, e, takeLog());
  };

  return {
    koffi,
    object_open_file: (path) => {
      takeLog();
      return ptr(`bpf_object__open_file(${path})`, open_file(path, null));
    },
    object_load: (obj) => {
      takeLog();
      ok('bpf_object__load', load(obj));
    },
    object_close: (obj) => close_obj(obj),
    find_program: (obj, name) => ptr(`bpf_object__find_program_by_name(${name})`, find_prog(obj, name)),
    program_fd: (prog) => ok('bpf_program__fd', prog_fd(prog)),
    attach_cgroup: (prog, cgroupFd) => ptr('bpf_program__attach_cgroup', attach_cg(prog, cgroupFd)),
    attach_iter: (prog) => ptr('bpf_program__attach_iter', attach_iter(prog, null)),
    link_pin: (link, path) => void ok(`bpf_link__pin(${path})`, link_pin(link, path)),
    link_fd: (link) => ok('bpf_link__fd', link_fd(link)),
    link_destroy: (link) => void link_destroy(link),
    find_map: (obj, name) => ptr(`bpf_object__find_map_by_name(${name})`, find_map(obj, name)),
    map_fd: (map) => ok('bpf_map__fd', map_fd(map)),
    map_set_pin_path: (map, path) => void ok(`bpf_map__set_pin_path(${path})`, set_pin_path(map, path)),
    map_def: (map) => ({ type: map_type(map) as number, keySize: map_key_size(map) as number, valueSize: map_value_size(map) as number, maxEntries: map_max_entries(map) as number, flags: map_flags(map) as number }),
    map_reuse_fd: (map, fd) => void ok('bpf_map__reuse_fd', reuse_fd(map, fd)),
    map_pin: (map, path) => void ok(`bpf_map__pin(${path})`, map_pin(map, path)),
    map_update_elem: (fd, key, value, flags = BPF_ANY) => void ok('bpf_map_update_elem', update(fd, key, value, flags)),
    map_delete_elem: (fd, key) => absent('bpf_map_delete_elem', del(fd, key)),
    map_lookup_elem: (fd, key, value) => absent('bpf_map_lookup_elem', lookup(fd, key, value)),
    map_get_next_key: (fd, key, next) => absent('bpf_map_get_next_key', next_key(fd, key, next)),
    obj_get: (path) => ok(`bpf_obj_get(${path})`, obj_get(path)),
    obj_pin: (fd, path) => void ok(`bpf_obj_pin(${path})`, obj_pin(fd, path)),
    link_update: (linkFd, progFd) => void ok('bpf_link_update', link_update(linkFd, progFd, null)),
    link_detach: (linkFd) => void ok('bpf_link_detach', link_detach(linkFd)),
    iter_create: (linkFd) => ok('bpf_iter_create', iter_create(linkFd)),
    link_get_fd_by_id: (id) => ok(`bpf_link_get_fd_by_id(${id})`, link_by_id(id)),
    prog_get_fd_by_id: (id) => ok(`bpf_prog_get_fd_by_id(${id})`, prog_by_id(id)),
    obj_get_info_by_fd: (fd, info) => {
      const len = [info.length];
      ok('bpf_obj_get_info_by_fd', info_by_fd(fd, info, len));
      return len[0]!;
    },
    probe_prog_type: (type) => probe(type, null) as number,
    setns: (fd, nstype) => void (setns(fd, nstype) < 0 ? fail('setns') : 0),
    close: (fd) => void close(fd),
    takeLog,
  };
}

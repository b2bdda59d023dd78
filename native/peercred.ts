// The credentials of the process at the other end of a Unix socket (SO_PEERCRED), which
// node:net does not expose. The daemon's inspection socket is root-only by its file mode
// (0600 in a 0700 directory); this is the second check, for a socket whose mode was loosened.
//
// Loaded lazily through koffi (as netlink.ts): undefined when koffi or libc cannot be loaded,
// or the call fails; the caller then relies on the file mode alone.
import { createRequire } from 'node:module';
import os from 'node:os';

const require = createRequire(import.meta.url);
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

export interface PeerCredentials { readonly pid: number; readonly uid: number; readonly gid: number }

type GetSockOpt = (fd: number, level: number, name: number, val: Buffer, len: Buffer) => number;
let getsockopt: GetSockOpt | null | undefined;

function bind(): GetSockOpt | null {
  try {
    const koffi = require('koffi');
    const libc = koffi.load('libc.so.6');
    return libc.func('int getsockopt(int fd, int level, int name, void *val, void *len)') as GetSockOpt;
  } catch {
    return null;
  }
}

/** struct ucred of the peer of Unix socket `fd`, or undefined when it cannot be read. */
export function peerCredentials(fd: number): PeerCredentials | undefined {
  if (getsockopt === undefined) getsockopt = bind();
  if (!getsockopt || !Number.isInteger(fd) || fd < 0) return undefined;
  const val = Buffer.alloc(12);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(12);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, val, len) !== 0) return undefined;
  // host byte order
  const le = os.endianness() === 'LE';
  const u = (at: number): number => (le ? val.readUInt32LE(at) : val.readUInt32BE(at));
  return { pid: u(0), uid: u(4), gid: u(8) };
}

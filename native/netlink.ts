// A minimal binding for netlink sockets through koffi: Debian's libmnl.so.0 opens, binds and
// closes the socket (and tells its port id); libc does what libmnl has no call for: a gathered
// send (writev, so a big batch is never copied into one buffer), a receive that does not block
// (MSG_DONTWAIT), poll(2) on a worker thread, and setns(2) to open a socket inside another
// network namespace. Every call that fails returns -errno instead of throwing, so the netlink
// layer decides what an error means.
//
// Loaded lazily: importing this module never fails; `netlinkLib()` throws when libmnl or
// koffi is missing.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const LIBMNL_PATH = 'libmnl.so.0';
export const NETLINK_NETFILTER = 12;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_SNDBUFFORCE = 32;
const SO_RCVBUFFORCE = 33;
export const SOL_NETLINK = 270;
export const NETLINK_ADD_MEMBERSHIP = 1;
export const NETLINK_DROP_MEMBERSHIP = 2;
export const NETLINK_CAP_ACK = 10;
export const NETLINK_EXT_ACK = 11;
const MSG_DONTWAIT = 0x40;
const POLLIN = 0x1;
const CLONE_NEWNET = 0x40000000;
const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;

/** An opaque struct mnl_socket *. */
export type MnlSocket = { readonly __mnlSocket: unique symbol };

export interface NetlinkLib {
  /** A bound NETLINK_NETFILTER socket (port id chosen by the kernel), or -errno. */
  open(): { nl: MnlSocket; fd: number; portid: number } | number;
  close(nl: MnlSocket): void;
  /** setsockopt(SOL_NETLINK, opt, int) */
  setNetlinkOption(nl: MnlSocket, opt: number, value: number): number;
  /** SO_SNDBUFFORCE / SO_RCVBUFFORCE (root) */
  setBuffers(fd: number, sndbuf: number, rcvbuf: number): number;
  /** bytes written or -errno; the kernel processes a netfilter batch inside this call */
  writev(fd: number, chunks: readonly Buffer[]): number;
  /** the same on a worker thread: a full sync's commit does not stall the event loop */
  writevAsync(fd: number, chunks: readonly Buffer[]): Promise<number>;
  /** one datagram into buf: its length, or -errno (-EAGAIN when nothing is queued) */
  recvNow(fd: number, buf: Buffer): number;
  /** one datagram, waiting for it on a worker thread */
  recvWait(fd: number, buf: Buffer): Promise<number>;
  /** poll(POLLIN) on a worker thread: 1 readable, 0 timeout, -errno */
  pollIn(fd: number, timeoutMs: number): Promise<number>;
  /** run fn with the calling thread in the network namespace of `nsPath` (e.g. /run/netns/X) */
  inNetns<T>(nsPath: string, fn: () => T): T;
}

let cached: NetlinkLib | undefined;

export function netlinkLib(): NetlinkLib {
  return (cached ??= bind());
}

/* eslint-disable @typescript-eslint/no-explicit-any */
type Fn = (...args: any[]) => any;

function bind(): NetlinkLib {
  const koffi = require('koffi');
  const mnl = koffi.load(LIBMNL_PATH);
  const libc = koffi.load('libc.so.6');
  const m = (sig: string): Fn => mnl.func(sig);
  const c = (sig: string): Fn => libc.func(sig);
  koffi.struct('nftproxy_iovec', { iov_base: 'void *', iov_len: 'size_t' });
  koffi.struct('nftproxy_pollfd', { fd: 'int', events: 'short', revents: 'short' });

  const open2 = m('void *mnl_socket_open2(int bus, int flags)');
  const bindSock = m('int mnl_socket_bind(void *nl, unsigned int groups, int pid)');
  const getFd = m('int mnl_socket_get_fd(void *nl)');
  const getPortid = m('unsigned int mnl_socket_get_portid(void *nl)');
  const setsockopt = m('int mnl_socket_setsockopt(void *nl, int type, void *buf, unsigned int len)');
  const closeSock = m('int mnl_socket_close(void *nl)');
  const writev = c('long writev(int fd, const nftproxy_iovec *iov, int iovcnt)');
  const recv = c('long recv(int fd, _Out_ void *buf, size_t len, int flags)');
  const poll = c('int poll(_Inout_ nftproxy_pollfd *fds, unsigned long nfds, int timeout)');
  const sockopt = c('int setsockopt(int fd, int level, int name, void *val, unsigned int len)');
  const setns = c('int setns(int fd, int nstype)');
  const openFile = c('int open(const char *path, int flags)');
  const closeFd = c('int close(int fd)');

  const errno = (): number => -(koffi.errno() as number);
  const int = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32LE(v); return b; };
  const iov = (chunks: readonly Buffer[]) => chunks.map((b) => ({ iov_base: b, iov_len: b.length }));
  const later = <T>(f: Fn, ...args: unknown[]): Promise<T> => new Promise((resolve, reject) => {
    (f as Fn & { async: Fn }).async(...args, (e: unknown, r: T) => (e ? reject(e) : resolve(r)));
  });

  return {
    open: () => {
      const nl = open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
      if (!nl) return errno();
      if (bindSock(nl, 0, 0) < 0) {
        const e = errno();
        closeSock(nl);
        return e;
      }
      return { nl: nl as MnlSocket, fd: getFd(nl) as number, portid: getPortid(nl) as number };
    },
    close: (nl) => void closeSock(nl),
    setNetlinkOption: (nl, opt, value) => (setsockopt(nl, opt, int(value), 4) < 0 ? errno() : 0),
    setBuffers: (fd, sndbuf, rcvbuf) => {
      if (sockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, int(sndbuf), 4) < 0) return errno();
      return sockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, int(rcvbuf), 4) < 0 ? errno() : 0;
    },
    writev: (fd, chunks) => {
      const n = Number(writev(fd, iov(chunks), chunks.length));
      return n < 0 ? errno() : n;
    },
    writevAsync: async (fd, chunks) => {
      // errno is per thread: the worker's is not readable here, so a failure is reported as EIO
      // unless the kernel's own answer (on the socket) says more
      const n = Number(await later<number>(writev, fd, iov(chunks), chunks.length));
      return n < 0 ? -5 : n;
    },
    recvNow: (fd, buf) => {
      const n = Number(recv(fd, buf, buf.length, MSG_DONTWAIT));
      return n < 0 ? errno() : n;
    },
    recvWait: async (fd, buf) => {
      const n = Number(await later<number>(recv, fd, buf, buf.length, 0));
      return n < 0 ? -5 : n;
    },
    pollIn: async (fd, timeoutMs) => {
      const fds = [{ fd, events: POLLIN, revents: 0 }];
      const n = await later<number>(poll, fds, 1, timeoutMs);
      return n < 0 ? -4 : n;
    },
    inNetns: (nsPath, fn) => {
      const self = openFile('/proc/thread-self/ns/net', O_RDONLY | O_CLOEXEC) as number;
      if (self < 0) throw new Error(`cannot open this thread's network namespace: errno ${-errno()}`);
      const target = openFile(nsPath, O_RDONLY | O_CLOEXEC) as number;
      if (target < 0) {
        const e = -errno();
        closeFd(self);
        throw new Error(`cannot open network namespace ${nsPath}: errno ${e}`);
      }
      try {
        if (setns(target, CLONE_NEWNET) < 0) throw new Error(`setns(${nsPath}) failed: errno ${-errno()}`);
        try {
          return fn();
        } finally {
          // Returning is not optional: every later socket of this thread would be created there.
          if (setns(self, CLONE_NEWNET) < 0) throw new Error(`cannot return from network namespace ${nsPath}`);
        }
      } finally {
        closeFd(target);
        closeFd(self);
      }
    },
  };
}

// A NETLINK_NETFILTER socket nftproxy owns: batches in, the kernel's answers out, dumps,
// and (on a socket of its own) change notifications.
//
// How a batch is confirmed: the kernel processes a netfilter batch inside the send call
// (netlink delivers to the kernel synchronously), and queues its answers on the socket before
// the call returns: an error for each message it refused (the whole batch is then undone), an
// error against BATCH_BEGIN when the commit itself failed, and an acknowledgement for the one
// message that asks for it (the last). So after the send, every answer is already queued:
// reading until the queue is empty sees all of them, without waiting.
import { type NetlinkLib, NETLINK_ADD_MEMBERSHIP, NETLINK_DROP_MEMBERSHIP, NETLINK_CAP_ACK, NETLINK_EXT_ACK, netlinkLib, type MnlSocket } from '../../../native/netlink.js';
import * as A from './abi.js';
import { type Message, MessageWriter, attrs, messages } from './attrs.js';
import type { Batch } from './encode.js';

export type NetlinkErrorCode = 'NFT_REJECTED' | 'NETLINK_IO' | 'NETLINK_UNAVAILABLE';

/** One message the kernel refused: its errno, the kernel's words, and where in it (offset). */
export interface Refusal {
  readonly seq: number;
  readonly errno: number;
  readonly message?: string;
  readonly offset?: number;
}

export class NetlinkError extends Error {
  constructor(readonly code: NetlinkErrorCode, message: string, readonly refusals: readonly Refusal[] = []) {
    super(message);
    this.name = 'NetlinkError';
  }
}

const SEND_ASYNC_BYTES = 256 * 1024;
const RECV_BUF = 256 * 1024;
const EAGAIN = 11;

export interface SocketOptions {
  /** open the socket in this network namespace (a path such as /run/netns/NAME) */
  readonly netns?: string;
  /** subscribe to these multicast groups (NFNLGRP_*) */
  readonly groups?: readonly number[];
}

export class NfSocket {
  private seqNext: number;
  private readonly rbuf = Buffer.allocUnsafe(RECV_BUF);
  private closed = false;

  private constructor(private readonly lib: NetlinkLib, private readonly nl: MnlSocket, readonly fd: number, readonly portid: number) {
    // Sequence numbers only need to be unique per socket; start away from 0 for readability.
    this.seqNext = (Math.floor(Date.now() / 1000) & 0xffff) << 12;
  }

  static open(opts: SocketOptions = {}): NfSocket {
    let lib: NetlinkLib;
    try {
      lib = netlinkLib();
    } catch (e) {
      throw new NetlinkError('NETLINK_UNAVAILABLE', `cannot load libmnl.so.0 through koffi (Debian package libmnl0, installed with nftables): ${(e as Error).message}`);
    }
    const r = opts.netns ? lib.inNetns(opts.netns, () => lib.open()) : lib.open();
    if (typeof r === 'number') throw new NetlinkError('NETLINK_UNAVAILABLE', `cannot open a netfilter netlink socket: errno ${-r} (nftproxy needs root, or CAP_NET_ADMIN)`);
    const s = new NfSocket(lib, r.nl, r.fd, r.portid);
    // errors carry our header, not a copy of our message, plus the kernel's explanation
    lib.setNetlinkOption(r.nl, NETLINK_CAP_ACK, 1);
    lib.setNetlinkOption(r.nl, NETLINK_EXT_ACK, 1);
    // a full sync at 10k services is tens of MB in one send; dumps and notifications need room
    lib.setBuffers(r.fd, 1 << 30, 16 << 20);
    for (const g of opts.groups ?? []) {
      const e = lib.setNetlinkOption(r.nl, NETLINK_ADD_MEMBERSHIP, g);
      if (e < 0) { s.close(); throw new NetlinkError('NETLINK_UNAVAILABLE', `cannot join netlink group ${g}: errno ${-e}`); }
    }
    return s;
  }

  /** Joins or leaves a multicast group. */
  setMembership(group: number, on: boolean): void {
    this.check();
    const e = this.lib.setNetlinkOption(this.nl, on ? NETLINK_ADD_MEMBERSHIP : NETLINK_DROP_MEMBERSHIP, group);
    if (e < 0) throw new NetlinkError('NETLINK_IO', `cannot ${on ? 'join' : 'leave'} netlink group ${group}: errno ${-e}`);
  }

  /** Reserves `n` sequence numbers. */
  seqs(n: number): number {
    const s = this.seqNext;
    this.seqNext = (this.seqNext + n) >>> 0;
    return s;
  }

  /** Sends an encoded batch; resolves once the kernel committed it, rejects with its refusals. */
  async commit(batch: Batch): Promise<void> {
    this.check();
    this.drain(); // answers to nothing of ours (a late notification on a shared socket) are dropped
    const n = batch.bytes > SEND_ASYNC_BYTES ? await this.lib.writevAsync(this.fd, batch.chunks) : this.lib.writev(this.fd, batch.chunks);
    const answers = this.drain();
    if (n < 0) {
      // the send itself failed: the kernel may still have answered why
      const refusals = refusalsOf(answers, batch.firstSeq - 1, batch.lastSeq + 1);
      throw new NetlinkError(refusals.length ? 'NFT_REJECTED' : 'NETLINK_IO', `sending the batch failed: errno ${-n}`, refusals);
    }
    const refusals = refusalsOf(answers, batch.firstSeq - 1, batch.lastSeq + 1);
    if (refusals.length > 0) throw new NetlinkError('NFT_REJECTED', refusals.map((r) => r.message ?? `errno ${r.errno}`).join('; '), refusals);
    const acked = answers.some((m) => m.type === A.NLMSG.ERROR && m.data.readInt32LE(16) === 0 && m.data.readUInt32LE(16 + 4 + 8) === batch.lastSeq);
    if (!acked) throw new NetlinkError('NETLINK_IO', 'the kernel did not acknowledge the batch');
  }

  /**
   * A dump request (GET… with NLM_F_DUMP) -> every message of the answer. A dump the kernel
   * marks interrupted (the ruleset changed while it was read) is read again.
   */
  dump(type: number, family: number, put?: (w: MessageWriter) => void, subsys = A.NFNL_SUBSYS_NFTABLES): Message[] {
    this.check();
    for (let attempt = 0; attempt < 10; attempt++) {
      this.drain();
      const w = new MessageWriter();
      const seq = this.seqs(1);
      w.begin((subsys << 8) | type, A.NLM_F.REQUEST | A.NLM_F.DUMP, seq, family);
      put?.(w);
      w.end();
      const sent = this.lib.writev(this.fd, w.finish());
      if (sent < 0) throw new NetlinkError('NETLINK_IO', `dump request failed: errno ${-sent}`);
      const out: Message[] = [];
      let interrupted = false;
      for (;;) {
        const r = this.lib.recvNow(this.fd, this.rbuf);
        if (r === -EAGAIN) throw new NetlinkError('NETLINK_IO', 'the dump ended without NLMSG_DONE');
        if (r < 0) throw new NetlinkError('NETLINK_IO', `reading a dump failed: errno ${-r}`);
        let done = false;
        for (const m of messages(Buffer.from(this.rbuf.subarray(0, r)))) {
          if (m.seq !== seq) continue;
          if (m.flags & A.NLM_F.DUMP_INTR) interrupted = true;
          if (m.type === A.NLMSG.DONE) { done = true; break; }
          if (m.type === A.NLMSG.ERROR) {
            const errno = -m.data.readInt32LE(16);
            if (errno === 0) continue;
            throw new NetlinkError('NFT_REJECTED', `dump refused: ${errnoText(errno)}`, [{ seq, errno }]);
          }
          out.push(m);
        }
        if (done) break;
      }
      if (!interrupted) return out;
    }
    throw new NetlinkError('NETLINK_IO', 'the ruleset kept changing during 10 dumps');
  }

  /** A GET without NLM_F_DUMP: the one object, or undefined when the kernel says ENOENT. */
  get(type: number, family: number, put: (w: MessageWriter) => void): Message | undefined {
    const { seq, answers } = this.request(A.NFNL_SUBSYS_NFTABLES, type, family, put);
    let found: Message | undefined;
    for (const m of answers) {
      if (m.type === A.NLMSG.ERROR) {
        const errno = -m.data.readInt32LE(16);
        if (errno === 2) return undefined;
        if (errno !== 0) throw new NetlinkError('NFT_REJECTED', `request refused: ${errnoText(errno)}`, [{ seq, errno }]);
      } else found = m;
    }
    return found;
  }

  /**
   * One request of another netfilter subsystem that asks only for the kernel's verdict (a
   * ctnetlink delete): 0 when done, else the errno. Only EPERM throws: it means the socket can
   * do nothing at all.
   */
  act(subsys: number, type: number, family: number, put: (w: MessageWriter) => void): number {
    for (const m of this.request(subsys, type, family, put).answers) if (m.type === A.NLMSG.ERROR) return -m.data.readInt32LE(16);
    throw new NetlinkError('NETLINK_IO', 'the kernel did not answer the request');
  }

  /** One acknowledged request: the kernel's answers to it (an EPERM among them throws). */
  private request(subsys: number, type: number, family: number, put: (w: MessageWriter) => void): { seq: number; answers: Message[] } {
    this.check();
    this.drain();
    const w = new MessageWriter();
    const seq = this.seqs(1);
    w.begin((subsys << 8) | type, A.NLM_F.REQUEST | A.NLM_F.ACK, seq, family);
    put(w);
    w.end();
    const sent = this.lib.writev(this.fd, w.finish());
    if (sent < 0) throw new NetlinkError('NETLINK_IO', `request failed: errno ${-sent}`);
    const answers = this.drain().filter((m) => m.seq === seq);
    if (answers.some((m) => m.type === A.NLMSG.ERROR && m.data.readInt32LE(16) === -1)) throw new NetlinkError('NETLINK_UNAVAILABLE', 'netfilter netlink refused us (EPERM): nftproxy needs root, or CAP_NET_ADMIN in its network namespace');
    return { seq, answers };
  }

  /**
   * The ruleset generation (NFT_MSG_GETGEN). Also the cheapest proof that nf_tables answers
   * us at all: without CAP_NET_ADMIN the kernel refuses it (EPERM).
   */
  generation(): number {
    const m = this.get(A.MSG.GETGEN, 0, () => {});
    const id = m ? attrs(m.data, 20).get(A.GEN.ID) : undefined;
    if (!id) throw new NetlinkError('NETLINK_IO', 'the kernel sent no ruleset generation');
    return id.readUInt32BE(0);
  }

  /** Every message queued now (never waits). A copy: the buffer is reused. */
  drain(): Message[] {
    const out: Message[] = [];
    for (;;) {
      const r = this.lib.recvNow(this.fd, this.rbuf);
      if (r === -EAGAIN) return out;
      if (r < 0) {
        // ENOBUFS: the queue overflowed and answers were lost; the caller's check of what it
        // expected (an ack, a DONE) fails, and a notification reader treats it as a change
        if (r === -105) { out.push(OVERRUN); continue; }
        throw new NetlinkError('NETLINK_IO', `reading the netlink socket failed: errno ${-r}`);
      }
      for (const m of messages(Buffer.from(this.rbuf.subarray(0, r)))) out.push(m);
    }
  }

  /** Resolves when something is queued (true) or after timeoutMs (false); on a worker thread. */
  async readable(timeoutMs: number): Promise<boolean> {
    this.check();
    return (await this.lib.pollIn(this.fd, timeoutMs)) > 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.lib.close(this.nl);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private check(): void {
    if (this.closed) throw new NetlinkError('NETLINK_IO', 'the netlink socket is closed');
  }
}

/** A stand-in message for "the kernel dropped messages for us" (ENOBUFS). */
export const OVERRUN: Message = { type: A.NLMSG.OVERRUN, flags: 0, seq: 0, pid: 0, data: Buffer.alloc(16) };

function refusalsOf(answers: readonly Message[], from: number, to: number): Refusal[] {
  const out: Refusal[] = [];
  for (const m of answers) {
    if (m.type === A.NLMSG.OVERRUN) { out.push({ seq: from, errno: 105, message: 'answers lost (receive queue overflowed)' }); continue; }
    if (m.type !== A.NLMSG.ERROR || m.data.length < 20 + 16) continue;
    const errno = -m.data.readInt32LE(16);
    const seq = m.data.readUInt32LE(16 + 4 + 8);
    if (errno === 0 || seq < from || seq > to) continue;
    let message: string | undefined, offset: number | undefined;
    if (m.flags & A.NLM_F.ACK_TLVS) {
      // with NETLINK_CAP_ACK the refused message is not copied: its header alone (16 bytes)
      const tlvStart = 16 + 4 + (m.flags & A.NLM_F.CAPPED ? 16 : m.data.readUInt32LE(20));
      const t = attrs(m.data, tlvStart);
      const msg = t.get(A.NLMSGERR_ATTR.MSG);
      if (msg) message = msg.toString('utf8').replace(/\0.*$/s, '');
      const off = t.get(A.NLMSGERR_ATTR.OFFS);
      if (off) offset = off.readUInt32LE(0);
    }
    out.push({ seq, errno, message: message ? `${message} (${errnoText(errno)})` : errnoText(errno), ...(offset !== undefined ? { offset } : {}) });
  }
  return out;
}

const ERRNO: Readonly<Record<number, string>> = { 1: 'EPERM', 2: 'ENOENT', 7: 'E2BIG', 12: 'ENOMEM', 16: 'EBUSY', 17: 'EEXIST', 22: 'EINVAL', 28: 'ENOSPC', 34: 'ERANGE', 40: 'ELOOP', 95: 'EOPNOTSUPP', 105: 'ENOBUFS' };
export const errnoText = (errno: number): string => ERRNO[errno] ?? `errno ${errno}`;

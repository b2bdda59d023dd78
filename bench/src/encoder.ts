// Issue 13's encoder decision, measured: the same 100k-element NEWSETELEM batch (elements of
// the endpoint maps' shape, `addr . proto . port . slot : addr . port`) built
//   (a) by nftproxy's own TypeScript encoder (encodeBatch of one add-elements op), and
//   (b) by Debian's libnftnl.so.11 through koffi, as nft itself builds it: per element
//       nftnl_set_elem_alloc + two nftnl_set_elem_set + nftnl_set_elem_add, then the
//       messages with nftnl_set_elems_nlmsg_build_payload_iter into an nftnl_batch.
// Both start from the same KElement objects (keys and data as latin1 strings, what the
// compiler hands the writer) and end with the netlink bytes in memory; several runs, median.
// Then, once, each batch is sent into a bench namespace and the kernel's count of elements in
// the set is read back: both encoders built a batch the kernel accepts whole.
//
// Standalone: `node bench/dist/bench/src/encoder-main.js [ELEMENTS] [RUNS]` (root, for the
// kernel check); `make bench` runs it as a phase.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { encodeBatch, type Batch } from '../../src/apply/netlink/encode.js';
import { NfSocket } from '../../src/apply/netlink/socket.js';
import { NetlinkWriter } from '../../src/apply/netlink/writer.js';
import * as A from '../../src/apply/netlink/abi.js';
import { addrField, portField, protoField, wordField } from '../../src/render/kernel/bytes.js';
import type { Op } from '../../src/render/kernel/ops.js';
import type { KElement, SetShape } from '../../src/render/kernel/types.js';
import { median } from './stats.js';
import type { EncoderResult } from './results.js';

const require = createRequire(import.meta.url);
const SHAPE: SetShape = 'addr.proto.port.slot:addr.port';
const TABLE = 'nftproxy';

/** n elements: n/10 service addresses × 10 slots, each to its own endpoint. */
export function endpointElements(n: number): KElement[] {
  const out: KElement[] = [];
  for (let i = 0; i < n; i++) {
    const svc = Math.floor(i / 10), slot = i % 10;
    const vip = `10.${96 + (svc >> 16)}.${(svc >> 8) & 255}.${svc & 255}`;
    const ep = `10.${128 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
    out.push({ key: addrField(vip) + protoField('tcp') + portField(80) + wordField(slot), data: { kind: 'value', bytes: addrField(ep) + portField(8080) } });
  }
  return out;
}

const addOp = (set: string, elements: readonly KElement[]): Op => ({ family: 'ip', table: TABLE, op: 'add-elements', set, shape: SHAPE, elements });

/** (a) nftproxy's encoder */
export function encodeTs(elements: readonly KElement[], set: string, seq: number): Batch {
  return encodeBatch([addOp(set, elements)], seq);
}

/* eslint-disable @typescript-eslint/no-explicit-any */
type Fn = (...args: any[]) => any;
interface Nftnl { version: string; build(elements: readonly KElement[], set: string, seq: number): { chunks: Buffer[]; bytes: number; messages: number; firstSeq: number; lastSeq: number } }

/** (b) libnftnl through koffi; undefined with the reason when it cannot load. */
export function libnftnl(): Nftnl | string {
  let koffi: any, lib: any;
  try {
    koffi = require('koffi');
    lib = koffi.load('libnftnl.so.11');
  } catch (e) {
    return `libnftnl.so.11 not loadable: ${(e as Error).message.split('\n')[0]}`;
  }
  const f = (sig: string): Fn => lib.func(sig);
  const iovec = koffi.struct('bench_nftnl_iovec', { base: 'void *', len: 'size_t' });
  const setAlloc = f('void *nftnl_set_alloc(void)');
  const setFree = f('void nftnl_set_free(void *s)');
  const setStr = f('int nftnl_set_set_str(void *s, uint16_t attr, const char *str)');
  const setU32 = f('void nftnl_set_set_u32(void *s, uint16_t attr, uint32_t val)');
  const elemAlloc = f('void *nftnl_set_elem_alloc(void)');
  const elemSet = f('int nftnl_set_elem_set(void *e, uint16_t attr, const void *data, uint32_t len)');
  const elemAdd = f('void nftnl_set_elem_add(void *s, void *e)');
  const iterCreate = f('void *nftnl_set_elems_iter_create(void *s)');
  const iterCur = f('void *nftnl_set_elems_iter_cur(void *it)');
  const iterDestroy = f('void nftnl_set_elems_iter_destroy(void *it)');
  const buildIter = f('int nftnl_set_elems_nlmsg_build_payload_iter(void *nlh, void *it)');
  const buildHdr = f('void *nftnl_nlmsg_build_hdr(void *buf, uint16_t type, uint16_t family, uint16_t flags, uint32_t seq)');
  const batchAlloc = f('void *nftnl_batch_alloc(uint32_t pg, uint32_t overrun)');
  const batchUpdate = f('int nftnl_batch_update(void *b)');
  const batchFree = f('void nftnl_batch_free(void *b)');
  const batchBuffer = f('void *nftnl_batch_buffer(void *b)');
  const batchBegin = f('void *nftnl_batch_begin(void *buf, uint32_t seq)');
  const batchEnd = f('void *nftnl_batch_end(void *buf, uint32_t seq)');
  const iovLen = f('int nftnl_batch_iovec_len(void *b)');
  const iovFill = f('void nftnl_batch_iovec(void *b, _Out_ bench_nftnl_iovec *iov, uint32_t n)');
  void iovec;
  // enum nftnl_set_attr / the set element attributes (libnftnl/set.h)
  const NFTNL_SET_TABLE = 0, NFTNL_SET_NAME = 1, NFTNL_SET_FAMILY = 7, NFTNL_SET_ELEM_KEY = 1, NFTNL_SET_ELEM_DATA = 4;
  // as nft sizes its batches: 32 pages, room for one maximal message past a page's end
  const PAGE = 4096, BATCH_PAGE = PAGE * 32, MSG_MAX = 0xffff + PAGE;
  let version = 'libnftnl.so.11';
  try { version = `libnftnl ${execFileSync('dpkg-query', ['-W', '-f', '${Version}', 'libnftnl11'], { encoding: 'utf8' }).trim()}`; } catch { /* not Debian */ }
  return {
    version,
    build(elements, set, seq) {
      const s = setAlloc();
      setStr(s, NFTNL_SET_TABLE, TABLE);
      setStr(s, NFTNL_SET_NAME, set);
      setU32(s, NFTNL_SET_FAMILY, A.NFPROTO.ip);
      for (const el of elements) {
        const e = elemAlloc();
        const key = Buffer.from(el.key, 'latin1');
        elemSet(e, NFTNL_SET_ELEM_KEY, key, key.length);
        if (el.data?.kind === 'value') {
          const d = Buffer.from(el.data.bytes, 'latin1');
          elemSet(e, NFTNL_SET_ELEM_DATA, d, d.length);
        }
        elemAdd(s, e);
      }
      const b = batchAlloc(BATCH_PAGE, MSG_MAX);
      const first = seq;
      batchBegin(batchBuffer(b), seq++);
      batchUpdate(b);
      const it = iterCreate(s);
      let messages = 0;
      while (iterCur(it)) {
        const nlh = buildHdr(batchBuffer(b), (A.NFNL_SUBSYS_NFTABLES << 8) | A.MSG.NEWSETELEM, A.NFPROTO.ip, A.NLM_F.CREATE | A.NLM_F.ACK, seq++);
        const more = buildIter(nlh, it);
        batchUpdate(b);
        messages++;
        if (more <= 0) break;
      }
      iterDestroy(it);
      const last = seq - 1;
      batchEnd(batchBuffer(b), seq++);
      batchUpdate(b);
      // the bytes out of libnftnl's pages (what a writev would send): copied, so the batch can go
      const n = iovLen(b);
      const iov = Array.from({ length: n }, () => ({ base: null, len: 0 }));
      iovFill(b, iov, n);
      const chunks = iov.map((v: { base: unknown; len: number }) => Buffer.from(new Uint8Array(koffi.view(v.base, Number(v.len)) as ArrayBuffer)));
      batchFree(b);
      setFree(s);
      return { chunks, bytes: chunks.reduce((a, c) => a + c.length, 0), messages, firstSeq: first + 1, lastSeq: last };
    },
  };
}

function time<T>(f: () => T): [number, T] {
  const t = performance.now();
  const r = f();
  return [performance.now() - t, r];
}

/**
 * Runs the comparison. `netns` (a /run/netns path): where each batch is sent once, into a set
 * made for it, and the kernel's element count read back.
 */
export async function encoderBench(o: { elements: number; runs: number; netns?: string }): Promise<EncoderResult> {
  const els = endpointElements(o.elements);
  const gc = (globalThis as { gc?: () => void }).gc;
  const ts: number[] = [], nl: number[] = [];
  const lib = libnftnl();
  let tsBatch: Batch | undefined;
  let nlBatch: ReturnType<Nftnl['build']> | undefined;
  // interleaved, a warm-up of each first (JIT, library loading)
  encodeTs(els.slice(0, 1000), 'warm', 1);
  if (typeof lib !== 'string') lib.build(els.slice(0, 1000), 'warm', 1);
  for (let r = 0; r < o.runs; r++) {
    gc?.();
    const [a, b] = time(() => encodeTs(els, 'enc_ts', 1000));
    ts.push(a); tsBatch = b;
    if (typeof lib !== 'string') {
      gc?.();
      const [c, d] = time(() => lib.build(els, 'enc_nftnl', 1000));
      nl.push(c); nlBatch = d;
    }
  }
  const res: EncoderResult = {
    elements: o.elements, shape: SHAPE,
    ts: { runs: ts, medianMs: median(ts), bytes: tsBatch!.bytes, messages: tsBatch!.lastSeq - tsBatch!.firstSeq + 1 },
    ...(nlBatch && typeof lib !== 'string' ? { libnftnl: { runs: nl, medianMs: median(nl), bytes: nlBatch.bytes, messages: nlBatch.messages, version: lib.version } } : {}),
    ...(typeof lib === 'string' ? { error: lib } : {}),
  };
  if (o.netns) res.kernelCheck = await kernelCheck(o.netns, els, typeof lib === 'string' ? undefined : lib);
  return res;
}

/** Each encoder's batch into a fresh set of its own; the kernel's count of elements after. */
async function kernelCheck(netns: string, els: readonly KElement[], lib: Nftnl | undefined): Promise<{ ts: number; libnftnl?: number }> {
  const w = new NetlinkWriter({ netns });
  try {
    const decl = (name: string): Op => ({ family: 'ip', table: TABLE, op: 'add-set', set: { name, shape: SHAPE } });
    const made = await w.commit([{ family: 'ip', table: TABLE, op: 'add-table' }, decl('enc_ts'), decl('enc_nftnl')]);
    if (!made.ok) throw new Error(`cannot make the check's sets: ${made.error.message}`);
    const r = await w.commit([addOp('enc_ts', els)]);
    if (!r.ok) throw new Error(`the kernel refused the TS encoder's batch: ${r.error.message}`);
    const keyLen = els[0]!.key.length;
    const count = async (set: string): Promise<number> => (await w.listDynamicSet('ip', TABLE, set, keyLen))?.length ?? 0;
    const out: { ts: number; libnftnl?: number } = { ts: await count('enc_ts') };
    if (lib) {
      const sock = NfSocket.open({ netns });
      try {
        const b = lib.build(els, 'enc_nftnl', sock.seqs(els.length + 10));
        await sock.commit({ chunks: b.chunks, bytes: b.bytes, firstSeq: b.firstSeq, lastSeq: b.lastSeq, info: new Map(), ops: els.length, replacesTables: false });
      } finally {
        sock.close();
      }
      out.libnftnl = await count('enc_nftnl');
    }
    await w.commit([{ family: 'ip', table: TABLE, op: 'delete-table' }]);
    return out;
  } finally {
    await w.close();
  }
}

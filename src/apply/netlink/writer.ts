// The kernel writer: transactions encoded in-process and sent over a netlink socket nftproxy
// owns. No `nft` process, no text parser: a partial sync costs the kernel's work and the
// encoding (microseconds), a full sync one send of the whole batch.
import type { Family } from '../../ir/types.js';
import { type Result, err, ok } from '../../model/result.js';
import type { Op, TableLayout, Transaction } from '../../render/kernel/ops.js';
import type { KElement, KHook } from '../../render/kernel/types.js';
import type { CommitInfo, KernelWriter, WriteError } from '../kernel-writer.js';
import * as A from './abi.js';
import { attrList, bodyAttrs, familyOf, str, u64 } from './attrs.js';
import { type Batch, HOOKNUM, encodeBatch } from './encode.js';
import { lookupSets, readChains, readRules, setOf } from './dump.js';
import { NetlinkError, NfSocket, type Refusal, errnoText } from './socket.js';
import { type MonitorOptions, TableMonitor } from './monitor.js';

export interface NetlinkWriterOptions {
  /** write into this network namespace (a path such as /run/netns/NAME); default: our own */
  readonly netns?: string;
}

export class NetlinkWriter implements KernelWriter {
  private sock: NfSocket | undefined;
  private monitor: TableMonitor | undefined;

  constructor(private readonly opts: NetlinkWriterOptions = {}) {}

  /**
   * Reports changes other processes make to `table` (monitor.ts). The writer's own full
   * replaces are sent with the monitor out of the group: they replace what it would report.
   */
  watch(o: Omit<MonitorOptions, 'ours' | 'netns'>): TableMonitor {
    this.monitor = new TableMonitor({ ...o, ours: () => this.sock?.portid, ...(this.opts.netns ? { netns: this.opts.netns } : {}) });
    this.monitor.start();
    return this.monitor;
  }

  /** the socket's port id: notifications of our own changes carry it */
  get portid(): number {
    return this.socket().portid;
  }

  async commit(tx: Transaction): Promise<Result<CommitInfo, WriteError>> {
    let sock: NfSocket;
    try {
      sock = this.socket();
    } catch (e) {
      return err(writeError(e));
    }
    let ops: Transaction = tx;
    if (Array.isArray(tx) && tx.some((op: Op) => op.op === 'delete-rule' && op.handle === undefined)) {
      const r = this.withRuleHandles(tx as readonly Op[]);
      if (!r.ok) return r;
      ops = r.value;
    }
    const batch = encodeBatch(ops, sock.seqs(0));
    sock.seqs(batch.lastSeq - batch.firstSeq + 3);
    const pause = batch.replacesTables && this.monitor !== undefined;
    try {
      if (pause) this.monitor!.pause();
      await sock.commit(batch);
      return ok({ ops: batch.ops, bytes: batch.bytes });
    } catch (e) {
      if (e instanceof NetlinkError && e.code === 'NFT_REJECTED') return err(rejected(e, batch));
      // a broken socket is replaced; whether the batch was applied is unknown to the caller
      this.closeSocket();
      return err(writeError(e));
    } finally {
      if (pause) this.monitor!.resume();
    }
  }

  /**
   * The ops, each delete-rule with the handle of its rule, read from its chain (one dump per
   * chain). A rule that is not there: NFT_REJECTED with ENOENT (the kernel does not hold what
   * the applier thinks; a full sync follows).
   */
  withRuleHandles(ops: readonly Op[]): Result<Op[], WriteError> {
    try {
      return ok(withHandles(this.socket(), ops));
    } catch (e) {
      if (e instanceof NetlinkError) { this.closeSocket(); return err(writeError(e)); }
      return err({ code: 'NFT_REJECTED', message: e instanceof Error ? e.message : String(e), owners: [], errnos: [2] });
    }
  }

  async listDynamicSet(family: Family, table: string, set: string, keyLen: number): Promise<KElement[] | undefined> {
    let msgs;
    try {
      msgs = this.socket().dump(A.MSG.GETSETELEM, A.NFPROTO[family], (w) => {
        w.str(A.SET_ELEM_LIST.TABLE, table);
        w.str(A.SET_ELEM_LIST.SET, set);
      });
    } catch (e) {
      if (e instanceof NetlinkError && e.refusals.some((r) => r.errno === 2)) return undefined;
      throw e;
    }
    const out: KElement[] = [];
    for (const m of msgs) {
      const list = bodyAttrs(m).get(A.SET_ELEM_LIST.ELEMENTS);
      if (!list) continue;
      for (const [, el] of attrList(list)) {
        const a = new Map(attrList(el));
        const keyNest = a.get(A.SET_ELEM.KEY);
        const key = keyNest ? new Map(attrList(keyNest)).get(A.DATA.VALUE) : undefined;
        if (!key || key.length !== keyLen) continue;
        const timeout = u64(a.get(A.SET_ELEM.TIMEOUT)), expires = u64(a.get(A.SET_ELEM.EXPIRATION));
        out.push({ key: key.toString('latin1'), ...(timeout !== undefined ? { timeoutMs: Number(timeout) } : {}), ...(expires !== undefined ? { expiresMs: Number(expires) } : {}) });
      }
    }
    return out;
  }

  async layout(family: Family, table: string): Promise<TableLayout | undefined> {
    const sock = this.socket();
    if (!sock.get(A.MSG.GETTABLE, A.NFPROTO[family], (w) => w.str(A.TABLE.NAME, table))) return undefined;
    const hookName = (n: number): KHook['hook'] | undefined => (Object.entries(HOOKNUM) as [KHook['hook'], number][]).find(([, v]) => v === n)?.[0];
    const chains = readChains(sock, family, table).map((c): TableLayout['chains'][number] => {
      const hook = c.hook ? hookName(c.hook.hooknum) : undefined;
      const type = c.hook?.type;
      const kh: KHook | undefined = c.hook && hook && (type === 'filter' || type === 'nat') ? { type, hook, priority: c.hook.priority } : undefined;
      return { name: c.name, ...(kh ? { hook: kh } : {}), policyAccept: c.hook?.policy === A.VERDICT_CODE.accept };
    });
    const sets: { name: string; kind: 'set' | 'map' }[] = [];
    for (const m of sock.dump(A.MSG.GETSET, A.NFPROTO[family], (w) => w.str(A.SET.TABLE, table))) {
      const a = bodyAttrs(m);
      const s = setOf(a);
      if (str(a.get(A.SET.TABLE)) !== table || !s || s.flags & A.SET_F.ANONYMOUS) continue;
      sets.push({ name: s.name, kind: s.flags & A.SET_F.MAP ? 'map' : 'set' });
    }
    return { chains, sets };
  }

  async tables(name: string): Promise<{ family: Family; chains: number; sets: number }[]> {
    const sock = this.socket();
    const out: { family: Family; chains: number; sets: number }[] = [];
    for (const m of sock.dump(A.MSG.GETTABLE, 0)) {
      const fam = familyOf(m) === A.NFPROTO.ip ? 'ip' : familyOf(m) === A.NFPROTO.ip6 ? 'ip6' : undefined;
      if (!fam || str(bodyAttrs(m).get(A.TABLE.NAME)) !== name) continue;
      const inTable = (attr: number) => (w: { str(t: number, s: string): void }) => w.str(attr, name);
      const chains = sock.dump(A.MSG.GETCHAIN, A.NFPROTO[fam], inTable(A.CHAIN.TABLE)).filter((c) => str(bodyAttrs(c).get(A.CHAIN.TABLE)) === name).length;
      const sets = sock.dump(A.MSG.GETSET, A.NFPROTO[fam], inTable(A.SET.TABLE)).filter((s) => str(bodyAttrs(s).get(A.SET.TABLE)) === name && !str(bodyAttrs(s).get(A.SET.NAME))?.startsWith('__')).length;
      out.push({ family: fam, chains, sets });
    }
    return out;
  }

  async close(): Promise<void> {
    await this.monitor?.stop();
    this.monitor = undefined;
    this.closeSocket();
  }

  private closeSocket(): void {
    this.sock?.close();
    this.sock = undefined;
  }

  private socket(): NfSocket {
    if (!this.sock || this.sock.isClosed) this.sock = NfSocket.open(this.opts.netns ? { netns: this.opts.netns } : {});
    return this.sock;
  }
}

/** The ops, each delete-rule with the handle of its rule, read from its chain (one dump per chain). */
function withHandles(sock: NfSocket, ops: readonly Op[]): Op[] {
  const read = new Map<string, { handle: bigint; sets: string[] }[]>();
  return ops.map((op) => {
    if (op.op !== 'delete-rule' || op.handle !== undefined) return op;
    const id = `${op.family} ${op.table} ${op.chain}`;
    let rules = read.get(id);
    if (!rules) read.set(id, (rules = readRules(sock, op.family, op.table, op.chain).map((r) => ({ handle: r.handle, sets: lookupSets(r.exprs) }))));
    const hit = rules.find((r) => r.sets.includes(op.lookup));
    if (!hit) throw new Error(`no rule of chain ${op.chain} (${op.family} ${op.table}) looks up set ${op.lookup}`);
    return { ...op, handle: hit.handle };
  });
}

function writeError(e: unknown): WriteError {
  if (e instanceof NetlinkError) return e.code === 'NETLINK_UNAVAILABLE' ? { code: 'NETLINK_UNAVAILABLE', message: e.message } : { code: 'NETLINK_IO', message: e.message };
  return { code: 'NETLINK_IO', message: String(e) };
}

/** The kernel's refusals, each named by what the message was for and the service port that caused it. */
function rejected(e: NetlinkError, batch: Batch): WriteError {
  const owners = new Set<string>();
  const parts: string[] = [];
  for (const r of e.refusals) {
    const info = batch.info.get(r.seq);
    const owner = ownerOf(r, batch);
    if (owner) owners.add(owner);
    const what = r.seq === batch.firstSeq - 1 ? 'the commit' : info?.what ?? `message ${r.seq}`;
    parts.push(`${what}: ${r.message ?? errnoText(r.errno)}${owner ? ` (${owner})` : ''}`);
  }
  return { code: 'NFT_REJECTED', message: parts.join('; ') || e.message, owners: [...owners].sort(), errnos: e.refusals.map((r) => r.errno) };
}

function ownerOf(r: Refusal, batch: Batch): string | undefined {
  const info = batch.info.get(r.seq);
  if (!info) return undefined;
  if (info.elements && r.offset !== undefined) {
    let owner: string | undefined;
    const { offsets, owners } = info.elements;
    for (let i = 0; i < offsets.length && offsets[i]! <= r.offset; i++) owner = owners[i];
    return owner;
  }
  return info.owner;
}

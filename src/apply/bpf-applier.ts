// Keeps the BPF socket load balancer's maps equal to the entries the renderer computed
// (src/compile/bpf-coverage.ts). A changed service gets its backends under a new generation
// (slots, then membership), then its service entry is switched to that generation in one
// map update, then the old generation is deleted: a connect() never sees a half-written
// service. Generations are unique across services (backend keys carry no service).
// At the first sync after a start (or an adoption of pinned maps) it reconciles whatever a
// previous run left: entries nobody wants are removed, generations nobody uses are deleted.
import { MEMBER_VAL, decodeSvcVal, encodeBeKey, encodeBeVal, encodeCidrKey, encodeMemberKey, encodeSvcKey, encodeSvcVal } from '../../native/layout.js';
import type { SockLbHandle } from '../../native/loader.js';
import { type BpfService, type KeptSource, bpfKey } from '../compile/bpf-coverage.js';
import { diffBpfServices } from '../render/bpf-entries.js';

interface Live { readonly gen: number; readonly svc: BpfService }

/** More backends than this in one service is refused (the nft path serves it): slots are a u16 count. */
export const MAX_BACKENDS_PER_SERVICE = 65535;

export interface BpfSyncResult {
  readonly upserts: number;
  readonly removes: number;
  readonly writes: number;
  /** services the maps could not take (full map, oversize): left to the nftables rules */
  readonly refused: readonly { readonly service: string; readonly reason: string }[];
}

export class BpfApplier {
  private live = new Map<string, Live>();
  private nextGen = 1;
  private reconciled = false;
  /** what nftproxy_podcidrs was last made to hold (undefined: not written by this process) */
  private kept: string | undefined;

  constructor(private readonly h: SockLbHandle) {}

  /** Make the maps hold exactly `next`; returns how many map writes it took. */
  sync(next: readonly BpfService[]): BpfSyncResult {
    let writes = 0;
    const refused: { service: string; reason: string }[] = [];
    if (!this.reconciled) {
      // Whatever is in the (possibly adopted) maps: keep its generation numbers out of reuse.
      for (const [, v] of this.h.entries('svcs')) this.nextGen = Math.max(this.nextGen, decodeSvcVal(v).gen + 1);
      for (const k of this.h.keys('backends')) this.nextGen = Math.max(this.nextGen, k.readUInt32LE(0) + 1);
    }
    const prev = [...this.live.values()].map((l) => l.svc);
    const { upsert, remove } = this.reconciled ? diffBpfServices(prev, next) : { upsert: [...next], remove: [] };
    for (const s of upsert) {
      try {
        writes += this.write(s);
      } catch (e) {
        // Whatever part of the new generation got in is removed, and so is the service's old
        // entry (it would send connections to stale backends): nftables serves it instead.
        refused.push({ service: `${s.label} ${bpfKey(s)}`, reason: (e as Error).message.split('\n')[0]! });
        writes += this.evict(s);
      }
    }
    for (const s of remove) {
      const k = bpfKey(s);
      this.h.delete('svcs', encodeSvcKey(s));
      writes++;
      const old = this.live.get(k);
      this.live.delete(k);
      if (old) writes += this.dropGen(old);
    }
    if (!this.reconciled) {
      writes += this.sweep();
      this.reconciled = true;
    }
    return { upserts: upsert.length - refused.length, removes: remove.length, writes, refused };
  }

  /**
   * Make nftproxy_podcidrs hold exactly `kept` (bpfKeptSources); returns the map writes.
   * Until it is written, every fixed source counts as masqueraded: such sockets go to nft,
   * which is never wrong, only slower.
   */
  keepSources(kept: readonly KeptSource[]): number {
    const want = new Map(kept.map((k) => [encodeCidrKey(k.addr, k.prefixlen).toString('hex'), k.keep]));
    const sig = JSON.stringify([...want].sort());
    if (sig === this.kept) return 0;
    let writes = 0;
    for (const k of this.h.keys('podcidrs')) if (!want.has(k.toString('hex'))) { this.h.delete('podcidrs', k); writes++; }
    for (const [hex, keep] of want) { this.h.update('podcidrs', Buffer.from(hex, 'hex'), Buffer.from([keep ? 1 : 0])); writes++; }
    this.kept = sig;
    return writes;
  }

  private evict(s: BpfService): number {
    const k = bpfKey(s);
    let writes = 0;
    this.h.delete('svcs', encodeSvcKey(s));
    writes++;
    const old = this.live.get(k);
    this.live.delete(k);
    if (old) writes += this.dropGen(old);
    const failed = this.pending;
    this.pending = undefined;
    if (failed) writes += this.dropGen(failed);
    return writes;
  }

  /** the generation being written, until its service entry points to it */
  private pending: Live | undefined;

  private write(s: BpfService): number {
    if (s.backends.length > MAX_BACKENDS_PER_SERVICE) throw new Error(`${s.backends.length} backends: more than the ${MAX_BACKENDS_PER_SERVICE} slots a service can have`);
    const gen = this.nextGen++;
    this.pending = { gen, svc: s };
    let writes = 0;
    s.backends.forEach((b, i) => { this.h.update('backends', encodeBeKey(gen, i), encodeBeVal({ addr: b.addr, port: b.port })); writes++; });
    for (const b of s.backends) { this.h.update('members', encodeMemberKey(gen, { addr: b.addr, port: b.port }), MEMBER_VAL); writes++; }
    this.h.update('svcs', encodeSvcKey(s), encodeSvcVal({ gen, count: s.backends.length, affinity: s.affinitySeconds !== undefined, affinityTimeoutS: s.affinitySeconds ?? 0, localCount: s.localCount }));
    this.pending = undefined;
    writes++;
    const k = bpfKey(s);
    const old = this.live.get(k);
    this.live.set(k, { gen, svc: s });
    if (old) writes += this.dropGen(old);
    return writes;
  }

  private dropGen(old: Live): number {
    old.svc.backends.forEach((_b, i) => { this.h.delete('backends', encodeBeKey(old.gen, i)); });
    for (const b of old.svc.backends) this.h.delete('members', encodeMemberKey(old.gen, { addr: b.addr, port: b.port }));
    return old.svc.backends.length * 2;
  }

  /** After a restart: remove service entries, slots and members no live entry uses. */
  private sweep(): number {
    let writes = 0;
    const liveKeys = new Set([...this.live.values()].map((l) => encodeSvcKey(l.svc).toString('hex')));
    for (const k of this.h.keys('svcs')) {
      if (!liveKeys.has(k.toString('hex'))) { this.h.delete('svcs', k); writes++; }
    }
    const gens = new Set([...this.live.values()].map((l) => l.gen));
    for (const k of this.h.keys('backends')) if (!gens.has(k.readUInt32LE(0))) { this.h.delete('backends', k); writes++; }
    for (const k of this.h.keys('members')) if (!gens.has(k.readUInt32LE(0))) { this.h.delete('members', k); writes++; }
    return writes;
  }

  /** What is loaded, for `nftproxy status`. */
  get size(): number {
    return this.live.size;
  }
}

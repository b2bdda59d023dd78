// Keeps the BPF socket load balancer's maps equal to the entries the renderer computed
// (src/render/bpf-entries.ts). A changed service gets its backends under a new generation
// (slots, then membership), then its service entry is switched to that generation in one
// map update, then the old generation is deleted: a connect() never sees a half-written
// service. Generations are unique across services (backend keys carry no service).
// At the first sync after a start (or an adoption of pinned maps) it reconciles whatever a
// previous run left: entries nobody wants are removed, generations nobody uses are deleted.
import { MEMBER_VAL, decodeSvcVal, encodeBeKey, encodeBeVal, encodeMemberKey, encodeSvcKey, encodeSvcVal } from '../../native/layout.js';
import type { SockLbHandle } from '../../native/loader.js';
import { type BpfService, bpfKey, diffBpfServices } from '../render/bpf-entries.js';

interface Live { readonly gen: number; readonly svc: BpfService }

export class BpfApplier {
  private live = new Map<string, Live>();
  private nextGen = 1;
  private reconciled = false;

  constructor(private readonly h: SockLbHandle) {}

  /** Make the maps hold exactly `next`; returns how many map writes it took. */
  sync(next: readonly BpfService[]): { upserts: number; removes: number; writes: number } {
    let writes = 0;
    if (!this.reconciled) {
      // Whatever is in the (possibly adopted) maps: keep its generation numbers out of reuse.
      for (const [, v] of this.h.entries('svcs')) this.nextGen = Math.max(this.nextGen, decodeSvcVal(v).gen + 1);
      for (const k of this.h.keys('backends')) this.nextGen = Math.max(this.nextGen, k.readUInt32LE(0) + 1);
    }
    const prev = [...this.live.values()].map((l) => l.svc);
    const { upsert, remove } = this.reconciled ? diffBpfServices(prev, next) : { upsert: [...next], remove: [] };
    for (const s of upsert) writes += this.write(s);
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
    return { upserts: upsert.length, removes: remove.length, writes };
  }

  private write(s: BpfService): number {
    const gen = this.nextGen++;
    let writes = 0;
    s.backends.forEach((b, i) => { this.h.update('backends', encodeBeKey(gen, i), encodeBeVal({ addr: b.addr, port: b.port })); writes++; });
    for (const b of s.backends) { this.h.update('members', encodeMemberKey(gen, { addr: b.addr, port: b.port }), MEMBER_VAL); writes++; }
    this.h.update('svcs', encodeSvcKey(s), encodeSvcVal({ gen, count: s.backends.length, affinity: s.affinitySeconds !== undefined, affinityTimeoutS: s.affinitySeconds ?? 0 }));
    writes++;
    const k = bpfKey(s);
    const old = this.live.get(k);
    this.live.set(k, { gen, svc: s });
    if (old) writes += this.dropGen(old);
    return writes;
  }

  private dropGen(old: Live): number {
    old.svc.backends.forEach((_b, i) => this.h.delete('backends', encodeBeKey(old.gen, i)));
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

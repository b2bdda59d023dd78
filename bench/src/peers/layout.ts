// The interface every layout (nftproxy's peers) implements, a buffered line writer for big
// load files, and the nft machinery shared by both upstream nftables shapes: per-service
// objects, the full-load transaction, and upstream's partial-sync delta transaction.
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Change, Snapshot, SnapService } from '../workload.js';
import { svcKey } from './common.js';

export interface WriteStats { readonly lines: number; readonly bytes: number }

export interface DeltaTx {
  /** a transaction upstream runs before the sync (stale chain deletion), if any */
  readonly pre?: string;
  readonly text: string;
  readonly lines: number;
}

export interface DeltaEngine {
  change(c: Change): DeltaTx | Promise<DeltaTx>;
}

export interface Layout {
  readonly id: string;
  readonly label: string;
  /** argv of the loader for a file (run inside the namespace) */
  loadCmd(file: string): string[];
  /** argv of the loader reading stdin, for delta transactions */
  deltaCmd(): string[];
  writeFull(snap: Snapshot, file: string): Promise<WriteStats>;
  /** a delta engine that starts from `snap` as loaded */
  deltas(snap: Snapshot): DeltaEngine;
  /** a few lines of the full load for one service, for the report */
  sample(s: SnapService): string[];
  /** what the per-service part of the load holds (nft layouts): the reconcile phase's explanation */
  census?(snap: Snapshot): Census;
}

/** Objects of a load, beyond the fixed base: chains, rules, anonymous maps (inline `map { … }` / `vmap { … }`), named sets, elements. */
export interface Census { chains: number; rules: number; anonMaps: number; namedSets: number; elements: number }

/** Buffered writes of many small lines to a file. */
export class LineWriter {
  private buf: string[] = [];
  private size = 0;
  lines = 0;
  bytes = 0;
  private readonly out: WriteStream;
  constructor(file: string) { this.out = createWriteStream(file); }
  async line(s: string): Promise<void> {
    this.buf.push(s);
    this.size += s.length + 1;
    this.lines++;
    if (this.size > 1 << 20) await this.flush();
  }
  private async flush(): Promise<void> {
    if (!this.buf.length) return;
    const chunk = this.buf.join('\n') + '\n';
    this.bytes += Buffer.byteLength(chunk);
    this.buf = []; this.size = 0;
    if (!this.out.write(chunk)) await new Promise<void>((r) => this.out.once('drain', () => r()));
  }
  async close(): Promise<WriteStats> {
    await this.flush();
    await new Promise<void>((resolve, reject) => this.out.end((e?: Error | null) => (e ? reject(e) : resolve())));
    return { lines: this.lines, bytes: this.bytes };
  }
}

// ---- nft peers -----------------------------------------------------------------------------

export const T = 'ip kube-proxy';

export interface NftObjs {
  /** affinity sets: name and declaration body */
  readonly sets: { name: string; spec: string }[];
  readonly chains: { name: string; rules: string[] }[];
  /** text = key [comment "…"] [: value] */
  readonly elements: { set: string; key: string; text: string }[];
}

export const emptyObjs = (): NftObjs => ({ sets: [], chains: [], elements: [] });

/** Lines of one service's objects in a full load, in the order upstream's transaction has them. */
export function fullLines(o: NftObjs): string[] {
  const out: string[] = [];
  for (const s of o.sets) out.push(`add set ${T} ${s.name} { ${s.spec} }`);
  for (const c of o.chains) out.push(`add chain ${T} ${c.name}`, `flush chain ${T} ${c.name}`);
  for (const e of o.elements) out.push(`add element ${T} ${e.set} { ${e.text} }`);
  for (const c of o.chains) for (const r of c.rules) out.push(`add rule ${T} ${c.name} ${r}`);
  return out;
}

export async function writeNftFull(file: string, base: string[], snap: Snapshot, objs: (s: SnapService) => NftObjs): Promise<WriteStats> {
  const w = new LineWriter(file);
  for (const l of base) await w.line(l);
  for (const s of snap.services) for (const l of fullLines(objs(s))) await w.line(l);
  return w.close();
}

/**
 * Upstream's partial sync for the changed service (kube-proxy nftables mode): every chain of
 * the service is ensured (add + flush) and refilled; its set/map elements are reconciled
 * against an in-memory copy (a changed value is delete + add); chains no longer used are
 * flushed now and deleted by a separate transaction at the next sync (upstream waits >= 1 s
 * for kernels before 6.2); affinity sets no longer used are deleted at once.
 */
export class NftDeltaEngine implements DeltaEngine {
  private readonly current = new Map<string, NftObjs>();
  private staleChains: string[] = [];
  constructor(snap: Snapshot, private readonly objs: (s: SnapService) => NftObjs) {
    for (const s of snap.services) this.current.set(svcKey(s), objs(s));
  }

  change(c: Change): DeltaTx {
    const key = svcKey((c.after ?? c.before)!);
    const old = this.current.get(key) ?? emptyObjs();
    const neu = c.after ? this.objs(c.after) : emptyObjs();
    if (c.after) this.current.set(key, neu); else this.current.delete(key);

    const pre = this.staleChains.length ? this.staleChains.map((n) => `delete chain ${T} ${n}`).join('\n') + '\n' : undefined;
    this.staleChains = [];
    const out: string[] = [];
    for (const s of neu.sets) out.push(`add set ${T} ${s.name} { ${s.spec} }`);
    for (const ch of neu.chains) out.push(`add chain ${T} ${ch.name}`, `flush chain ${T} ${ch.name}`);
    const oldEls = new Map(old.elements.map((e) => [`${e.set} ${e.key}`, e]));
    const newEls = new Set<string>();
    for (const e of neu.elements) {
      const id = `${e.set} ${e.key}`;
      newEls.add(id);
      const prev = oldEls.get(id);
      if (prev?.text === e.text) continue;
      if (prev) out.push(`delete element ${T} ${e.set} { ${e.key} }`);
      out.push(`add element ${T} ${e.set} { ${e.text} }`);
    }
    for (const ch of neu.chains) for (const r of ch.rules) out.push(`add rule ${T} ${ch.name} ${r}`);
    const keep = new Set(neu.chains.map((ch) => ch.name));
    for (const ch of old.chains) {
      if (keep.has(ch.name)) continue;
      out.push(`flush chain ${T} ${ch.name}`);
      this.staleChains.push(ch.name);
    }
    const keepSets = new Set(neu.sets.map((s) => s.name));
    for (const s of old.sets) if (!keepSets.has(s.name)) out.push(`delete set ${T} ${s.name}`);
    for (const [id, e] of oldEls) if (!newEls.has(id)) out.push(`delete element ${T} ${e.set} { ${e.key} }`);
    return { ...(pre ? { pre } : {}), text: out.join('\n') + '\n', lines: out.length };
  }
}

/** The fixed part of upstream's table (both eras): table, base chains, helper chains, maps. */
export function nftBase(era: 'E2' | 'E3', o: { clusterCIDR: string; serviceCIDR: string; nodeIP: string }): string[] {
  const L: string[] = [`add table ${T} { comment "rules for kube-proxy" ; }`];
  const base: [string, string, string, number][] = [
    ['filter-prerouting-pre-dnat', 'filter', 'prerouting', -110],
    ['filter-output-pre-dnat', 'filter', 'output', -110],
    ['filter-input', 'filter', 'input', 0],
    ['filter-forward', 'filter', 'forward', 0],
    ['filter-output', 'filter', 'output', 0],
    ['nat-prerouting', 'nat', 'prerouting', -100],
    ['nat-output', 'nat', 'output', -100],
    ['nat-postrouting', 'nat', 'postrouting', 100],
  ];
  for (const [name, type, hook, prio] of base) L.push(`add chain ${T} ${name} { type ${type} hook ${hook} priority ${prio} ; }`);
  const helpers = ['services', 'masquerading', ...(era === 'E2' ? ['mark-for-masquerade'] : []), 'firewall-check', 'service-endpoints-check', 'nodeport-endpoints-check', 'cluster-ips-check'];
  for (const c of helpers) L.push(`add chain ${T} ${c}`, `flush chain ${T} ${c}`);
  L.push(`add chain ${T} reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }`, `flush chain ${T} reject-chain`);
  L.push(
    `add set ${T} cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }`,
    `add set ${T} nodeport-ips { type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }`,
    `add map ${T} service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }`,
    `add map ${T} service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }`,
    `add map ${T} no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }`,
    `add map ${T} no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }`,
    `add map ${T} firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }`,
  );
  if (era === 'E3') L.push(`add set ${T} hairpin-connections { type ipv4_addr . ipv4_addr . inet_proto . inet_service ; comment "service hairpin connections" ; }`);
  const R = (chain: string, rule: string): void => { L.push(`add rule ${T} ${chain} ${rule}`); };
  R('filter-prerouting-pre-dnat', 'ct state new jump firewall-check');
  R('filter-output-pre-dnat', 'ct state new jump firewall-check');
  R('filter-forward', 'ct state new jump service-endpoints-check');
  R('filter-forward', 'ct state new jump cluster-ips-check');
  R('filter-input', 'ct state new jump nodeport-endpoints-check');
  R('filter-input', 'ct state new jump service-endpoints-check');
  R('filter-output', 'ct state new jump service-endpoints-check');
  R('filter-output', 'ct state new jump cluster-ips-check');
  R('nat-prerouting', 'jump services');
  R('nat-output', 'jump services');
  R('nat-postrouting', 'jump masquerading');
  if (era === 'E3') R('services', `ip daddr @cluster-ips ip saddr != ${o.clusterCIDR} meta mark set meta mark | 0x00004000 comment "masquerade clusterIP traffic from outside cluster"`);
  R('services', 'ip daddr . meta l4proto . th dport vmap @service-ips');
  R('services', 'ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports');
  R('service-endpoints-check', 'ip daddr . meta l4proto . th dport vmap @no-endpoint-services');
  R('nodeport-endpoints-check', 'ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports');
  R('firewall-check', 'ip daddr . meta l4proto . th dport vmap @firewall-ips');
  R('cluster-ips-check', 'ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"');
  R('cluster-ips-check', `ip daddr { ${o.serviceCIDR} } drop comment "Drop traffic to unallocated ClusterIPs"`);
  if (era === 'E2') {
    R('mark-for-masquerade', 'meta mark set meta mark | 0x00004000');
    R('masquerading', 'meta mark & 0x00004000 == 0x00000000 return');
    R('masquerading', 'meta mark set meta mark ^ 0x00004000');
    R('masquerading', 'masquerade fully-random');
  } else {
    R('masquerading', 'meta mark & 0x00004000 != 0x00000000 meta mark set meta mark ^ 0x00004000 masquerade fully-random');
    R('masquerading', 'ct status dnat ip saddr . ip daddr . meta l4proto . th dport @hairpin-connections masquerade fully-random');
  }
  R('reject-chain', 'reject');
  L.push(`add element ${T} nodeport-ips { ${o.nodeIP} }`);
  return L;
}

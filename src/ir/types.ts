// The ruleset IR: a small, typed subset of nftables that the compiler emits and that
// three consumers read: the nft text renderer, the nft JSON renderer and explain's tracer.
// Keep it semantic where renderers must differ (endpoint choice), literal elsewhere.
import type { Cidr, IP } from '../model/ip.js';
import type { Protocol } from '../model/types.js';

export type Family = 'ip' | 'ip6';
export const TABLE_NAME = 'nftproxy';
/** kube-proxy's masquerade bit (masqueradeBit 14); the only mark bit we ever touch */
export const MASQ_MARK = 0x4000;

export type Verdict =
  | { readonly kind: 'accept' }
  | { readonly kind: 'drop' }
  | { readonly kind: 'return' }
  | { readonly kind: 'jump'; readonly chain: string }
  | { readonly kind: 'goto'; readonly chain: string };

export type AddrMatch = IP | Cidr;

export type Match =
  | { readonly kind: 'ct-state-new' }
  | { readonly kind: 'addr'; readonly field: 'saddr' | 'daddr'; readonly op: '==' | '!='; readonly values: readonly AddrMatch[] }
  | { readonly kind: 'addr-in-set'; readonly field: 'saddr' | 'daddr'; readonly set: string }
  | { readonly kind: 'fib-local'; readonly field: 'saddr' | 'daddr' }
  | { readonly kind: 'dport'; readonly proto: Protocol; readonly port: number }
  | { readonly kind: 'masq-mark'; readonly set: boolean }
  | { readonly kind: 'hairpin'; readonly set: string }
  /** session affinity: the client was remembered for this endpoint (key) in the shared set */
  | { readonly kind: 'affinity'; readonly set: string; readonly key: AffinityKey }
  /**
   * true for one packet in `n`, drawn afresh for each rule (`numgen random mod n 0`). A run of
   * rules with n, n-1, ... 2 and a last one without picks each of n targets with chance 1/n.
   */
  | { readonly kind: 'one-in'; readonly n: number };

/**
 * One endpoint of one affinity service port, in the shared affinity set: 62 bits (two 31-bit
 * words, so nft's JSON never shows them negative) of a hash of the service port, the endpoint
 * and its generation (compile/affinity.ts). A per-endpoint set is what kube-proxy uses, but
 * the kernel looks sets up by name in a list: thousands of them make a full load quadratic.
 */
export type AffinityKey = readonly [number, number];

/** One backend: where a chosen connection is DNATed to. */
export interface Backend {
  readonly addr: IP;
  readonly port: number;
}

/** "addr:port", the IPv6 address in brackets: how dump, explain and the logs name a backend. */
export const fmtBackend = (b: { readonly addr: string; readonly port: number }): string => (b.addr.includes(':') ? `[${b.addr}]:${b.port}` : `${b.addr}:${b.port}`);

/** The keys a packet can carry when it reaches a dnat statement (the renderer indexes on them). */
export type DnatKey =
  | { readonly kind: 'vip'; readonly addr: IP; readonly proto: Protocol; readonly port: number }
  | { readonly kind: 'nodeport'; readonly proto: Protocol; readonly port: number };

export type Statement =
  | { readonly kind: 'verdict'; readonly verdict: Verdict }
  | { readonly kind: 'reject' }
  | { readonly kind: 'vmap'; readonly key: 'daddr.l4proto.dport' | 'l4proto.dport'; readonly map: string }
  | { readonly kind: 'mark-masq' }
  | { readonly kind: 'masquerade'; readonly clearMark: boolean }
  /** DNAT to one backend chosen uniformly at random */
  | { readonly kind: 'dnat'; readonly proto: Protocol; readonly backends: readonly Backend[]; readonly policy: 'cluster' | 'local'; readonly keys: readonly DnatKey[] }
  /** session affinity: remember the client for this endpoint (key), for timeoutSeconds */
  | { readonly kind: 'affinity-update'; readonly set: string; readonly key: AffinityKey; readonly timeoutSeconds: number };

export interface Rule {
  readonly matches: readonly Match[];
  readonly stmts: readonly Statement[];
  /** shown by dump (escaped) and explain; never derived from API strings */
  readonly comment?: string;
}

export interface BaseHook {
  readonly type: 'filter' | 'nat';
  readonly hook: 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';
  readonly priority: number;
}

export interface Chain {
  readonly name: string;
  readonly base?: BaseHook;
  readonly rules: readonly Rule[];
  /** the service port this chain belongs to, for explain and partial sync */
  readonly owner?: string;
}

/** 'saddr.affinity': client address . affinity key (AffinityKey), the shared affinity set */
export type SetKey = 'addr' | 'addr.l4proto.dport' | 'l4proto.dport' | 'addr.addr' | 'saddr.affinity';
export type KeyAtom = string | number;

export interface SetElement {
  readonly key: readonly KeyAtom[];
  /** prefixes in interval sets are written as Cidr text */
  readonly verdict?: Verdict;
  readonly comment?: string;
  /** the service port it dispatches for, for explain and partial sync */
  readonly owner?: string;
}

export interface NamedSet {
  readonly name: string;
  readonly key: SetKey;
  readonly isMap: boolean;
  readonly interval?: boolean;
  /** dynamic set with per-element timeout (session affinity) */
  readonly timeoutSeconds?: number;
  /** the most elements a dynamic set holds (the kernel's default is 65,535) */
  readonly size?: number;
  readonly comment?: string;
  readonly elements: readonly SetElement[];
  readonly owner?: string;
}

export interface Table {
  readonly family: Family;
  readonly name: string;
  readonly sets: readonly NamedSet[];
  readonly chains: readonly Chain[];
}

/** What the compiler decided for one service port in one family, and why (for explain). */
export interface ServicePortInfo {
  readonly id: string;
  readonly family: Family;
  readonly service: string;
  readonly portName: string;
  readonly proto: Protocol;
  readonly port: number;
  readonly decisions: readonly string[];
  readonly clusterBackends: readonly Backend[];
  readonly localBackends: readonly Backend[];
  readonly affinityTimeout: number | undefined;
  /** every address this port answers on in this family: ClusterIP, externalIPs, LB IPs */
  readonly vips: readonly IP[];
  readonly nodePort: number | undefined;
  /** serving endpoint addresses, ignoring traffic policies (what conntrack cleanup keeps) */
  readonly servingEndpoints: readonly IP[];
  /** addresses of this port's endpoints on this node (nodeName), whatever their conditions */
  readonly nodeEndpoints: readonly IP[];
  /** a Local traffic policy with endpoints elsewhere but none here (kube-proxy's
   * sync_proxy_rules_no_local_endpoints_total) */
  readonly noLocalEndpoints: { readonly internal: boolean; readonly external: boolean };
  /** internalTrafficPolicy Local: ClusterIP traffic uses localBackends only */
  readonly internalLocal: boolean;
}

export interface Ruleset {
  readonly tables: readonly Table[];
  readonly servicePorts: readonly ServicePortInfo[];
}

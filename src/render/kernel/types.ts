// "The kernel objects we want": the one representation of nftproxy's nf_tables layout that
// both writers read, the netlink writer (bytes for the kernel, src/apply/netlink/) and the
// text writer (nft syntax for people and `nft -f`, text.ts). Built from the IR by this
// directory alone; nothing downstream re-derives the layout.
//
// Values are what the kernel holds, not text: an element's key is the bytes of its
// concatenated key (each field padded to 4 bytes, as nf_tables registers are), a rule is the
// list of VM expressions nft itself would generate for its text. Keys are kept as latin1
// strings (one char per byte): small in memory, usable as Map keys, and what identity means
// to the kernel.
import type { Family } from '../../ir/types.js';

/** nft's register numbers as nft writes them: 0 verdict, 1-4 the 16-byte registers, 8-23 the 4-byte ones. */
export type Reg = number;

export type KVerdict =
  | { readonly kind: 'accept' | 'drop' | 'return' }
  | { readonly kind: 'jump' | 'goto'; readonly chain: string };

/** The shapes of set and map nftproxy declares: each has one key layout and one declaration. */
export type SetShape =
  /** type ipv4_addr / ipv6_addr */
  | 'addr'
  /** type ADDR . ADDR (hairpin pairs) */
  | 'addr.addr'
  /** type ADDR . inet_proto . inet_service : verdict */
  | 'addr.proto.port:verdict'
  /** type inet_proto . inet_service : verdict */
  | 'proto.port:verdict'
  /** type ADDR . inet_proto . inet_service (a dispatch set: the keys that go to one group chain) */
  | 'addr.proto.port'
  /** type inet_proto . inet_service (a NodePort dispatch set) */
  | 'proto.port'
  /** typeof ip saddr . numgen random mod 1 . numgen random mod 1 (session affinity, dynamic) */
  | 'saddr.word.word'
  /** typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport */
  | 'addr.proto.port.slot:addr.port'
  /** typeof meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport */
  | 'proto.port.slot:addr.port';

export interface KSetDecl {
  readonly name: string;
  readonly shape: SetShape;
  readonly comment?: string;
  /** dynamic sets (filled by the rules) only */
  readonly timeoutSeconds?: number;
  readonly size?: number;
}

export type KData =
  | { readonly kind: 'verdict'; readonly verdict: KVerdict }
  /** a value (a dnat target ADDR . port), bytes as latin1 */
  | { readonly kind: 'value'; readonly bytes: string };

export interface KElement {
  /** the key's bytes (latin1): the element's identity in its set */
  readonly key: string;
  readonly data?: KData;
  readonly comment?: string;
  /** the service port it belongs to, for error attribution */
  readonly owner?: string;
  /** dynamic sets only (session affinity carried over a full sync): timeout and time left */
  readonly timeoutMs?: number;
  readonly expiresMs?: number;
}

export interface KSet extends KSetDecl {
  /** undefined for dynamic sets: the kernel fills them, nothing diffs them */
  readonly elements: ReadonlyMap<string, KElement> | undefined;
  readonly owner?: string;
}

/**
 * An anonymous set bound to one rule (`{ tcp, udp, sctp }`, `!= { cidrs }`). Never a map: when
 * a sync replaces the rule, the kernel deactivates an anonymous map's elements at the commit,
 * under a packet still running the old rule (compile/endpoint-chains.ts).
 */
export interface AnonSet {
  readonly key: 'addr' | 'proto';
  /** addr sets: which address the rule looks up (nft records it in the set's user data) */
  readonly field?: 'saddr' | 'daddr';
  /** elements are ranges: [start, end) pairs, end exclusive, `undefined` end = to the top */
  readonly interval: boolean;
  readonly elements: readonly AnonElement[];
}
export interface AnonElement {
  readonly key: Buffer;
  /** interval sets: this element ends a range (NFT_SET_ELEM_INTERVAL_END) */
  readonly end?: boolean;
  /** interval sets: this element starts a range that runs to the last address (no end element) */
  readonly open?: boolean;
}

/** The nf_tables VM expressions nftproxy's rules use, as typed values. */
export type Expr =
  | { readonly op: 'payload'; readonly base: 'network' | 'transport'; readonly offset: number; readonly len: number; readonly dreg: Reg }
  | { readonly op: 'meta'; readonly key: 'l4proto' | 'mark'; readonly dreg: Reg }
  /** nftrace: only in `nftproxy trace`'s own table (trace-table.ts), never in nftproxy's */
  | { readonly op: 'meta-set'; readonly key: 'mark' | 'nftrace'; readonly sreg: Reg }
  | { readonly op: 'ct'; readonly key: 'state' | 'status'; readonly dreg: Reg }
  | { readonly op: 'bitwise'; readonly reg: Reg; readonly mask: Buffer; readonly xor: Buffer }
  | { readonly op: 'cmp'; readonly reg: Reg; readonly cmp: 'eq' | 'neq'; readonly data: Buffer }
  | { readonly op: 'lookup'; readonly sreg: Reg; readonly set: string | AnonSet; readonly dreg?: Reg; readonly invert?: boolean }
  | { readonly op: 'verdict'; readonly verdict: KVerdict }
  | { readonly op: 'immediate'; readonly dreg: Reg; readonly data: Buffer }
  | { readonly op: 'dnat'; readonly addr: Reg; readonly proto: Reg; readonly flags: number }
  | { readonly op: 'masq'; readonly flags: number }
  | { readonly op: 'reject'; readonly icmpCode: number }
  | { readonly op: 'numgen'; readonly dreg: Reg; readonly mod: number; readonly offset: number }
  | { readonly op: 'dynset-update'; readonly set: string; readonly sreg: Reg; readonly timeoutMs: number }
  | { readonly op: 'fib-type'; readonly field: 'saddr' | 'daddr'; readonly dreg: Reg };

export interface KRule {
  /** the rule as nft prints it (comment included): for people, for `nft -f`, and what the differ compares */
  readonly text: string;
  readonly exprs: readonly Expr[];
  readonly comment?: string;
  readonly owner?: string;
}

export interface KHook {
  readonly type: 'filter' | 'nat';
  readonly hook: 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';
  readonly priority: number;
}

export interface KChain {
  readonly name: string;
  readonly hook?: KHook;
  readonly rules: readonly KRule[];
  readonly owner?: string;
}

export interface KTableHead {
  readonly family: Family;
  readonly name: string;
  readonly comment: string;
}

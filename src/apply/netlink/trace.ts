// nf_tables trace events (NFNLGRP_NFTRACE): for a packet whose skb carries nftrace, the kernel
// sends one event per rule that matched, per verdict, per chain it returned from and per base
// chain policy applied, each naming table, chain and rule handle. The first event of every base
// chain a packet enters also carries the packet's headers as they are at that hook, so the
// address a DNAT chose shows in the events of the hooks after it.
//
// Events come on a socket of their own (joined to the group), read with a short poll on a
// worker thread, like the drift monitor's (monitor.ts).
import type { Family } from '../../ir/types.js';
import * as A from './abi.js';
import { type Message, attrs, bodyAttrs, familyOf, str, u32, u64 } from './attrs.js';
import { familyOfProto } from './dump.js';
import { NfSocket } from './socket.js';

export type TraceType = 'rule' | 'return' | 'policy';

export interface TraceEvent {
  /** the kernel's id of the packet (the same for every event of one skb in this namespace) */
  readonly id: number;
  readonly type: TraceType;
  readonly family: Family | undefined;
  readonly table: string;
  readonly chain: string;
  readonly ruleHandle: bigint | undefined;
  /** rule and return events: the verdict (code as the kernel stores it: 1 accept, 0 drop, -3 jump …) */
  readonly verdict: { readonly code: number; readonly chain: string | undefined } | undefined;
  /** policy events: the base chain's policy */
  readonly policy: number | undefined;
  /** the network and transport headers, on the first event of a base chain */
  readonly network: Buffer | undefined;
  readonly transport: Buffer | undefined;
  readonly iif: number | undefined;
  readonly oif: number | undefined;
  readonly mark: number | undefined;
}

const TYPES: Readonly<Record<number, TraceType>> = { [A.TRACETYPE.POLICY]: 'policy', [A.TRACETYPE.RETURN]: 'return', [A.TRACETYPE.RULE]: 'rule' };

/** A trace message -> its event; undefined for anything else (the group carries nothing else today). */
function decodeTrace(m: Message): TraceEvent | undefined {
  if (m.type !== ((A.NFNL_SUBSYS_NFTABLES << 8) | A.MSG.TRACE)) return undefined;
  const a = bodyAttrs(m);
  const type = TYPES[u32(a.get(A.TRACE.TYPE)) ?? 0];
  const id = u32(a.get(A.TRACE.ID));
  if (!type || id === undefined) return undefined;
  const v = a.get(A.TRACE.VERDICT);
  let verdict: TraceEvent['verdict'];
  if (v) {
    const va = attrs(v);
    const code = va.get(A.VERDICT.CODE);
    verdict = { code: code ? code.readInt32BE(0) : 0, chain: str(va.get(A.VERDICT.CHAIN)) };
  }
  const copy = (b: Buffer | undefined): Buffer | undefined => (b ? Buffer.from(b) : undefined);
  return {
    id, type,
    family: familyOfProto(familyOf(m)),
    table: str(a.get(A.TRACE.TABLE)) ?? '',
    chain: str(a.get(A.TRACE.CHAIN)) ?? '',
    ruleHandle: u64(a.get(A.TRACE.RULE_HANDLE)),
    verdict,
    policy: u32(a.get(A.TRACE.POLICY)),
    network: copy(a.get(A.TRACE.NETWORK_HEADER)),
    transport: copy(a.get(A.TRACE.TRANSPORT_HEADER)),
    iif: u32(a.get(A.TRACE.IIF)),
    oif: u32(a.get(A.TRACE.OIF)),
    mark: u32(a.get(A.TRACE.MARK)),
  };
}

/** A socket in the trace group: open it before the rule that sets nftrace exists, so no event is missed. */
export class TraceReader {
  private constructor(private readonly sock: NfSocket) {}

  static open(netns?: string): TraceReader {
    return new TraceReader(NfSocket.open({ ...(netns ? { netns } : {}), groups: [A.NFNLGRP.NFTRACE] }));
  }

  /**
   * The events queued within `waitMs` (none when nothing came). A lost batch of events (the
   * queue overflowed) is reported as `lost`: the packets it described are incomplete.
   */
  async read(waitMs: number): Promise<{ events: TraceEvent[]; lost: boolean }> {
    if (!(await this.sock.readable(waitMs))) return { events: [], lost: false };
    const events: TraceEvent[] = [];
    let lost = false;
    for (const m of this.sock.drain()) {
      if (m.type === A.NLMSG.OVERRUN) { lost = true; continue; }
      const e = decodeTrace(m);
      if (e) events.push(e);
    }
    return { events, lost };
  }

  close(): void {
    this.sock.close();
  }
}

// Drift: nf_tables change notifications (NFNLGRP_NFTABLES) for nftproxy's own tables that
// nftproxy did not make. The kernel stamps each notification with the port id of the socket
// that made the change, so ours (the writer's socket) are told apart from another process's
// `nft delete element`, `nft flush chain`, `nft delete table`. Changes to other tables are
// none of our business and are ignored, as are the elements of dynamic sets (the kernel fills
// them from the rules).
//
// A full sync of a big cluster makes one notification per object and element: far more than
// a socket queue holds. The writer therefore leaves the group while it sends a large batch
// (pause/resume) and discards what was queued before: the batch replaces whatever those
// notifications described. What a lost notification (queue overflow) might have hidden is
// reported as a change of unknown kind: one more full sync settles it.
import type { Family } from '../../ir/types.js';
import * as A from './abi.js';
import { type Message, bodyAttrs, familyOf, str } from './attrs.js';
import { NfSocket } from './socket.js';

export interface ForeignChange {
  readonly family: Family | undefined;
  /** e.g. "delete element in set" */
  readonly verb: string;
  /** e.g. "delete element in map service-ips", "notifications lost" */
  readonly what: string;
  /** port id of the socket that made it (0: the kernel itself or unknown) */
  readonly portid: number;
}

export interface MonitorOptions {
  readonly table: string;
  /** port ids whose changes are ours (the writer's socket; it can be reopened) */
  readonly ours: () => number | undefined;
  /** sets the kernel fills itself: their element changes are not drift */
  readonly dynamicSets: ReadonlySet<string>;
  readonly onChange: (c: ForeignChange) => void;
  readonly netns?: string;
}

const VERB: Readonly<Record<number, string>> = {
  [A.MSG.NEWTABLE]: 'add table', [A.MSG.DELTABLE]: 'delete table',
  [A.MSG.NEWCHAIN]: 'add chain', [A.MSG.DELCHAIN]: 'delete chain',
  [A.MSG.NEWRULE]: 'add rule in chain', [A.MSG.DELRULE]: 'delete rule in chain',
  [A.MSG.NEWSET]: 'add set', [A.MSG.DELSET]: 'delete set',
  [A.MSG.NEWSETELEM]: 'add element in set', [A.MSG.DELSETELEM]: 'delete element in set',
};

export class TableMonitor {
  private sock: NfSocket | undefined;
  private running = false;
  private loop: Promise<void> | undefined;
  private paused = 0;

  constructor(private readonly o: MonitorOptions) {}

  start(): void {
    if (this.running) return;
    this.sock = NfSocket.open({ ...(this.o.netns ? { netns: this.o.netns } : {}), groups: [A.NFNLGRP.NFTABLES] });
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    this.sock?.close();
    this.sock = undefined;
  }

  /** Leave the group (our own big batch is coming). Nested calls are counted. */
  pause(): void {
    if (!this.sock || this.paused++ > 0) return;
    this.sock.setMembership(A.NFNLGRP.NFTABLES, false);
  }

  /** Rejoin; what was queued before the batch is dropped (the batch replaced the tables). */
  resume(): void {
    if (!this.sock || --this.paused > 0) return;
    this.sock.setMembership(A.NFNLGRP.NFTABLES, true);
    this.sock.drain();
  }

  private async run(): Promise<void> {
    while (this.running && this.sock) {
      // a short poll on a worker thread: stop() takes effect within this time
      if (!(await this.sock.readable(250))) continue;
      if (!this.running) break;
      for (const m of this.sock.drain()) {
        const c = this.classify(m);
        if (c) this.o.onChange(c);
      }
    }
  }

  /** The foreign change a notification reports, or undefined when it is ours or not about our tables. */
  classify(m: Message): ForeignChange | undefined {
    if (m.type === A.NLMSG.OVERRUN) return { family: undefined, verb: 'notifications lost', what: 'notifications lost (queue overflow): a change may have been missed', portid: 0 };
    if (m.type >> 8 !== A.NFNL_SUBSYS_NFTABLES) return undefined;
    const type = m.type & 0xff;
    const verb = VERB[type];
    if (!verb) return undefined; // NEWGEN, traces, objects, flowtables
    const nf = familyOf(m);
    const family: Family | undefined = nf === A.NFPROTO.ip ? 'ip' : nf === A.NFPROTO.ip6 ? 'ip6' : undefined;
    if (!family) return undefined;
    const a = bodyAttrs(m);
    let table: string | undefined, object: string | undefined;
    switch (type) {
      case A.MSG.NEWTABLE: case A.MSG.DELTABLE: table = str(a.get(A.TABLE.NAME)); break;
      case A.MSG.NEWCHAIN: case A.MSG.DELCHAIN: table = str(a.get(A.CHAIN.TABLE)); object = str(a.get(A.CHAIN.NAME)); break;
      case A.MSG.NEWRULE: case A.MSG.DELRULE: table = str(a.get(A.RULE.TABLE)); object = str(a.get(A.RULE.CHAIN)); break;
      case A.MSG.NEWSET: case A.MSG.DELSET: table = str(a.get(A.SET.TABLE)); object = str(a.get(A.SET.NAME)); break;
      default: table = str(a.get(A.SET_ELEM_LIST.TABLE)); object = str(a.get(A.SET_ELEM_LIST.SET));
    }
    if (table !== this.o.table) return undefined;
    if ((type === A.MSG.NEWSETELEM || type === A.MSG.DELSETELEM) && object !== undefined && this.o.dynamicSets.has(object)) return undefined;
    if (m.pid !== 0 && m.pid === this.o.ours()) return undefined;
    // anonymous sets are a rule's: name the change by what people can see
    const name = object?.startsWith('__') ? '(a rule\'s anonymous set)' : object;
    return { family, verb, what: `${verb}${name ? ` ${name}` : ''}`, portid: m.pid };
  }
}

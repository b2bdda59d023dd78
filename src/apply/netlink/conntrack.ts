// The conntrack table over netlink (ctnetlink): list flows, with the kernel narrowing the
// listing, and delete one flow exactly. What UDP cleanup needs and no more; it replaces the
// `conntrack` tool, so a sync that removes a UDP endpoint starts no process.
//
// Kernel facts this relies on (kernel 6.18, test/apply/conntrack.kernel.test.ts):
//  - a dump (IPCTNL_MSG_CT_GET + NLM_F_DUMP) with nfgen_family AF_INET or AF_INET6 returns
//    only that family's flows; with CTA_FILTER it compares the fields its ORIG_FLAGS name
//    against the request's CTA_TUPLE_ORIG and sends only the flows that match, in any zone.
//    The kernel still walks its whole table, but the answer is as small as the match.
//  - except an IPv6 address: on this kernel the IPv6 address comparison of that filter is
//    inverted (asked for fd00::a, it returns every flow but fd00::a's; the test proves it
//    both ways), so for IPv6 the kernel narrows by port and we pick the address here.
//  - a delete (IPCTNL_MSG_CT_DELETE) finds the flow by its original tuple in the zone named by
//    CTA_ZONE (none: zone 0), and with CTA_ID refuses (ENOENT) unless it is the very flow we
//    listed: a flow that expired and came back with the same tuple in between is left alone.
import type { Family } from '../../ir/types.js';
import { type IP, ipFromBytes } from '../../model/ip.js';
import { addrBytes } from '../../render/kernel/bytes.js';
import type { Flow, Tuple } from '../conntrack-plan.js';
import * as A from './abi.js';
import { type Attrs, type Message, type MessageWriter, attrs, bodyAttrs, familyOf } from './attrs.js';
import type { NfSocket } from './socket.js';

/** A flow as the kernel listed it: enough to delete exactly this one. */
export interface ListedFlow extends Flow {
  /** the kernel's id for the entry (CTA_ID) */
  readonly id: number;
  /** conntrack zone, 0 unless the flow was tracked in another */
  readonly zone: number;
}

/** Which flows to list: one family and protocol; the rest narrows the listing when given. */
export interface FlowQuery {
  readonly family: Family;
  readonly proto: 'udp';
  readonly origDst?: IP;
  readonly origDport?: number;
}

const AF = { ip: 2, ip6: 10 } as const;
const PROTO_NUM = { udp: 17 } as const;
const PROTO_NAME: Readonly<Record<number, string>> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6', 132: 'sctp' };
const ENOENT = 2;

/** Flows of the query's family and protocol, narrowed by the kernel to its destination and port. */
export function listFlows(sock: NfSocket, q: FlowQuery): ListedFlow[] {
  const msgs = sock.dump(A.CT_MSG.GET, AF[q.family], (w) => {
    let flags = A.CTA_FILTER_F.PROTO_NUM;
    const tuple = w.open(A.CTA.TUPLE_ORIG);
    if (q.origDst !== undefined && q.family === 'ip') {
      const ip = w.open(A.CTA_TUPLE.IP);
      w.bytes(A.CTA_IP.V4_DST, addrBytes(q.origDst));
      w.close(ip);
      flags |= A.CTA_FILTER_F.IP_DST;
    }
    const proto = w.open(A.CTA_TUPLE.PROTO);
    w.u8(A.CTA_PROTO.NUM, PROTO_NUM[q.proto]);
    if (q.origDport !== undefined) {
      w.u16(A.CTA_PROTO.DST_PORT, q.origDport);
      flags |= A.CTA_FILTER_F.PROTO_DST_PORT;
    }
    w.close(proto);
    w.close(tuple);
    const filter = w.open(A.CTA.FILTER);
    w.u32host(A.CTA_FILTER.ORIG_FLAGS, flags);
    w.close(filter);
  }, A.NFNL_SUBSYS_CTNETLINK);
  const out: ListedFlow[] = [];
  for (const m of msgs) {
    const f = flowOf(m);
    if (f && (q.origDst === undefined || f.orig.dst === q.origDst)) out.push(f);
  }
  return out;
}

/** Deletes exactly this flow: true, or false when it is gone already (expired, or deleted with an earlier twin). */
export function deleteFlow(sock: NfSocket, f: ListedFlow): boolean {
  const errno = sock.act(A.NFNL_SUBSYS_CTNETLINK, A.CT_MSG.DELETE, AF[f.family], (w) => {
    putTuple(w, A.CTA.TUPLE_ORIG, f.family, f.proto, f.orig);
    w.u32(A.CTA.ID, f.id);
    if (f.zone !== 0) w.u16(A.CTA.ZONE, f.zone);
  });
  if (errno === 0) return true;
  if (errno === ENOENT) return false;
  throw new Error(`the kernel refused to delete conntrack flow ${flowText(f)}: errno ${errno}`);
}

export const flowText = (f: Flow): string =>
  `${f.proto} ${hostPort(f.orig.src, f.orig.sport)} -> ${hostPort(f.orig.dst, f.orig.dport)} via ${hostPort(f.reply.src, f.reply.sport)}`;

const hostPort = (ip: IP, port: number): string => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

function putTuple(w: MessageWriter, type: number, family: Family, proto: string, t: Tuple): void {
  const num = Object.entries(PROTO_NAME).find(([, n]) => n === proto)?.[0];
  if (num === undefined) throw new Error(`no protocol number for ${proto}`);
  const tuple = w.open(type);
  const ip = w.open(A.CTA_TUPLE.IP);
  w.bytes(family === 'ip' ? A.CTA_IP.V4_SRC : A.CTA_IP.V6_SRC, addrBytes(t.src));
  w.bytes(family === 'ip' ? A.CTA_IP.V4_DST : A.CTA_IP.V6_DST, addrBytes(t.dst));
  w.close(ip);
  const p = w.open(A.CTA_TUPLE.PROTO);
  w.u8(A.CTA_PROTO.NUM, Number(num));
  w.u16(A.CTA_PROTO.SRC_PORT, t.sport);
  w.u16(A.CTA_PROTO.DST_PORT, t.dport);
  w.close(p);
  w.close(tuple);
}

/** One dumped entry; undefined for what cleanup cannot judge (no ports: icmp; another family). */
export function flowOf(m: Message): ListedFlow | undefined {
  const family = familyOf(m) === AF.ip ? 'ip' : familyOf(m) === AF.ip6 ? 'ip6' : undefined;
  if (!family) return undefined;
  const a = bodyAttrs(m);
  const orig = tupleOf(a.get(A.CTA.TUPLE_ORIG), family);
  const reply = tupleOf(a.get(A.CTA.TUPLE_REPLY), family);
  const id = a.get(A.CTA.ID);
  if (!orig || !reply || !id || id.length < 4) return undefined;
  const zone = a.get(A.CTA.ZONE);
  return { family, proto: orig.proto, orig: orig.tuple, reply: reply.tuple, id: id.readUInt32BE(0), zone: zone && zone.length >= 2 ? zone.readUInt16BE(0) : 0 };
}

function tupleOf(b: Buffer | undefined, family: Family): { proto: string; tuple: Tuple } | undefined {
  if (!b) return undefined;
  const t = attrs(b);
  const ip: Attrs = attrs(t.get(A.CTA_TUPLE.IP) ?? Buffer.alloc(0));
  const p: Attrs = attrs(t.get(A.CTA_TUPLE.PROTO) ?? Buffer.alloc(0));
  const [srcAttr, dstAttr] = family === 'ip' ? [A.CTA_IP.V4_SRC, A.CTA_IP.V4_DST] : [A.CTA_IP.V6_SRC, A.CTA_IP.V6_DST];
  const src = ipOf(ip.get(srcAttr)), dst = ipOf(ip.get(dstAttr));
  const num = p.get(A.CTA_PROTO.NUM), sport = p.get(A.CTA_PROTO.SRC_PORT), dport = p.get(A.CTA_PROTO.DST_PORT);
  if (!src || !dst || !num || !sport || sport.length < 2 || !dport || dport.length < 2) return undefined;
  const proto = PROTO_NAME[num[0]!] ?? `proto-${num[0]}`;
  return { proto, tuple: { src, dst, sport: sport.readUInt16BE(0), dport: dport.readUInt16BE(0) } };
}

const ipOf = (b: Buffer | undefined): IP | undefined => (b ? ipFromBytes(b) : undefined);

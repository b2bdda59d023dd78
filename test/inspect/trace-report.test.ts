// How trace reads the kernel's events (inspect/trace-report.ts), with events shaped as this
// kernel sends them (seen in test/inspect/trace.datapath.test.ts): which events make one
// packet, when a packet is complete, and what its path says (endpoint, masquerade, verdict,
// explain). The datapath test checks the same against real packets; these rows pin the
// rules one at a time.
import { describe, expect, it } from 'vitest';
import type { TraceEvent } from '../../src/apply/netlink/trace.js';
import { PacketCollector, type RuleRef, type TraceContext, interpret } from '../../src/inspect/trace-report.js';
import type { Trace } from '../../src/trace/trace.js';
import type { IP } from '../../src/model/ip.js';

const OWN = 'nftproxy-trace-1-2-ab';
const ACCEPT = 1, DROP = 0, CONTINUE = -1, JUMP = -3, GOTO = -4;

function ipv4(src: string, dst: string, sport: number, dport: number): { network: Buffer; transport: Buffer } {
  const network = Buffer.alloc(20);
  network[0] = 0x45;
  network[9] = 6;
  Buffer.from(src.split('.').map(Number)).copy(network, 12);
  Buffer.from(dst.split('.').map(Number)).copy(network, 16);
  const transport = Buffer.alloc(20);
  transport.writeUInt16BE(sport, 0);
  transport.writeUInt16BE(dport, 2);
  return { network, transport };
}

const ev = (id: number, table: string, chain: string, o: Partial<TraceEvent> = {}): TraceEvent => ({
  id, type: 'rule', family: 'ip', table, chain, ruleHandle: undefined, verdict: undefined, policy: undefined,
  network: undefined, transport: undefined, iif: undefined, oif: undefined, mark: undefined, ...o,
});
/** the rule of trace's own table that set nftrace, with the packet as it came in */
const start = (id: number, dst = '10.96.0.10', dport = 80): TraceEvent => ev(id, OWN, 'prerouting', { ruleHandle: 3n, verdict: { code: CONTINUE, chain: undefined }, ...ipv4('10.244.1.5', dst, 40000, dport), iif: 7 });

const RULES: Record<string, RuleRef> = {
  10: { chain: 'nat-prerouting', text: 'jump services', intended: true, masquerade: false, dnat: false, reject: false },
  11: { chain: 'services', text: 'ip daddr . meta l4proto . th dport vmap @service-ips', intended: true, masquerade: false, dnat: false, reject: false },
  12: { chain: 'dnat-cluster-2', text: 'meta l4proto { tcp, udp, sctp } dnat ip addr . port to … map @endpoints-cluster-2', intended: true, masquerade: false, dnat: true, reject: false },
  13: { chain: 'masquerading', text: 'meta mark & 0x00004000 != 0x00000000 … masquerade fully-random', intended: true, masquerade: true, dnat: false, reject: false },
  14: { chain: 'reject-chain', text: 'reject', intended: true, masquerade: false, dnat: false, reject: true },
  15: { chain: 'cluster-ips-check', text: 'ip daddr 10.96.0.0/12 drop', intended: true, masquerade: false, dnat: false, reject: false },
};
const HOOKS: Record<string, string> = { 'nat-prerouting': 'prerouting', 'filter-forward': 'forward', 'nat-postrouting': 'postrouting' };

const predicted = (outcome: Trace['outcome']): Trace => ({ packet: { src: '10.244.1.5' as IP, dst: '10.96.0.10' as IP, proto: 'tcp', dport: 80 }, origin: 'remote', outcome, servicePort: undefined, steps: [] });
const DNAT_PREDICTION = predicted({ kind: 'dnat', endpoints: [{ addr: '10.244.2.1' as IP, port: 8080, masquerade: false, masqueradeWhy: [] }, { addr: '10.244.2.2' as IP, port: 8080, masquerade: false, masqueradeWhy: [] }] });

const ctx = (p: Trace = DNAT_PREDICTION): TraceContext => ({
  family: 'ip', ownTable: OWN, table: 'nftproxy',
  hookOf: (table, chain) => (table === OWN ? chain : HOOKS[chain]),
  ruleOf: (h) => RULES[String(h)],
  ownerOfChain: () => undefined,
  ownerOfTuple: (dst, proto, port) => (dst === '10.96.0.10' && proto === 'tcp' && port === 80 ? 'lab/web/tcp/http' : undefined),
  ports: [],
  ifname: (i) => `veth${i}`,
  predicted: p,
});

/** a ClusterIP connection's events: DNAT in nat prerouting, the new destination seen at forward */
const dnatPath = (id: number, masq: boolean): TraceEvent[] => [
  start(id),
  ev(id, OWN, 'prerouting', { type: 'policy', policy: ACCEPT }),
  ev(id, 'nftproxy', 'nat-prerouting', { ruleHandle: 10n, verdict: { code: JUMP, chain: 'services' }, ...ipv4('10.244.1.5', '10.96.0.10', 40000, 80) }),
  ev(id, 'nftproxy', 'services', { ruleHandle: 11n, verdict: { code: GOTO, chain: 'dnat-cluster-2' } }),
  ev(id, 'nftproxy', 'dnat-cluster-2', { ruleHandle: 12n, verdict: { code: ACCEPT, chain: undefined } }),
  ev(id, 'nftproxy', 'filter-forward', { type: 'policy', policy: ACCEPT, ...ipv4('10.244.1.5', '10.244.2.2', 40000, 8080) }),
  ...(masq ? [ev(id, 'nftproxy', 'nat-postrouting', { ruleHandle: 13n, verdict: { code: ACCEPT, chain: undefined } })] : []),
];

describe('PacketCollector: which events make one packet', () => {
  it.each([
    { name: 'one packet, complete after a quiet moment', events: dnatPath(1, false), at: [0, 100, 250], want: [0, 0, 1] },
    { name: 'a drop ends the packet at once', events: [start(2), ev(2, 'nftproxy', 'cluster-ips-check', { ruleHandle: 15n, verdict: { code: DROP, chain: undefined } })], at: [0], want: [1] },
    { name: 'events of an id trace did not start (another tracer\'s) are ignored', events: [ev(9, 'nftproxy', 'services', { ruleHandle: 11n })], at: [0, 1000], want: [0, 0] },
    { name: 'the same id starting again is a new packet (the kernel reuses ids)', events: [start(3), start(3)], at: [0], want: [1] },
    { name: 'the chain end of trace\'s own rule (no handle) does not start a packet', events: [start(4), ev(4, OWN, 'prerouting', { verdict: { code: CONTINUE, chain: undefined } })], at: [0, 1000], want: [0, 1] },
  ])('$name', ({ events, at, want }) => {
    const c = new PacketCollector(OWN, 200);
    for (const e of events) c.add(e, 0);
    expect(at.map((t) => c.take(t).length)).toEqual(want);
  });
});

describe('interpret: one packet in nftproxy\'s words', () => {
  it('DNAT: the endpoint is the destination at the next hook; service port from the dispatch key; explain agrees', () => {
    const r = interpret(dnatPath(1, false), ctx(), true);
    expect(r.endpoint).toEqual({ addr: '10.244.2.2', port: 8080, seenAt: 'forward', by: 'nftproxy' });
    expect(r.verdict).toEqual({ kind: 'dnat', text: 'DNAT to 10.244.2.2:8080' });
    expect(r.masquerade).toBe(false);
    expect(r.servicePort?.id).toBe('lab/web/tcp/http');
    expect(r.packet).toEqual({ proto: 'tcp', src: '10.244.1.5', sport: 40000, dst: '10.96.0.10', dport: 80, hook: 'prerouting', iif: 'veth7' });
    expect(r.path.map((s) => `${s.hook} ${s.chain} -> ${s.verdict}`)).toEqual([
      'prerouting nat-prerouting -> jump services', 'prerouting services -> goto dnat-cluster-2', 'prerouting dnat-cluster-2 -> accept', 'forward filter-forward -> policy accept',
    ]);
    expect(r.explain).toEqual({ text: 'DNAT to one of 10.244.2.1:8080, 10.244.2.2:8080, masquerade no', agrees: true });
  });

  it('masquerade seen in the kernel but not predicted: explain differs, and says why', () => {
    const r = interpret(dnatPath(1, true), ctx(), true);
    expect(r.masquerade).toBe(true);
    expect(r.explain).toMatchObject({ agrees: false, why: 'the kernel masqueraded the packet' });
  });

  it('translated with no NAT rule in the path: conntrack did it (a later datagram of a flow)', () => {
    const events = dnatPath(1, false).filter((e) => e.chain !== 'dnat-cluster-2');
    const r = interpret(events, ctx(), true);
    expect(r.endpoint?.by).toBe('conntrack');
    expect(r.verdict.text).toBe('DNAT to 10.244.2.2:8080 (by conntrack: a flow translated before; no nftproxy rule ran)');
  });

  it.each([
    { name: 'reject', handle: 14n, chain: 'reject-chain', want: { kind: 'reject', text: 'REJECT (chain reject-chain)' } },
    { name: 'drop', handle: 15n, chain: 'cluster-ips-check', want: { kind: 'drop', text: 'DROP (chain cluster-ips-check)' } },
  ])('a $name rule ends it: the verdict names the chain', ({ handle, chain, want }) => {
    const r = interpret([start(5), ev(5, 'nftproxy', chain, { ruleHandle: handle, verdict: { code: DROP, chain: undefined } })], ctx(predicted({ kind: want.kind as 'drop', why: 'x' })), true);
    expect(r.verdict).toEqual(want);
    expect(r.endpoint).toBeNull();
    expect(r.explain.agrees).toBe(true);
  });

  it('a drop by another table is named as such, and explain (which knows only nftproxy) differs', () => {
    const r = interpret([start(6), ev(6, 'firewalld', 'filter_INPUT', { type: 'policy', policy: DROP })], ctx(), true);
    expect(r.verdict).toEqual({ kind: 'drop', text: 'DROP (policy of table ip firewalld chain filter_INPUT)' });
    expect(r.explain).toMatchObject({ agrees: false, why: 'the kernel\'s verdict is DROP (policy of table ip firewalld chain filter_INPUT)' });
  });
});

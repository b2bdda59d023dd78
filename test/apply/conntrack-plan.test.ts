// UDP conntrack hygiene, the pure half: which filters a sync plans, how `conntrack -L`
// lines read (the tests' own view of the table), which flows a filter condemns, and how
// cleanConntrack carries on when the kernel refuses (a scripted table; the real one is in
// conntrack.kernel.test.ts). Lines below were captured from conntrack v1.4.7 on kernel 6.18.
import { describe, expect, it } from 'vitest';
import { type EndpointSpec, type PortSpec, compileObjects, service, slice } from '../support/builders.js';
import { LAB_ENV } from '../support/address-plan.js';
import type { ServicePortInfo } from '../../src/ir/types.js';
import { type ConntrackFilter, type Flow, isStale, planConntrackCleanup } from '../../src/apply/conntrack-plan.js';
import { type ConntrackTable, cleanConntrack } from '../../src/apply/conntrack.js';
import type { FlowQuery, ListedFlow } from '../../src/apply/netlink/conntrack.js';
import { parseFlowLine, parseFlows } from '../support/conntrack-listing.js';
import type { IP } from '../../src/model/ip.js';

const ENV = LAB_ENV;
const ports = (objects: unknown[]): readonly ServicePortInfo[] => compileObjects(objects, ENV).ruleset.servicePorts;

// kube-system/dns: UDP 53 (NodePort 30053) and TCP 53 (NodePort 30054) on 172.30.0.10.
const DNS_PORTS: PortSpec[] = [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, protocol: 'TCP' }];
const dnsSvc = (spec: Record<string, unknown> = {}, status?: Record<string, unknown>) => service('kube-system', 'dns', {
  type: 'NodePort', clusterIP: '172.30.0.10',
  ports: [{ name: 'dns', port: 53, protocol: 'UDP', nodePort: 30053 }, { name: 'dns-tcp', port: 53, protocol: 'TCP', nodePort: 30054 }],
  ...spec,
}, status);
const dnsEps = (eps: EndpointSpec[]) => slice('kube-system', 'dns', 'dns-a', DNS_PORTS, eps);
const dns = (...ips: string[]) => [dnsSvc(), dnsEps(ips.map((ip) => ({ ip })))];

/** One filter in one line: "ip 172.30.0.10:53 keep a,b" or "ip *:30053 keep a except v". */
function fmt(f: ConntrackFilter): string {
  const dst = f.kind === 'vip' ? (f.family === 'ip6' ? `[${f.origDst}]` : f.origDst) : '*';
  const except = f.kind === 'nodeport' && f.exceptOrigDst.length > 0 ? ` except ${f.exceptOrigDst.join(',')}` : '';
  return `${f.family} ${dst}:${f.origDport} keep ${f.keepReplySrc.join(',')}${except}`;
}

interface PlanRow { name: string; prev: unknown[] | undefined; next: unknown[]; want: string[] }

const planRows: PlanRow[] = [
  { name: 'first sync after start: every UDP port with serving endpoints', prev: undefined, next: dns('10.180.0.1', '10.180.0.2'),
    want: ['ip 172.30.0.10:53 keep 10.180.0.1,10.180.0.2', 'ip *:30053 keep 10.180.0.1,10.180.0.2'] },
  { name: 'a new service', prev: [], next: dns('10.180.0.1'),
    want: ['ip 172.30.0.10:53 keep 10.180.0.1', 'ip *:30053 keep 10.180.0.1'] },
  { name: 'nothing changed: nothing to do', prev: dns('10.180.0.1'), next: dns('10.180.0.1'), want: [] },
  { name: 'an endpoint went away', prev: dns('10.180.0.1', '10.180.0.9'), next: dns('10.180.0.1'),
    want: ['ip 172.30.0.10:53 keep 10.180.0.1', 'ip *:30053 keep 10.180.0.1'] },
  { name: 'an endpoint was added (old flows to the kept ones stay, see matcher)', prev: dns('10.180.0.1'), next: dns('10.180.0.1', '10.180.0.2'),
    want: ['ip 172.30.0.10:53 keep 10.180.0.1,10.180.0.2', 'ip *:30053 keep 10.180.0.1,10.180.0.2'] },
  { name: 'the first endpoint arrived (flows answered by the VIP itself must go)', prev: [dnsSvc()], next: dns('10.180.0.1'),
    want: ['ip 172.30.0.10:53 keep 10.180.0.1', 'ip *:30053 keep 10.180.0.1'] },
  { name: 'the last endpoint went away: no serving endpoint, nothing to keep, nothing done', prev: dns('10.180.0.1'), next: [dnsSvc(), dnsEps([])], want: [] },
  { name: 'no serving endpoint on first sync', prev: undefined, next: [dnsSvc(), dnsEps([{ ip: '10.180.0.1', ready: false, serving: false }])], want: [] },
  { name: 'serving but terminating endpoints are kept (traffic policies ignored)', prev: undefined,
    next: [dnsSvc({ externalTrafficPolicy: 'Local' }), dnsEps([{ ip: '10.180.0.1', ready: false, serving: true, terminating: true, node: 'elsewhere' }])],
    want: ['ip 172.30.0.10:53 keep 10.180.0.1', 'ip *:30053 keep 10.180.0.1'] },
  { name: 'an endpoint stopped serving', prev: dns('10.180.0.1', '10.180.0.2'),
    next: [dnsSvc(), dnsEps([{ ip: '10.180.0.1' }, { ip: '10.180.0.2', ready: false, serving: false }])],
    want: ['ip 172.30.0.10:53 keep 10.180.0.1', 'ip *:30053 keep 10.180.0.1'] },
  { name: 'only the TCP port changed: TCP is never cleaned', prev: dns('10.180.0.1'),
    next: [dnsSvc(), dnsEps([{ ip: '10.180.0.1' }]), slice('kube-system', 'dns', 'dns-b', [{ name: 'dns-tcp', port: 53, protocol: 'TCP' }], [{ ip: '10.180.0.7' }])], want: [] },
  { name: 'TCP-only service', prev: undefined,
    next: [service('shop', 'web', { clusterIP: '172.30.0.20', ports: [{ name: 'http', port: 80 }] }), slice('shop', 'web', 'web-a', [{ name: 'http', port: 80 }], [{ ip: '10.180.0.5' }])], want: [] },
  { name: 'ClusterIP only: no NodePort filter', prev: undefined,
    next: [dnsSvc({ type: 'ClusterIP', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] }), dnsEps([{ ip: '10.180.0.1' }])],
    want: ['ip 172.30.0.10:53 keep 10.180.0.1'] },
  { name: 'externalIPs and load-balancer IPs get a filter each', prev: undefined,
    next: [dnsSvc({ type: 'LoadBalancer', externalIPs: ['192.168.99.11'] }, { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } }), dnsEps([{ ip: '10.180.0.1' }])],
    want: ['ip 172.30.0.10:53 keep 10.180.0.1', 'ip 192.168.99.11:53 keep 10.180.0.1', 'ip 1.2.3.4:53 keep 10.180.0.1', 'ip *:30053 keep 10.180.0.1'] },
  { name: 'a new externalIP is a change', prev: dns('10.180.0.1'), next: [dnsSvc({ externalIPs: ['192.168.99.11'] }), dnsEps([{ ip: '10.180.0.1' }])],
    want: ['ip 172.30.0.10:53 keep 10.180.0.1', 'ip 192.168.99.11:53 keep 10.180.0.1', 'ip *:30053 keep 10.180.0.1'] },
  { name: 'a new NodePort is a change', prev: dns('10.180.0.1'),
    next: [dnsSvc({ ports: [{ name: 'dns', port: 53, protocol: 'UDP', nodePort: 30055 }, { name: 'dns-tcp', port: 53, protocol: 'TCP', nodePort: 30054 }] }), dnsEps([{ ip: '10.180.0.1' }])],
    want: ['ip 172.30.0.10:53 keep 10.180.0.1', 'ip *:30055 keep 10.180.0.1'] },
  { name: 'only the changed service is planned', prev: [...dns('10.180.0.1'), service('ns1', 'syslog', { clusterIP: '172.30.0.30', ports: [{ name: 'syslog', port: 514, protocol: 'UDP' }] })],
    next: [...dns('10.180.0.1'), service('ns1', 'syslog', { clusterIP: '172.30.0.30', ports: [{ name: 'syslog', port: 514, protocol: 'UDP' }] }),
      slice('ns1', 'syslog', 'syslog-a', [{ name: 'syslog', port: 514, protocol: 'UDP' }], [{ ip: '10.180.3.3' }])],
    want: ['ip 172.30.0.30:514 keep 10.180.3.3'] },
  { name: 'a UDP VIP:port sharing the NodePort number is left to its own filter', prev: undefined,
    next: [...dns('10.180.0.1'), service('ns1', 'odd', { clusterIP: '172.30.0.31', ports: [{ name: 'odd', port: 30053, protocol: 'UDP' }] }),
      slice('ns1', 'odd', 'odd-a', [{ name: 'odd', port: 30053, protocol: 'UDP' }], [{ ip: '10.180.4.4' }])],
    want: ['ip 172.30.0.10:53 keep 10.180.0.1', 'ip *:30053 keep 10.180.0.1 except 172.30.0.31', 'ip 172.30.0.31:30053 keep 10.180.4.4'] },
  { name: 'dual-stack: one set of filters per family', prev: undefined,
    next: [dnsSvc({ clusterIPs: ['172.30.0.10', 'fd00:10:96::a'], ipFamilies: ['IPv4', 'IPv6'] }), dnsEps([{ ip: '10.180.0.1' }]),
      slice('kube-system', 'dns', 'dns-6', DNS_PORTS, [{ ip: 'fd00:10::1' }], 'IPv6')],
    want: ['ip 172.30.0.10:53 keep 10.180.0.1', 'ip *:30053 keep 10.180.0.1', 'ip6 [fd00:10:96::a]:53 keep fd00:10::1', 'ip6 *:30053 keep fd00:10::1'] },
];

describe('planConntrackCleanup', () => {
  it.each(planRows)('$name', ({ prev, next, want }) => {
    const got = planConntrackCleanup(prev === undefined ? undefined : ports(prev), ports(next)).map(fmt);
    expect([...got].sort()).toEqual([...want].sort());
  });

  it('filters carry what logs need and nothing but UDP', () => {
    const [f] = planConntrackCleanup(undefined, ports(dns('10.180.0.1')));
    expect(f).toMatchObject({ kind: 'vip', proto: 'udp', family: 'ip', service: 'kube-system/dns', portName: 'dns' });
  });
});

// ---------------------------------------------------------------------------------------

/** Lines as conntrack v1.4.7 printed them on this machine. */
const LINES = {
  unreplied: 'udp      17 119 src=10.0.0.2 dst=172.30.0.41 sport=40000 dport=53 [UNREPLIED] src=10.180.0.9 dst=10.0.0.2 sport=53 dport=40000 mark=0 use=1',
  replied: 'udp      17 29 src=127.0.0.1 dst=127.0.0.1 sport=40000 dport=5353 src=127.0.0.1 dst=127.0.0.1 sport=5353 dport=40000 mark=0 use=1',
  assured: 'udp      17 119 src=10.0.0.3 dst=172.30.0.41 sport=40001 dport=53 [UNREPLIED] src=10.180.0.1 dst=10.0.0.3 sport=53 dport=40001 [ASSURED] mark=0 use=1',
  zone: 'udp      17 119 src=10.0.0.2 dst=172.30.0.41 sport=40000 dport=53 [UNREPLIED] src=10.180.0.9 dst=10.0.0.2 sport=53 dport=40000 mark=0 zone=7 use=1',
  acct: 'udp      17 119 src=10.0.0.2 dst=172.30.0.41 sport=40000 dport=53 packets=0 bytes=0 [UNREPLIED] src=10.180.0.9 dst=10.0.0.2 sport=53 dport=40000 packets=0 bytes=0 mark=0 delta-time=0 use=1',
  ipv6: 'udp      17 119 src=2001:db8::7 dst=2001:db8::1 sport=5000 dport=30053 packets=0 bytes=0 [UNREPLIED] src=fd00:10::5 dst=2001:db8::7 sport=53 dport=5000 packets=0 bytes=0 [ASSURED] mark=0 delta-time=0 use=1',
  tcp: 'tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=40532 dport=8080 src=127.0.0.1 dst=127.0.0.1 sport=8080 dport=40532 [ASSURED] mark=0 use=1',
  summary: 'conntrack v1.4.7 (conntrack-tools): 3 flow entries have been shown.',
  icmp: 'icmp     1 29 src=10.0.0.2 dst=172.30.0.41 type=8 code=0 id=7 src=172.30.0.41 dst=10.0.0.2 type=0 code=0 id=7 mark=0 use=1',
};

const flow = (proto: string, o: string, r: string): Flow => {
  const tuple = (s: string) => {
    const m = /^\[?(.+?)\]?:(\d+) -> \[?(.+?)\]?:(\d+)$/.exec(s)!;
    return { src: m[1] as IP, sport: Number(m[2]), dst: m[3] as IP, dport: Number(m[4]) };
  };
  const orig = tuple(o);
  return { family: orig.src.includes(':') ? 'ip6' : 'ip', proto, orig, reply: tuple(r) };
};

describe('parseFlowLine', () => {
  it.each<[keyof typeof LINES, Flow | undefined]>([
    ['unreplied', flow('udp', '10.0.0.2:40000 -> 172.30.0.41:53', '10.180.0.9:53 -> 10.0.0.2:40000')],
    ['replied', flow('udp', '127.0.0.1:40000 -> 127.0.0.1:5353', '127.0.0.1:5353 -> 127.0.0.1:40000')],
    ['assured', flow('udp', '10.0.0.3:40001 -> 172.30.0.41:53', '10.180.0.1:53 -> 10.0.0.3:40001')],
    ['zone', flow('udp', '10.0.0.2:40000 -> 172.30.0.41:53', '10.180.0.9:53 -> 10.0.0.2:40000')],
    ['acct', flow('udp', '10.0.0.2:40000 -> 172.30.0.41:53', '10.180.0.9:53 -> 10.0.0.2:40000')],
    ['ipv6', flow('udp', '[2001:db8::7]:5000 -> [2001:db8::1]:30053', '[fd00:10::5]:53 -> [2001:db8::7]:5000')],
    ['tcp', flow('tcp', '127.0.0.1:40532 -> 127.0.0.1:8080', '127.0.0.1:8080 -> 127.0.0.1:40532')],
    ['summary', undefined],
    ['icmp', undefined],
  ])('%s', (key, want) => expect(parseFlowLine(LINES[key])).toEqual(want));

  it.each([
    ['empty', ''],
    ['one direction only', 'udp 17 29 src=10.0.0.2 dst=172.30.0.41 sport=40000 dport=53 mark=0 use=1'],
    ['bad address', 'udp 17 29 src=10.0.0.999 dst=172.30.0.41 sport=40000 dport=53 src=10.180.0.9 dst=10.0.0.2 sport=53 dport=40000'],
    ['bad port', 'udp 17 29 src=10.0.0.2 dst=172.30.0.41 sport=40000 dport=70000 src=10.180.0.9 dst=10.0.0.2 sport=53 dport=40000'],
    ['mixed families', 'udp 17 29 src=10.0.0.2 dst=fd00::1 sport=40000 dport=53 src=10.180.0.9 dst=10.0.0.2 sport=53 dport=40000'],
  ])('refuses %s', (_, line) => expect(parseFlowLine(line)).toBeUndefined());

  it('canonicalises IPv6 so it compares with model addresses', () => {
    expect(parseFlowLine('udp 17 1 src=FD00:0:0::2 dst=fd00::a sport=1 dport=53 src=fd00:0::9 dst=fd00::2 sport=53 dport=1')?.reply.src).toBe('fd00::9');
  });
});

// ---------------------------------------------------------------------------------------

const vip = (origDst: string, origDport: number, keep: string[], family: 'ip' | 'ip6' = 'ip'): ConntrackFilter =>
  ({ kind: 'vip', family, proto: 'udp', origDst: origDst as IP, origDport, keepReplySrc: keep as [IP, ...IP[]], service: 'ns/svc', portName: 'p' });
const nodePort = (origDport: number, keep: string[], except: string[] = [], family: 'ip' | 'ip6' = 'ip'): ConntrackFilter =>
  ({ kind: 'nodeport', family, proto: 'udp', origDport, exceptOrigDst: except as IP[], keepReplySrc: keep as [IP, ...IP[]], service: 'ns/svc', portName: 'p' });
const line = (proto: string, o: string, r: string) => {
  const f = flow(proto, o, r);
  return `${proto} ${proto === 'udp' ? 17 : 6} 30 src=${f.orig.src} dst=${f.orig.dst} sport=${f.orig.sport} dport=${f.orig.dport} src=${f.reply.src} dst=${f.reply.dst} sport=${f.reply.sport} dport=${f.reply.dport} mark=0 use=1`;
};

interface MatchRow { name: string; filter: ConntrackFilter; flow: string; stale: boolean }
const C = '10.0.0.2:40000';
const matchRows: MatchRow[] = [
  { name: 'VIP flow answered by a dead endpoint', filter: vip('172.30.0.10', 53, ['10.180.0.1']), flow: line('udp', `${C} -> 172.30.0.10:53`, `10.180.0.9:53 -> ${C}`), stale: true },
  { name: 'VIP flow answered by a serving endpoint', filter: vip('172.30.0.10', 53, ['10.180.0.1']), flow: line('udp', `${C} -> 172.30.0.10:53`, `10.180.0.1:53 -> ${C}`), stale: false },
  { name: 'VIP flow never DNATed (answered by the VIP itself)', filter: vip('172.30.0.10', 53, ['10.180.0.1']), flow: line('udp', `${C} -> 172.30.0.10:53`, `172.30.0.10:53 -> ${C}`), stale: true },
  { name: 'serving endpoint on another target port still counts', filter: vip('172.30.0.10', 53, ['10.180.0.1']), flow: line('udp', `${C} -> 172.30.0.10:53`, `10.180.0.1:5353 -> ${C}`), stale: false },
  { name: 'same VIP, other port', filter: vip('172.30.0.10', 53, ['10.180.0.1']), flow: line('udp', `${C} -> 172.30.0.10:54`, `10.180.0.9:54 -> ${C}`), stale: false },
  { name: 'other VIP, same port', filter: vip('172.30.0.10', 53, ['10.180.0.1']), flow: line('udp', `${C} -> 172.30.0.11:53`, `10.180.0.9:53 -> ${C}`), stale: false },
  { name: 'TCP is never judged', filter: vip('172.30.0.10', 53, ['10.180.0.1']), flow: line('tcp', `${C} -> 172.30.0.10:53`, `10.180.0.9:53 -> ${C}`), stale: false },
  { name: 'NodePort flow on any address, dead endpoint', filter: nodePort(30053, ['10.180.0.1']), flow: line('udp', `203.0.113.5:5000 -> 192.168.0.2:30053`, `10.180.0.9:53 -> 192.168.0.2:4000`), stale: true },
  { name: 'NodePort flow, serving endpoint', filter: nodePort(30053, ['10.180.0.1']), flow: line('udp', `203.0.113.5:5000 -> 192.168.0.2:30053`, `10.180.0.1:53 -> 192.168.0.2:4000`), stale: false },
  { name: 'NodePort filter, other port', filter: nodePort(30053, ['10.180.0.1']), flow: line('udp', `203.0.113.5:5000 -> 192.168.0.2:30054`, `10.180.0.9:53 -> 192.168.0.2:4000`), stale: false },
  { name: 'NodePort filter leaves a VIP sharing the port number alone', filter: nodePort(30053, ['10.180.0.1'], ['172.30.0.31']), flow: line('udp', `${C} -> 172.30.0.31:30053`, `10.180.4.4:30053 -> ${C}`), stale: false },
  { name: 'IPv4 filter, IPv6 flow', filter: nodePort(30053, ['10.180.0.1']), flow: LINES.ipv6, stale: false },
  { name: 'IPv6 NodePort flow, dead endpoint', filter: nodePort(30053, ['fd00:10::1'], [], 'ip6'), flow: LINES.ipv6, stale: true },
  { name: 'IPv6 NodePort flow, serving endpoint', filter: nodePort(30053, ['fd00:10::5'], [], 'ip6'), flow: LINES.ipv6, stale: false },
];

describe('isStale', () => {
  it.each(matchRows)('$name: stale $stale', ({ filter, flow: l, stale }) => expect(isStale(filter, parseFlowLine(l)!)).toBe(stale));
});

describe('judging a whole listing', () => {
  it('picks exactly the stale lines and skips what it cannot read', () => {
    const listing = Object.values(LINES).join('\n') + '\n';
    const filter = vip('172.30.0.41', 53, ['10.180.0.1']);
    expect(parseFlows(listing).filter((f) => isStale(filter, f)).map((f) => `${f.orig.src}:${f.orig.sport} via ${f.reply.src}`))
      .toEqual(['10.0.0.2:40000 via 10.180.0.9', '10.0.0.2:40000 via 10.180.0.9', '10.0.0.2:40000 via 10.180.0.9']);
  });
});

// ---------------------------------------------------------------------------------------

const listed = (l: string, id: number, zone = 0): ListedFlow => ({ ...parseFlowLine(l)!, id, zone });
const STALE = listed(LINES.unreplied, 1); // via 10.180.0.9: stale for the filter below
const KEPT = listed(LINES.assured, 2); // via 10.180.0.1: kept

/** A table that answers as scripted and records what it was asked. */
function scripted(list: (q: FlowQuery) => readonly ListedFlow[], del: (f: ListedFlow) => boolean): ConntrackTable & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    list: (q) => { calls.push(`list ${q.family} ${q.origDst ?? '*'}:${q.origDport ?? '*'}`); return list(q); },
    delete: (f) => { calls.push(`delete ${f.id}`); return del(f); },
  };
}
const refuse = (what: string) => (): never => { throw new Error(what); };

interface TableRow { name: string; list: (q: FlowQuery) => readonly ListedFlow[]; del: (f: ListedFlow) => boolean; deleted: number; errors: RegExp[]; calls: string[] }
const tableRows: TableRow[] = [
  { name: 'a stale flow deleted, a kept one left', list: () => [STALE, KEPT], del: () => true, deleted: 1, errors: [], calls: ['list ip 172.30.0.41:53', 'delete 1'] },
  { name: 'already gone (the kernel says ENOENT): not counted, no failure', list: () => [STALE], del: () => false, deleted: 0, errors: [], calls: ['list ip 172.30.0.41:53', 'delete 1'] },
  { name: 'delete refused: reported with the flow and the service port', list: () => [STALE], del: refuse('errno 22'), deleted: 0,
    errors: [/^deleting udp 10\.0\.0\.2:40000 -> 172\.30\.0\.41:53 via 10\.180\.0\.9:53 \(ns\/svc:p 172\.30\.0\.41:53\): errno 22$/], calls: ['list ip 172.30.0.41:53', 'delete 1'] },
  { name: 'listing refused: no delete attempted', list: refuse('netfilter netlink refused us (EPERM)'), del: () => true, deleted: 0,
    errors: [/^listing conntrack for ns\/svc:p 172\.30\.0\.41:53: .*EPERM/], calls: ['list ip 172.30.0.41:53'] },
  { name: 'nothing listed: nothing deleted', list: () => [], del: refuse('not called'), deleted: 0, errors: [], calls: ['list ip 172.30.0.41:53'] },
];

describe('cleanConntrack with a scripted table', () => {
  it.each(tableRows)('$name', ({ list, del, deleted, errors, calls }) => {
    const table = scripted(list, del);
    const result = cleanConntrack([vip('172.30.0.41', 53, ['10.180.0.1'])], table);
    expect(result.deleted).toBe(deleted);
    expect(result.errors).toHaveLength(errors.length);
    errors.forEach((re, i) => expect(result.errors[i]).toMatch(re));
    expect(table.calls).toEqual(calls);
  });

  it('a failing filter does not stop the next one', () => {
    let n = 0;
    const table = scripted(() => { if (n++ === 0) throw new Error('errno 105'); return [STALE]; }, () => true);
    const result = cleanConntrack([vip('172.30.0.41', 53, ['10.180.0.1']), vip('172.30.0.41', 53, ['10.180.0.1'])], table);
    expect(result).toMatchObject({ deleted: 1, errors: [expect.stringContaining('errno 105')] });
  });

  it('many filters: one listing per family, and a flow two filters condemn is deleted once', () => {
    const table = scripted(() => [STALE, KEPT], () => true);
    const result = cleanConntrack([vip('172.30.0.41', 53, ['10.180.0.1']), vip('172.30.0.41', 53, ['10.180.0.1']), nodePort(53, ['10.180.0.1'])], table, 0);
    expect(result).toEqual({ deleted: 1, errors: [] });
    expect(table.calls).toEqual(['list ip *:*', 'delete 1']);
  });
});

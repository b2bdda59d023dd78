// UDP conntrack hygiene against the real kernel: each row inserts real conntrack entries in
// a throwaway network namespace with the conntrack tool, plans from two compiled states, runs
// cleanConntrack over a netlink socket opened inside that namespace, and lists what survived
// with the tool (an independent reader). Nothing runs in the root namespace: every command
// goes through `ip netns exec <test ns>`, the socket is opened there.
import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { canUseKernel, KERNEL_SKIP_REASON, withNetns } from '../lab/netns.js';
import { type PortSpec, compileObjects, service, slice } from '../support/builders.js';
import { LAB_ENV } from '../support/address-plan.js';
import { planConntrackCleanup } from '../../src/apply/conntrack-plan.js';
import { type ConntrackTable, NetlinkConntrack, cleanConntrack } from '../../src/apply/conntrack.js';
import { flowText } from '../../src/apply/netlink/conntrack.js';
import * as A from '../../src/apply/netlink/abi.js';
import { NfSocket } from '../../src/apply/netlink/socket.js';
import { addrBytes } from '../../src/render/kernel/bytes.js';
import type { IP } from '../../src/model/ip.js';
import { parseFlows } from '../support/conntrack-listing.js';
import type { ServicePortInfo } from '../../src/ir/types.js';

const hasConntrack = ['/usr/sbin/conntrack', '/sbin/conntrack', '/usr/bin/conntrack'].some((p) => existsSync(p));

const ENV = LAB_ENV;
const ports = (objects: unknown[]): readonly ServicePortInfo[] => compileObjects(objects, ENV).ruleset.servicePorts;

// kube-system/dns: UDP+TCP 53 on 172.30.0.10 (and fd00:10:96::a), externalIP 192.168.99.11, NodePort 30053/udp.
const DNS_PORTS: PortSpec[] = [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, protocol: 'TCP' }];
const dnsSvc = (dualStack = false) => service('kube-system', 'dns', {
  type: 'NodePort', clusterIP: '172.30.0.10', externalIPs: ['192.168.99.11'],
  ...(dualStack ? { clusterIPs: ['172.30.0.10', 'fd00:10:96::a'], ipFamilies: ['IPv4', 'IPv6'] } : {}),
  ports: [{ name: 'dns', port: 53, protocol: 'UDP', nodePort: 30053 }, { name: 'dns-tcp', port: 53, protocol: 'TCP', nodePort: 30054 }],
});
/** endpoints: "10.180.0.1" serving, "10.180.0.2!" present but not serving */
const dns = (...eps: string[]) => [dnsSvc(), slice('kube-system', 'dns', 'dns-a', DNS_PORTS,
  eps.map((e) => (e.endsWith('!') ? { ip: e.slice(0, -1), ready: false, serving: false } : { ip: e })))];
const dualDns = (v4: string, v6: string) => [dnsSvc(true),
  slice('kube-system', 'dns', 'dns-a', DNS_PORTS, [{ ip: v4 }]), slice('kube-system', 'dns', 'dns-6', DNS_PORTS, [{ ip: v6 }], 'IPv6')];

/**
 * A flow as it reads in a row: "udp 10.0.0.2:40000 -> 172.30.0.10:53 via 10.180.0.9:53",
 * optionally " zone 7". The reply goes back to the original source.
 */
type FlowSpec = string;
const SPEC = /^(udp|tcp) \[?(.+?)\]?:(\d+) -> \[?(.+?)\]?:(\d+) via \[?(.+?)\]?:(\d+)(?: zone (\d+))?$/;

function insertArgs(spec: FlowSpec): string[] {
  const m = SPEC.exec(spec);
  if (!m) throw new Error(`bad flow spec ${spec}`);
  const [, proto, src, sport, dst, dport, rsrc, rsport, zone] = m as unknown as string[];
  return ['-I', '-p', proto!, '-s', src!, '-d', dst!, '--sport', sport!, '--dport', dport!,
    '--reply-src', rsrc!, '--reply-dst', src!, '--reply-port-src', rsport!, '--reply-port-dst', sport!, '-t', '300',
    ...(proto === 'tcp' ? ['--state', 'ESTABLISHED'] : []), ...(zone ? ['--zone', zone] : [])];
}

const host = (a: string) => (a.includes(':') ? `[${a}]` : a);

interface Row {
  name: string;
  prev: unknown[] | undefined;
  next: unknown[];
  flows: { keep: FlowSpec[]; drop: FlowSpec[] };
  deleted: number;
  /** false: the plan is empty, so conntrack must not even be listed */
  listed?: boolean;
}

const rows: Row[] = [
  {
    name: 'first sync: stale VIP, externalIP and NodePort flows go; serving, other destinations and TCP stay',
    prev: undefined, next: dns('10.180.0.1', '10.180.0.2!'),
    flows: {
      keep: [
        'udp 10.0.0.2:40000 -> 172.30.0.10:53 via 10.180.0.1:53',
        'udp 10.0.0.2:40001 -> 172.30.0.99:53 via 10.180.0.9:53',
        'udp 10.0.0.2:40002 -> 172.30.0.10:54 via 10.180.0.9:54',
        'tcp 10.0.0.2:40003 -> 172.30.0.10:53 via 10.180.0.9:53',
        'udp 203.0.113.5:5002 -> 192.168.0.2:30053 via 10.180.0.1:53',
        'udp 203.0.113.5:5003 -> 192.168.0.2:30054 via 10.180.0.9:53',
      ],
      drop: [
        'udp 10.0.0.3:40000 -> 172.30.0.10:53 via 10.180.0.9:53',
        'udp 10.0.0.4:40000 -> 172.30.0.10:53 via 10.180.0.2:53',
        'udp 10.0.0.5:40000 -> 172.30.0.10:53 via 172.30.0.10:53',
        'udp 203.0.113.5:5000 -> 192.168.99.11:53 via 10.180.0.9:53',
        'udp 203.0.113.5:5001 -> 192.168.0.2:30053 via 10.180.0.9:53',
      ],
    },
    deleted: 5,
  },
  {
    name: 'endpoint replaced: flows DNATed to the old one go, the new one stays',
    prev: dns('10.180.0.1'), next: dns('10.180.0.2'),
    flows: {
      keep: ['udp 10.0.0.3:40000 -> 172.30.0.10:53 via 10.180.0.2:53', 'udp 203.0.113.5:5001 -> 192.168.0.2:30053 via 10.180.0.2:53'],
      drop: ['udp 10.0.0.2:40000 -> 172.30.0.10:53 via 10.180.0.1:53', 'udp 203.0.113.5:5000 -> 192.168.0.2:30053 via 10.180.0.1:53'],
    },
    deleted: 2,
  },
  {
    name: 'first endpoint: flows that went un-DNATed (answered by the VIP itself) go',
    prev: [dnsSvc()], next: dns('10.180.0.1'),
    flows: {
      keep: ['udp 10.0.0.3:40000 -> 172.30.0.10:53 via 10.180.0.1:53'],
      drop: ['udp 10.0.0.2:40000 -> 172.30.0.10:53 via 172.30.0.10:53', 'udp 203.0.113.5:5000 -> 192.168.99.11:53 via 192.168.99.11:53'],
    },
    deleted: 2,
  },
  {
    name: 'unchanged service: conntrack is not even listed',
    prev: dns('10.180.0.1'), next: dns('10.180.0.1'),
    flows: { keep: ['udp 10.0.0.2:40000 -> 172.30.0.10:53 via 10.180.0.9:53'], drop: [] },
    deleted: 0, listed: false,
  },
  {
    name: 'last endpoint gone: nothing to keep, nothing done',
    prev: dns('10.180.0.1'), next: dns(),
    flows: { keep: ['udp 10.0.0.2:40000 -> 172.30.0.10:53 via 10.180.0.1:53'], drop: [] },
    deleted: 0, listed: false,
  },
  {
    name: 'dual-stack: IPv6 VIP and NodePort flows judged by the IPv6 endpoints',
    prev: undefined, next: dualDns('10.180.0.1', 'fd00:10::1'),
    flows: {
      keep: [
        'udp [fd00:10::2]:40000 -> [fd00:10:96::a]:53 via [fd00:10::1]:53',
        'udp [2001:db8::7]:5001 -> [2001:db8::1]:30053 via [fd00:10::1]:53',
        'udp [fd00:10::2]:40001 -> [fd00:10:96::b]:53 via [fd00:10::9]:53',
        'udp 10.0.0.2:40000 -> 172.30.0.10:53 via 10.180.0.1:53',
      ],
      drop: [
        'udp [fd00:10::3]:40000 -> [fd00:10:96::a]:53 via [fd00:10::9]:53',
        'udp [2001:db8::7]:5000 -> [2001:db8::1]:30053 via [fd00:10::9]:53',
        'udp 10.0.0.3:40000 -> 172.30.0.10:53 via 10.180.0.9:53',
      ],
    },
    deleted: 3,
  },
  {
    name: 'the same stale flow in two conntrack zones: both go, counted once each',
    prev: undefined, next: dns('10.180.0.1'),
    flows: { keep: [], drop: ['udp 10.0.0.2:40000 -> 172.30.0.10:53 via 10.180.0.9:53', 'udp 10.0.0.2:40000 -> 172.30.0.10:53 via 10.180.0.9:53 zone 7'] },
    deleted: 2,
  },
];

describe.skipIf(!canUseKernel || !hasConntrack)(`cleanConntrack on real conntrack entries (${KERNEL_SKIP_REASON}, conntrack tool)`, () => {
  // Each row twice: one listing the kernel narrows per filter, and one listing per family for all.
  it.each(rows.flatMap((r) => [{ ...r, bulk: false }, { ...r, bulk: true }]))('$name (one listing for all: $bulk)', async ({ prev, next, flows, deleted, listed, bulk }) => {
    await withNetns('ct', async (exec, ns) => {
      const conntrack = (args: string[]) => exec(['conntrack', ...args]);
      for (const spec of [...flows.keep, ...flows.drop]) {
        const r = await conntrack(insertArgs(spec));
        expect(r.exitCode, `insert ${spec}: ${r.stderr}`).toBe(0);
      }

      const kernel = new NetlinkConntrack(`/run/netns/${ns}`);
      const calls: string[] = [];
      const table: ConntrackTable = {
        list: (q) => { calls.push('list'); return kernel.list(q); },
        delete: (f) => { calls.push('delete'); return kernel.delete(f); },
      };
      try {
        const result = cleanConntrack(planConntrackCleanup(prev === undefined ? undefined : ports(prev), ports(next)), table, bulk ? 0 : Infinity);
        expect(result).toEqual({ deleted, errors: [] });
        if (listed === false) expect(calls).toEqual([]);
      } finally {
        kernel.close();
      }
      const left = await conntrack(['-L']);
      expect(left.exitCode, left.stderr).toBe(0);
      const survivors = parseFlows(left.stdout).map((f) => `${f.proto} ${host(f.orig.src)}:${f.orig.sport} -> ${host(f.orig.dst)}:${f.orig.dport} via ${host(f.reply.src)}:${f.reply.sport}`);
      expect(survivors.sort()).toEqual([...flows.keep].sort());
    });
  });
});

// The kernel's own narrowing (CTA_FILTER): its flag bits live in a kernel-internal header,
// so only what a dump returns proves them. Each row: flows in the table, a query, exactly
// the flows the kernel must return (without any matching of ours).
const TABLE: FlowSpec[] = [
  'udp 10.0.0.2:40000 -> 172.30.0.10:53 via 10.180.0.1:53',
  'udp 10.0.0.3:40000 -> 172.30.0.10:54 via 10.180.0.1:54',
  'udp 10.0.0.4:40000 -> 172.30.0.11:53 via 10.180.0.2:53',
  'udp 10.0.0.5:40000 -> 172.30.0.10:53 via 10.180.0.9:53 zone 7',
  'tcp 10.0.0.6:40000 -> 172.30.0.10:53 via 10.180.0.1:53',
  'udp [fd00:10::2]:40000 -> [fd00:10:96::a]:53 via [fd00:10::1]:53',
  'udp [fd00:10::3]:40000 -> [fd00:10:96::b]:53 via [fd00:10::1]:53',
];
interface QueryRow { name: string; query: { family: 'ip' | 'ip6'; origDst?: string; origDport?: number }; want: string[] }
const queryRows: QueryRow[] = [
  { name: 'family and protocol only: every UDP flow of the family, in any zone', query: { family: 'ip' },
    want: [TABLE[0]!, TABLE[1]!, TABLE[2]!, TABLE[3]!.replace(' zone 7', '')] },
  { name: 'a destination port', query: { family: 'ip', origDport: 53 }, want: [TABLE[0]!, TABLE[2]!, TABLE[3]!.replace(' zone 7', '')] },
  { name: 'a VIP and port', query: { family: 'ip', origDst: '172.30.0.10', origDport: 53 }, want: [TABLE[0]!, TABLE[3]!.replace(' zone 7', '')] },
  { name: 'nothing there', query: { family: 'ip', origDst: '172.30.0.99', origDport: 53 }, want: [] },
  { name: 'IPv6 VIP and port', query: { family: 'ip6', origDst: 'fd00:10:96::a', origDport: 53 }, want: [TABLE[5]!] },
  { name: 'IPv6 port', query: { family: 'ip6', origDport: 53 }, want: [TABLE[5]!, TABLE[6]!] },
];

describe.skipIf(!canUseKernel || !hasConntrack)(`listing conntrack over netlink, narrowed by the kernel (${KERNEL_SKIP_REASON}, conntrack tool)`, () => {
  it.each(queryRows)('$name', async ({ query, want }) => {
    await withNetns('ctq', async (exec, ns) => {
      for (const spec of TABLE) {
        const r = await exec(['conntrack', ...insertArgs(spec)]);
        expect(r.exitCode, `insert ${spec}: ${r.stderr}`).toBe(0);
      }
      const kernel = new NetlinkConntrack(`/run/netns/${ns}`);
      try {
        const got = kernel.list({ proto: 'udp', family: query.family, ...(query.origDport !== undefined ? { origDport: query.origDport } : {}), ...(query.origDst ? { origDst: query.origDst as IP } : {}) });
        expect(got.map(flowText).sort()).toEqual([...want].sort());
        for (const f of got) expect(f.zone, flowText(f)).toBe(f.orig.src === '10.0.0.5' ? 7 : 0);
      } finally {
        kernel.close();
      }
    });
  });

  // Why listFlows never asks the kernel to compare an IPv6 address: if this starts failing,
  // the kernel was fixed and the workaround in src/apply/netlink/conntrack.ts can go.
  it('kernel fact: an IPv6 address filter is inverted on this kernel', async () => {
    await withNetns('ct6', async (exec, ns) => {
      expect((await exec(['conntrack', ...insertArgs(TABLE[5]!)])).exitCode).toBe(0);
      const sock = NfSocket.open({ netns: `/run/netns/${ns}` });
      try {
        const dump = (dst: string) => sock.dump(A.CT_MSG.GET, 10, (w) => {
          const tuple = w.open(A.CTA.TUPLE_ORIG);
          const ip = w.open(A.CTA_TUPLE.IP);
          w.bytes(A.CTA_IP.V6_DST, addrBytes(dst));
          w.close(ip);
          w.close(tuple);
          const filter = w.open(A.CTA.FILTER);
          w.u32host(A.CTA_FILTER.ORIG_FLAGS, A.CTA_FILTER_F.IP_DST);
          w.close(filter);
        }, A.NFNL_SUBSYS_CTNETLINK).length;
        expect({ same: dump('fd00:10:96::a'), other: dump('fd00:10:96::b') }).toEqual({ same: 0, other: 1 });
      } finally {
        sock.close();
      }
    });
  });

  it('deletes exactly the flow it listed: the same tuple under another id is left alone', async () => {
    await withNetns('ctid', async (exec, ns) => {
      const spec = 'udp 10.0.0.2:40000 -> 172.30.0.10:53 via 10.180.0.9:53';
      expect((await exec(['conntrack', ...insertArgs(spec)])).exitCode).toBe(0);
      const kernel = new NetlinkConntrack(`/run/netns/${ns}`);
      try {
        const [flow] = kernel.list({ family: 'ip', proto: 'udp' });
        expect(flow && flowText(flow)).toBe(spec);
        // what a flow that ended and came back with the same tuple looks like to a stale listing
        expect(kernel.delete({ ...flow!, id: (flow!.id + 1) >>> 0 })).toBe(false);
        expect(kernel.list({ family: 'ip', proto: 'udp' }).map(flowText)).toEqual([spec]);
        expect(kernel.delete(flow!)).toBe(true);
        expect(kernel.list({ family: 'ip', proto: 'udp' })).toEqual([]);
        expect(kernel.delete(flow!)).toBe(false);
      } finally {
        kernel.close();
      }
    });
  });
});

// UDP conntrack hygiene against the real kernel: each row inserts real conntrack entries in
// a throwaway network namespace, plans from two compiled states, runs cleanConntrack with
// the tool inside that namespace, and lists what survived. Nothing runs in the root
// namespace: every command goes through `ip netns exec <test ns>`.
import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { canUseKernel, KERNEL_SKIP_REASON, withNetns } from '../lab/netns.js';
import { type PortSpec, compileObjects, service, slice } from '../support/builders.js';
import { LAB_ENV } from '../support/address-plan.js';
import { parseFlows, planConntrackCleanup } from '../../src/apply/conntrack-plan.js';
import { cleanConntrack } from '../../src/apply/conntrack.js';
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
  // Each row twice: one narrowed listing per filter, and one listing per family for all.
  it.each(rows.flatMap((r) => [{ ...r, bulk: false }, { ...r, bulk: true }]))('$name (one listing for all: $bulk)', async ({ prev, next, flows, deleted, listed, bulk }) => {
    await withNetns('ct', async (exec) => {
      const conntrack = (args: string[]) => exec(['conntrack', ...args]);
      for (const spec of [...flows.keep, ...flows.drop]) {
        const r = await conntrack(insertArgs(spec));
        expect(r.exitCode, `insert ${spec}: ${r.stderr}`).toBe(0);
      }

      const calls: string[][] = [];
      const result = await cleanConntrack(planConntrackCleanup(prev === undefined ? undefined : ports(prev), ports(next)), (args) => {
        calls.push(args);
        return conntrack(args);
      }, bulk ? 0 : Infinity);

      expect(result).toEqual({ deleted, errors: [] });
      if (listed === false) expect(calls).toEqual([]);
      const left = await conntrack(['-L']);
      expect(left.exitCode, left.stderr).toBe(0);
      const survivors = parseFlows(left.stdout).map((f) => `${f.proto} ${host(f.orig.src)}:${f.orig.sport} -> ${host(f.orig.dst)}:${f.orig.dport} via ${host(f.reply.src)}:${f.reply.sport}`);
      expect(survivors.sort()).toEqual([...flows.keep].sort());
    });
  });
});

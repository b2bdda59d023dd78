// The per-traffic-class decisions of one service port, as kube-proxy makes them: one row per
// case, read as "policy, where the endpoints are -> what happens". The IR these become is
// covered by the scenario tables (against the IR and, in test/datapath/, with packets).
import { describe, expect, it } from 'vitest';
import { type IP, parseCidr, parseIP } from '../../src/model/ip.js';
import type { Endpoint, TrafficPolicy } from '../../src/model/types.js';
import { parsePort } from '../../src/model/service.js';
import type { Selection } from '../../src/compile/select-endpoints.js';
import { type ExternalVerdict, type InternalVerdict, externalSources, externalVerdict, firewallVerdict, internalVerdict } from '../../src/compile/traffic-decisions.js';
import { must } from '../support/must.js';

type Where = 'here' | 'elsewhere' | 'nowhere';
const LOCAL_ENDPOINT: Endpoint = {
  ip: must(parseIP('10.244.1.1')), port: must(parsePort(8080, 'port')), conditions: { ready: true, serving: true, terminating: false },
  nodeName: 'node-a', zone: undefined, hintsForZones: undefined, hintsForNodes: undefined,
};
/** what selectEndpoints reports for endpoints on this node, only on others, or on none */
const selection = (where: Where): Pick<Selection, 'hasEndpoints' | 'local'> => ({ hasEndpoints: where !== 'nowhere', local: where === 'here' ? [LOCAL_ENDPOINT] : [] });

describe('ClusterIP traffic', () => {
  it.each<{ itp: TrafficPolicy; endpoints: Where; want: InternalVerdict }>([
    { itp: 'Cluster', endpoints: 'elsewhere', want: { kind: 'dnat', policy: 'cluster' } },
    { itp: 'Cluster', endpoints: 'nowhere', want: { kind: 'reject', reason: 'no-endpoints' } },
    { itp: 'Local', endpoints: 'here', want: { kind: 'dnat', policy: 'local' } },
    { itp: 'Local', endpoints: 'elsewhere', want: { kind: 'drop', reason: 'no-local-endpoints' } },
    { itp: 'Local', endpoints: 'nowhere', want: { kind: 'reject', reason: 'no-endpoints' } },
  ])('internalTrafficPolicy $itp, endpoints $endpoints -> $want.kind', ({ itp, endpoints, want }) => {
    expect(internalVerdict({ internalTrafficPolicy: itp }, selection(endpoints))).toEqual(want);
  });
});

describe('external traffic (externalIPs, LB IPs, NodePort) and what its source becomes', () => {
  const POD_CIDRS = [must(parseCidr('10.244.0.0/16'))];
  it.each<{ etp: TrafficPolicy; exposed: boolean; endpoints: Where; want: ExternalVerdict; sources: ReturnType<typeof externalSources> }>([
    { etp: 'Local', exposed: false, endpoints: 'here', want: { kind: 'not-exposed' }, sources: undefined },
    { etp: 'Cluster', exposed: true, endpoints: 'elsewhere', want: { kind: 'dnat', policy: 'cluster' }, sources: { kind: 'masquerade-all' } },
    { etp: 'Cluster', exposed: true, endpoints: 'nowhere', want: { kind: 'reject', reason: 'no-endpoints' }, sources: undefined },
    { etp: 'Local', exposed: true, endpoints: 'here', want: { kind: 'dnat', policy: 'local' }, sources: { kind: 'keep-client-ip', podCIDRs: POD_CIDRS } },
    // Pods and the node still reach the cluster-wide endpoints; only outside traffic is dropped.
    { etp: 'Local', exposed: true, endpoints: 'elsewhere', want: { kind: 'drop', reason: 'no-local-endpoints' }, sources: { kind: 'keep-client-ip', podCIDRs: POD_CIDRS } },
    { etp: 'Local', exposed: true, endpoints: 'nowhere', want: { kind: 'reject', reason: 'no-endpoints' }, sources: undefined },
  ])('externalTrafficPolicy $etp, exposed $exposed, endpoints $endpoints -> $want.kind', ({ etp, exposed, endpoints, want, sources }) => {
    const v = externalVerdict({ externalTrafficPolicy: etp }, exposed, selection(endpoints));
    expect(v).toEqual(want);
    expect(externalSources(v, { podCIDRs: POD_CIDRS })).toEqual(sources);
  });
});

describe('loadBalancerSourceRanges', () => {
  const ip = (s: string): IP => must(parseIP(s));
  const cidrs = (...s: string[]) => s.map((c) => must(parseCidr(c)));
  const V4 = { ipFamily: 'ipv4', primaryIP: ip('192.168.0.2') } as const;
  const V6_NO_NODE_IP = { ipFamily: 'ipv6', primaryIP: ip('::1') } as const;
  it.each([
    { name: 'no LB IP: NodePorts and externalIPs are not filtered', ranges: cidrs('10.0.0.0/8'), lbIPs: [], ctx: V4, want: { kind: 'open' } },
    { name: 'no range of this family', ranges: cidrs('fd00::/8'), lbIPs: [ip('203.0.113.1')], ctx: V4, want: { kind: 'open' } },
    { name: 'ranges without the node', ranges: cidrs('10.0.0.0/8'), lbIPs: [ip('203.0.113.1')], ctx: V4, want: { kind: 'source-ranges', ranges: cidrs('10.0.0.0/8'), nodeInRanges: false } },
    { name: 'ranges with the node: the LB IPs are let in as sources too', ranges: cidrs('192.168.0.0/16', 'fd00::/8'), lbIPs: [ip('203.0.113.1')], ctx: V4, want: { kind: 'source-ranges', ranges: cidrs('192.168.0.0/16'), nodeInRanges: true } },
    { name: 'no node IP of the family: loopback stands in, as kube-proxy', ranges: cidrs('::/0'), lbIPs: [ip('fd00:1b::1')], ctx: V6_NO_NODE_IP, want: { kind: 'source-ranges', ranges: cidrs('::/0'), nodeInRanges: true } },
  ])('$name', ({ ranges, lbIPs, ctx, want }) => {
    expect(firewallVerdict({ loadBalancerSourceRanges: ranges }, { loadBalancerIPs: lbIPs }, ctx)).toEqual(want);
  });
});

describe('illegal verdicts do not compile', () => {
  it('a drop for want of any endpoint, a DNAT without a policy, a masquerade-all with pod CIDRs', () => {
    // @ts-expect-error no endpoint at all is a reject, never a drop
    const a: InternalVerdict = { kind: 'drop', reason: 'no-endpoints' };
    // @ts-expect-error a DNAT says which endpoints it chooses from
    const b: ExternalVerdict = { kind: 'dnat' };
    // @ts-expect-error eTP Cluster masquerades every source: no pod exception to carry
    const c: ReturnType<typeof externalSources> = { kind: 'masquerade-all', podCIDRs: [] };
    expect([a, b, c]).toHaveLength(3);
  });
});

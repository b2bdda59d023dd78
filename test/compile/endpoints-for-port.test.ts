// endpointsForPort: one ServicePort's endpoints in one family, merged from the service's
// slices. Rows read: slices (address@node:port per slice), the port asked for, this node, the
// endpoints that come out (address:port@node, sorted by address then port). The property
// checks the merge against its definition (walk the slices in order, keep the first copy of
// an address and port, unless a later copy is on this node and the kept one is not).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { endpointsForPort } from '../../src/compile/endpoints-for-port.js';
import type { IP, IPFamily } from '../../src/model/ip.js';
import type { Endpoint, EndpointSlice, Port, Protocol, ServicePort } from '../../src/model/types.js';

const READY = { ready: true, serving: true, terminating: false };
/** "10.0.0.1@n1" (an endpoint on node n1) */
function slice(name: string, port: number, eps: readonly string[], opts: { portName?: string; protocol?: Protocol; family?: IPFamily } = {}): EndpointSlice {
  return {
    ref: { namespace: 'ns', name }, serviceName: 'svc', family: opts.family ?? 'ipv4',
    ports: [{ name: opts.portName ?? 'http', protocol: opts.protocol ?? 'tcp', port: port as Port }],
    endpoints: eps.map((s) => {
      const [ip, node] = s.split('@');
      return { ip: ip as IP, conditions: READY, nodeName: node, zone: undefined, hintsForZones: undefined, hintsForNodes: undefined };
    }),
  };
}
const SP: ServicePort = { name: 'http', protocol: 'tcp', port: 80 as Port, targetPort: 'web', nodePort: undefined };
const show = (eps: readonly Endpoint[]): string[] => eps.map((e) => `${e.ip}:${e.port}@${e.nodeName ?? '-'}`);

describe('endpointsForPort', () => {
  it.each([
    { name: 'one slice, sorted by address', slices: [slice('a', 8080, ['10.0.0.2@n2', '10.0.0.1@n1'])], want: ['10.0.0.1:8080@n1', '10.0.0.2:8080@n2'] },
    { name: 'the same address in two slices: the first copy', slices: [slice('a', 8080, ['10.0.0.1@n2']), slice('b', 8080, ['10.0.0.1@n3'])], want: ['10.0.0.1:8080@n2'] },
    { name: 'a later local copy wins', slices: [slice('a', 8080, ['10.0.0.1@n2']), slice('b', 8080, ['10.0.0.1@me'])], want: ['10.0.0.1:8080@me'] },
    { name: 'a local first copy stays', slices: [slice('a', 8080, ['10.0.0.1@me']), slice('b', 8080, ['10.0.0.1@n2'])], want: ['10.0.0.1:8080@me'] },
    { name: 'the same address twice in one slice', slices: [slice('a', 8080, ['10.0.0.1@n2', '10.0.0.1@me', '10.0.0.1@n3'])], want: ['10.0.0.1:8080@me'] },
    { name: 'a named targetPort on two numbers: both kept, by port', slices: [slice('a', 9090, ['10.0.0.1@n1']), slice('b', 8080, ['10.0.0.1@n1'])], want: ['10.0.0.1:8080@n1', '10.0.0.1:9090@n1'] },
    { name: 'another port name is not ours', slices: [slice('a', 8080, ['10.0.0.1@n1'], { portName: 'metrics' })], want: [] },
    { name: 'another protocol is not ours', slices: [slice('a', 8080, ['10.0.0.1@n1'], { protocol: 'udp' })], want: [] },
    { name: 'the other family is not ours', slices: [slice('a', 8080, ['fd00::1@n1'], { family: 'ipv6' }), slice('b', 8080, ['10.0.0.9@n1'])], want: ['10.0.0.9:8080@n1'] },
    { name: 'no slices', slices: [], want: [] },
  ])('$name', ({ slices, want }) => {
    expect(show(endpointsForPort(slices, 'ipv4', SP, 'me'))).toEqual(want);
  });

  it('merges as defined: first copy, a local copy wins', () => {
    const ep = fc.tuple(fc.constantFrom('10.0.0.1', '10.0.0.2', '10.0.0.10'), fc.constantFrom('me', 'n1', 'n2', undefined));
    const sl = fc.tuple(fc.constantFrom(8080, 9090), fc.array(ep, { maxLength: 5 }));
    fc.assert(fc.property(fc.array(sl, { maxLength: 4 }), (raw) => {
      const slices = raw.map(([port, eps], i) => slice(`s${i}`, port, eps.map(([ip, node]) => (node ? `${ip}@${node}` : ip))));
      const byKey = new Map<string, Endpoint>();
      for (const s of slices) for (const e of s.endpoints) {
        const key = `${e.ip}/${s.ports[0]!.port}`;
        const prev = byKey.get(key);
        if (prev && !(e.nodeName === 'me' && prev.nodeName !== 'me')) continue;
        byKey.set(key, { ...e, port: s.ports[0]!.port });
      }
      const want = [...byKey.values()].sort((a, b) => (a.ip !== b.ip ? (a.ip < b.ip ? -1 : 1) : a.port - b.port));
      expect(endpointsForPort(slices, 'ipv4', SP, 'me')).toEqual(want);
    }), { numRuns: 500 });
  });
});

// Random snapshots of Services, EndpointSlices and Nodes, mixing valid objects with hostile
// ones (nft syntax in names, annotations and labels, out-of-range ports, bad protocols, IPs and
// CIDRs, duplicate ports, NodePort collisions, junk that is not an object at all), each with
// what the model must make of it. Shared by the property test (test/property/hostile-input.test.ts)
// and the service-port golden (test/compile/service-port-golden.test.ts), so that both draw from
// one generator.
import fc from 'fast-check';
import type { SourceObject } from '../../src/model/build-model.js';
import type { ProxyConfig } from '../../src/model/config.js';
import type { DiagnosticKind } from '../../src/model/diagnostic.js';
import { printable } from '../../src/model/ip.js';
import { CLUSTER_ENV } from './address-plan.js';
import { config } from './builders.js';

// ---------------------------------------------------------------------------------------
// Configuration of the node we compile for.

export const CFG: ProxyConfig = config({ ...CLUSTER_ENV, nodeLabels: { 'topology.kubernetes.io/zone': 'zone-a' } });

// ---------------------------------------------------------------------------------------
// Markers: every hostile string carries one, so a leak into the output is detectable.

/** injected in annotations, labels, targetPort names, endpoint nodeName/zone/hints */
export const MARK = 'NPXMARK';
/** injected in every invalid object name */
export const BADNAME = 'npxbadname';
export const LEAK_NEEDLES = [MARK.toLowerCase(), BADNAME, 'flush ruleset', 'evil'];

const JUNK: readonly string[] = [
  `"; flush ruleset; # ${MARK}`,
  `{}":,${MARK}`,
  `${MARK}"\n}\n}\ntable ip evil { chain c { type filter hook input priority 0; policy drop; } }\n#`,
  `${MARK}'; delete table ip nftproxy; '`,
  `$(reboot)\`id\`${MARK}\\`,
  `${MARK}\u0000\u001b[31m\u2028@cluster-ips`,
  `${MARK} comment "x" ; accept`,
  `${MARK}${'{'.repeat(300)}`,
];

/** invalid as DNS-1123 label and as DNS-1123 subdomain, each holding BADNAME (but one) */
const BAD_NAMES: readonly unknown[] = [
  `${BADNAME}"q`,
  `${BADNAME}{}`,
  `${BADNAME};drop`,
  `${BADNAME}\nflush ruleset`,
  `{}":,${BADNAME}`,
  `"; flush ruleset; #${BADNAME}`,
  `NPXBADNAME`,
  `${BADNAME}-`,
  `-${BADNAME}`,
  `${BADNAME} x`,
  `${BADNAME}/x`,
  `${BADNAME}${'a'.repeat(290)}`,
  `${BADNAME}@cluster-ips`,
  '',
  42,
  { name: BADNAME },
];

const junkMeta = (seed: number): Record<string, unknown> => ({
  annotations: {
    'nftproxy/evil': JUNK[seed % JUNK.length],
    [`${MARK}"; flush ruleset; #`]: JUNK[(seed + 1) % JUNK.length],
    'kubectl.kubernetes.io/last-applied-configuration': `{"metadata":{"name":"${MARK}\\"}"}}`,
  },
  labels: {
    app: JUNK[(seed + 2) % JUNK.length],
    [`${MARK}{}":,`]: 'x',
    'topology.kubernetes.io/zone': JUNK[(seed + 3) % JUNK.length],
  },
});

// ---------------------------------------------------------------------------------------
// What the test expects of each object it generates.

export type Expect =
  | { t: 'service'; ns: string; name: string; ports: { name: string; proto: string }[]; clusterIPs: string[] }
  | { t: 'slice'; ns: string; service: string; name: string }
  | { t: 'node'; name: string }
  | { t: 'diag'; kind: DiagnosticKind; object: string; code: string }
  | { t: 'ignored'; ref: string }
  /** other kinds: neither proxied nor reported */
  | { t: 'none' };

export interface Entry {
  readonly object: unknown;
  readonly origin: string;
  readonly expect: Expect;
}

const where = (ns: unknown, name: unknown): string =>
  `${printable(typeof ns === 'string' ? ns : 'default')}/${printable(typeof name === 'string' ? name : '')}`;

// ---------------------------------------------------------------------------------------
// Addresses. Pools are disjoint per role so that valid objects never collide by accident.
// Canonical text is what the output must carry; `styled` is how the API may spell it.

type IpStyle = 'canonical' | 'sloppy';

/** leading zeros (v4, read as decimal as kube-proxy does) / uppercase fully expanded (v6), padded */
function styled(canon: string, style: IpStyle): string {
  if (style === 'canonical') return canon;
  if (!canon.includes(':')) return ` ${canon.split('.').map((o) => o.padStart(3, '0')).join('.')}`;
  const [head = '', tail = ''] = canon.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return `${groups.map((g) => g.padStart(4, '0').toUpperCase()).join(':')} `;
}

const v4 = (...o: number[]): string => o.join('.');
const hex = (n: number): string => n.toString(16);
const clusterIPv4 = (i: number, x: number): string => v4(10, 96, i, 10 + x);
const clusterIPv6 = (i: number, x: number): string => `fd00:10:96::${hex(i * 256 + x + 1)}`;
const extIP = (fam: Fam, i: number, k: number): string => (fam === 'v4' ? v4(198, 51, 100 + i, k + 1) : `fd00:e::${hex(i + 1)}:${hex(k + 1)}`);
const lbIP = (fam: Fam, i: number, k: number): string => (fam === 'v4' ? v4(203, 0, 113 + i, k + 1) : `fd00:1b::${hex(i + 1)}:${hex(k + 1)}`);
const epIP = (fam: Fam, a: number, b: number): string => (fam === 'v4' ? v4(10, 244, a, b) : `fd00:10:244::${hex(a + 1)}:${hex(b)}`);

type Fam = 'v4' | 'v6';

// ---------------------------------------------------------------------------------------
// Valid objects.

const optional = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined });

const endpointArb = fc.record({
  a: fc.integer({ min: 0, max: 3 }),
  b: fc.integer({ min: 1, max: 30 }),
  style: fc.constantFrom<IpStyle>('canonical', 'sloppy'),
  ready: fc.constantFrom(true, false, undefined, null),
  serving: fc.constantFrom(true, false, undefined, null),
  terminating: fc.constantFrom(true, false, undefined),
  nodeName: fc.constantFrom('node-a', 'node-b', undefined),
  zone: fc.constantFrom('zone-a', 'zone-b', undefined),
  hintZones: optional(fc.subarray(['zone-a', 'zone-b', ''])),
  hintNodes: optional(fc.subarray(['node-a', 'node-b'])),
  extraAddress: fc.boolean(),
});
type EndpointParams = typeof endpointArb extends fc.Arbitrary<infer R> ? R : never;

const sliceArb = fc.record({
  fam: fc.constantFrom<Fam>('v4', 'v6'),
  include: fc.tuple(fc.boolean(), fc.boolean(), fc.boolean()),
  portNums: fc.tuple(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 })),
  allPortsEntry: fc.boolean(),
  endpoints: fc.array(endpointArb, { maxLength: 6 }),
});

const svcPortArb = fc.record({
  port: fc.integer({ min: 1, max: 65535 }),
  proto: fc.constantFrom('TCP', 'UDP', undefined, 'TCP', 'UDP', 'SCTP'),
  target: fc.oneof(fc.constant(undefined), fc.integer({ min: 1, max: 65535 }), fc.constantFrom('http', `${MARK}"; flush ruleset; #`)),
  withNodePort: fc.boolean(),
});

const validServiceArb = fc.record({
  ns: fc.constantFrom('default', 'shop', `n${'x'.repeat(62)}`),
  long: fc.boolean(),
  type: fc.constantFrom('ClusterIP', 'NodePort', 'LoadBalancer'),
  stack: fc.constantFrom<Fam[]>(['v4'], ['v6'], ['v4', 'v6'], ['v6', 'v4']),
  clusterIPx: fc.integer({ min: 0, max: 200 }),
  ipStyle: fc.constantFrom<IpStyle>('canonical', 'sloppy'),
  useClusterIPField: fc.boolean(),
  ports: fc.uniqueArray(svcPortArb, { minLength: 1, maxLength: 3, selector: (p) => `${p.port}/${p.proto ?? 'TCP'}` }),
  longPortNames: fc.boolean(),
  etp: fc.constantFrom('Cluster', 'Local', undefined),
  itp: fc.constantFrom('Cluster', 'Local', undefined),
  healthCheck: fc.boolean(),
  affinity: fc.oneof(fc.constant(undefined), fc.constant('None'), fc.record({ timeout: optional(fc.integer({ min: 1, max: 86400 })) })),
  externalIPs: fc.subarray<[Fam, number]>([['v4', 0], ['v4', 1], ['v6', 0], ['v6', 1]]),
  lbIngress: fc.array(fc.record({ fam: fc.constantFrom<Fam>('v4', 'v6'), ipMode: fc.constantFrom(undefined, 'VIP', 'Proxy'), hostnameOnly: fc.boolean() }), { maxLength: 2 }),
  sourceRanges: fc.subarray(['10.0.0.0/8', ' 192.168.0.0/16', '203.0.113.7/24 ', '0.0.0.0/0', 'fd00::/8', '2001:db8::/32', '192.168.0.2/32']),
  trafficDistribution: fc.constantFrom(undefined, 'PreferClose'),
  proxyLabel: fc.boolean(),
  slices: fc.array(sliceArb, { maxLength: 3 }),
});
type ServiceParams = typeof validServiceArb extends fc.Arbitrary<infer R> ? R : never;

function buildEndpoint(fam: Fam, e: EndpointParams): Record<string, unknown> {
  const addresses = [styled(epIP(fam, e.a, e.b), e.style)];
  if (e.extraAddress) addresses.push('not-an-ip-but-only-the-first-counts');
  const conditions: Record<string, unknown> = {};
  if (e.ready !== undefined) conditions.ready = e.ready;
  if (e.serving !== undefined) conditions.serving = e.serving;
  if (e.terminating !== undefined) conditions.terminating = e.terminating;
  const hints: Record<string, unknown> = {};
  if (e.hintZones) hints.forZones = e.hintZones.map((name) => ({ name }));
  if (e.hintNodes) hints.forNodes = e.hintNodes.map((name) => ({ name }));
  return {
    addresses, conditions,
    ...(e.nodeName !== undefined ? { nodeName: e.nodeName } : {}),
    ...(e.zone !== undefined ? { zone: e.zone } : {}),
    ...(e.hintZones || e.hintNodes ? { hints } : {}),
  };
}

interface BuiltService {
  readonly entries: Entry[];
  readonly ref: { ns: string; name: string };
  /** [protocol, nodePort] claims other services may collide with */
  readonly nodePorts: [string, number][];
}

function buildValidService(p: ServiceParams, i: number, pool: readonly number[]): BuiltService {
  const name = p.long ? `l${i}-${'s'.repeat(60 - String(i).length)}` : `svc-${i}`;
  const canonIPs = p.stack.map((f) => (f === 'v4' ? clusterIPv4(i, p.clusterIPx) : clusterIPv6(i, p.clusterIPx)));
  const spelled = canonIPs.map((ip) => styled(ip, p.ipStyle));
  const withNodePorts = p.type !== 'ClusterIP';
  const nodePorts: [string, number][] = [];
  const portNames = p.ports.map((_, j) => (p.ports.length === 1 && j === 0 && !p.longPortNames ? '' : p.longPortNames ? `${j}${'p'.repeat(62)}` : `port-${j}`));
  const ports = p.ports.map((sp, j) => {
    const nodePort = withNodePorts && sp.withNodePort ? pool[i * 4 + j] : undefined;
    if (nodePort !== undefined) nodePorts.push([(sp.proto ?? 'TCP').toLowerCase(), nodePort]);
    return {
      ...(portNames[j] !== '' ? { name: portNames[j] } : {}),
      port: sp.port,
      ...(sp.proto !== undefined ? { protocol: sp.proto } : {}),
      ...(sp.target !== undefined ? { targetPort: sp.target } : {}),
      // nodePort 0 means "none allocated": accepted and ignored
      ...(nodePort !== undefined ? { nodePort } : withNodePorts ? { nodePort: 0 } : {}),
    };
  });
  const healthCheckNodePort = p.type === 'LoadBalancer' && p.etp === 'Local' && p.healthCheck ? pool[i * 4 + 3] : undefined;
  if (healthCheckNodePort !== undefined) nodePorts.push(['tcp', healthCheckNodePort]);
  const spec: Record<string, unknown> = {
    type: p.type,
    ...(p.useClusterIPField && spelled.length === 1 ? { clusterIP: spelled[0] } : { clusterIP: spelled[0], clusterIPs: spelled }),
    ports,
    ...(p.etp !== undefined ? { externalTrafficPolicy: p.etp } : {}),
    ...(p.itp !== undefined ? { internalTrafficPolicy: p.itp } : {}),
    ...(healthCheckNodePort !== undefined ? { healthCheckNodePort } : {}),
    ...(p.affinity === 'None' ? { sessionAffinity: 'None' } : {}),
    ...(typeof p.affinity === 'object' ? { sessionAffinity: 'ClientIP', ...(p.affinity.timeout !== undefined ? { sessionAffinityConfig: { clientIP: { timeoutSeconds: p.affinity.timeout } } } : {}) } : {}),
    ...(p.externalIPs.length ? { externalIPs: p.externalIPs.map(([f, k]) => extIP(f, i, k)) } : {}),
    ...(p.sourceRanges.length ? { loadBalancerSourceRanges: p.sourceRanges } : {}),
    ...(p.trafficDistribution ? { trafficDistribution: p.trafficDistribution } : {}),
  };
  const status = {
    loadBalancer: {
      ingress: p.lbIngress.map((g, k) => (g.hostnameOnly ? { hostname: `lb-${k}.example.com` } : { ip: lbIP(g.fam, i, k), ...(g.ipMode ? { ipMode: g.ipMode } : {}) })),
    },
  };
  const svc = {
    apiVersion: 'v1', kind: 'Service',
    metadata: { namespace: p.ns, name, ...(p.proxyLabel ? { labels: { 'service.kubernetes.io/service-proxy-name': 'nftproxy' } } : {}) },
    spec, status,
  };
  const entries: Entry[] = [{
    object: svc, origin: `valid-service#${i}`,
    expect: { t: 'service', ns: p.ns, name, ports: p.ports.map((sp, j) => ({ name: portNames[j] ?? '', proto: (sp.proto ?? 'TCP').toLowerCase() })), clusterIPs: canonIPs },
  }];
  p.slices.forEach((s, k) => {
    const sliceName = `${name}-${s.fam}-${k}`;
    const slicePorts: Record<string, unknown>[] = [];
    p.ports.forEach((sp, j) => {
      if (!s.include[j]) return;
      slicePorts.push({ ...(portNames[j] !== '' ? { name: portNames[j] } : {}), port: s.portNums[j], ...(sp.proto !== undefined ? { protocol: sp.proto } : {}) });
    });
    if (s.allPortsEntry) slicePorts.push({ name: 'all', protocol: 'TCP' });
    entries.push({
      object: {
        apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
        metadata: { namespace: p.ns, name: sliceName, labels: { 'kubernetes.io/service-name': name } },
        addressType: s.fam === 'v4' ? 'IPv4' : 'IPv6',
        ports: slicePorts,
        endpoints: s.endpoints.map((e) => buildEndpoint(s.fam, e)),
      },
      origin: `valid-slice#${i}.${k}`,
      expect: { t: 'slice', ns: p.ns, service: name, name: sliceName },
    });
  });
  return { entries, ref: { ns: p.ns, name }, nodePorts };
}

const validNodes: Entry[] = [
  {
    object: {
      apiVersion: 'v1', kind: 'Node',
      metadata: { name: 'node-a', labels: { 'topology.kubernetes.io/zone': 'zone-a' } },
      status: { addresses: [{ type: 'InternalIP', address: '192.168.0.2' }, { type: 'InternalIP', address: '2001:db8::2' }, { type: 'Hostname', address: 'node-a' }] },
    },
    origin: 'node#a', expect: { t: 'node', name: 'node-a' },
  },
  {
    object: {
      apiVersion: 'v1', kind: 'Node',
      metadata: { name: 'node-b', labels: { 'topology.kubernetes.io/zone': 'zone-b' } },
      status: { addresses: [{ type: 'InternalIP', address: '192.168.0.3' }] },
    },
    origin: 'node#b', expect: { t: 'node', name: 'node-b' },
  },
];

// ---------------------------------------------------------------------------------------
// Hostile objects.

const HOSTILE_KINDS = [
  'svc-bad-name', 'svc-bad-namespace', 'svc-bad-port', 'svc-bad-nodeport', 'svc-bad-targetport',
  'svc-bad-protocol', 'svc-bad-clusterip', 'svc-bad-externalip', 'svc-bad-lb-ingress', 'svc-bad-cidr',
  'svc-dup-port', 'svc-bad-port-name', 'svc-bad-type', 'svc-bad-policy', 'svc-bad-affinity',
  'svc-empty-ports', 'svc-bad-healthcheck', 'svc-nodeport-collision', 'svc-ignored-externalname',
  'svc-ignored-headless', 'svc-ignored-other-proxy', 'svc-duplicate', 'svc-junk-meta-valid',
  'slice-bad-name', 'slice-bad-namespace', 'slice-no-label', 'slice-bad-label', 'slice-fqdn',
  'slice-bad-address-type', 'slice-bad-ip', 'slice-wrong-family', 'slice-bad-port', 'slice-bad-protocol',
  'slice-bad-port-name', 'slice-junk-meta-valid',
  'node-bad-name', 'node-junk-valid', 'not-an-object', 'other-kind',
] as const;
type HostileKind = (typeof HOSTILE_KINDS)[number];

const hostileArb = fc.record({
  kind: fc.constantFrom(...HOSTILE_KINDS),
  pick: fc.nat(),
  port: fc.integer({ min: 1, max: 65535 }),
});
type HostileParams = typeof hostileArb extends fc.Arbitrary<infer R> ? R : never;

const at = <T>(xs: readonly T[], n: number): T => xs[n % xs.length]!;

function buildHostile(h: HostileParams, idx: number, valid: readonly BuiltService[]): Entry[] {
  const origin = `hostile#${idx}`;
  const badName = at(BAD_NAMES, h.pick);
  // A non-string namespace reads as "default" (valid), so bad namespaces are strings.
  const badNs = at(BAD_NAMES.filter((n): n is string => typeof n === 'string'), h.pick);
  const ns = 'hostile';
  const name = `h-${idx}`;
  const cip = v4(10, 96, 100 + idx, 1);
  const okPort = { name: 'p', port: h.port, protocol: 'TCP' };
  const svc = (spec: Record<string, unknown>, meta: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    apiVersion: 'v1', kind: 'Service',
    metadata: { namespace: ns, name, ...junkMeta(h.pick), ...meta },
    spec: { type: 'ClusterIP', clusterIP: cip, ports: [okPort], ...spec },
    ...extra,
  });
  const invalidSvc = (code: string, spec: Record<string, unknown>, extra: Record<string, unknown> = {}): Entry[] =>
    [{ object: svc(spec, {}, extra), origin, expect: { t: 'diag', kind: 'Service', object: `${ns}/${name}`, code } }];
  const slice = (fields: Record<string, unknown>, meta: Record<string, unknown> = {}): Record<string, unknown> => ({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { namespace: ns, name, ...junkMeta(h.pick), labels: { 'kubernetes.io/service-name': 'h-svc' }, ...meta },
    addressType: 'IPv4',
    ports: [okPort],
    endpoints: [{ addresses: ['10.244.9.9'], conditions: { ready: true } }],
    ...fields,
  });
  const invalidSlice = (code: string, fields: Record<string, unknown>, meta: Record<string, unknown> = {}, obj = `${ns}/${name}`): Entry[] =>
    [{ object: slice(fields, meta), origin, expect: { t: 'diag', kind: 'EndpointSlice', object: obj, code } }];
  const kind: HostileKind = h.kind;
  switch (kind) {
    case 'svc-bad-name':
      return [{ object: svc({}, { name: badName }), origin, expect: { t: 'diag', kind: 'Service', object: where(ns, badName), code: 'invalid-name' } }];
    case 'svc-bad-namespace':
      return [{ object: svc({}, { namespace: badNs }), origin, expect: { t: 'diag', kind: 'Service', object: where(badNs, name), code: 'invalid-name' } }];
    case 'svc-bad-port':
      return invalidSvc('invalid-port', { ports: [okPort, { name: 'q', port: at([0, 70000, '80', -1, 1.5, null, 65536], h.pick) }] });
    case 'svc-bad-nodeport':
      return invalidSvc('invalid-port', { type: 'NodePort', ports: [{ ...okPort, nodePort: at([70000, '30000', -1, 65536, 3.5], h.pick) }] });
    case 'svc-bad-targetport':
      return invalidSvc('invalid-port', { ports: [{ ...okPort, targetPort: at([0, 70000, -5, 2.5, null], h.pick) }] });
    case 'svc-bad-protocol':
      return invalidSvc('invalid-protocol', { ports: [{ ...okPort, protocol: at(['ICMP', 'tcp', 42, '', `TCP"; ${MARK}`], h.pick) }] });
    case 'svc-bad-clusterip':
      return invalidSvc('invalid-ip', at<Record<string, unknown>>([
        { clusterIP: '1.2.3.999' }, { clusterIP: '::g' }, { clusterIP: '10.96.0.1/32' }, { clusterIP: `1.2.3.4"; ${MARK}` },
        { clusterIP: '1.2.3' }, { clusterIPs: [cip, ''] }, { clusterIPs: [cip, v4(10, 96, 100 + idx, 2)] }, { clusterIPs: [42] },
        { clusterIP: 'fe80::1%eth0' }, { clusterIP: '1.2.3.04.5' },
      ], h.pick));
    case 'svc-bad-externalip':
      return invalidSvc('invalid-ip', { externalIPs: [at(['1.2.3.999', '::g', `${MARK}`, '256.1.1.1', '1::2::3'], h.pick)] });
    case 'svc-bad-lb-ingress':
      return invalidSvc('invalid-ip', { type: 'LoadBalancer' }, { status: { loadBalancer: { ingress: [{ ip: at(['1.2.3.999', '::g', `{}":,${MARK}`, 7], h.pick) }] } } });
    case 'svc-bad-cidr':
      return invalidSvc('invalid-cidr', { loadBalancerSourceRanges: [at(['10.0.0.0/33', '1.2.3.4', 'junk/8', '::/129', '10.0.0.0/-1', `10.0.0.0/8;${MARK}`, '1.2.3.999/24', '10.0.0.0/1234'], h.pick)] });
    case 'svc-dup-port':
      return invalidSvc('duplicate-port', {
        ports: h.pick % 2 === 0
          ? [okPort, { name: 'other', port: h.port, protocol: 'TCP' }]
          : [okPort, { name: 'p', port: (h.port % 65535) + 1, protocol: 'UDP' }],
      });
    case 'svc-bad-port-name':
      return invalidSvc('invalid-name', { ports: [{ ...okPort, name: at(BAD_NAMES.filter((n) => typeof n === 'string' && n !== ''), h.pick) }] });
    case 'svc-bad-type':
      return invalidSvc('invalid-type', { type: at(['Foo', 'nodeport', `LoadBalancer"; ${MARK}`], h.pick) });
    case 'svc-bad-policy':
      return invalidSvc('invalid-policy', h.pick % 2 === 0 ? { externalTrafficPolicy: at(['local', 'Bogus', `${MARK}`], h.pick) } : { internalTrafficPolicy: 'Everywhere' });
    case 'svc-bad-affinity':
      return invalidSvc('invalid-affinity', at<Record<string, unknown>>([
        { sessionAffinity: 'Cookie' },
        { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } } },
        { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 86401 } } },
        { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: '10' } } },
        { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 1.5 } } },
      ], h.pick));
    case 'svc-empty-ports':
      return invalidSvc('invalid-port', { ports: at([[], undefined, 'junk'], h.pick) });
    case 'svc-bad-healthcheck':
      return invalidSvc('invalid-port', { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: at([70000, '32000', -3], h.pick) });
    case 'svc-nodeport-collision': {
      // Sorted after every valid service (namespace zz-...), so the valid owner keeps the port.
      const claims = valid.flatMap((v) => v.nodePorts.map(([proto, np]) => ({ proto, np, owner: `${v.ref.ns}/${v.ref.name}` })));
      const collider = (ports: Record<string, unknown>[], spec: Record<string, unknown> = {}): Entry[] => [{
        object: { apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'zz-collide', name }, spec: { type: 'NodePort', clusterIP: cip, ports, ...spec } },
        origin, expect: { t: 'diag', kind: 'Service', object: `zz-collide/${name}`, code: 'nodeport-conflict' },
      }];
      if (claims.length > 0 && h.pick % 3 !== 0) {
        const c = at(claims, h.pick);
        return collider([{ name: 'x', port: h.port, protocol: c.proto.toUpperCase(), nodePort: c.np }]);
      }
      // No owner to collide with: collide with itself (two ports, or a port and the health check).
      return h.pick % 2 === 0
        ? collider([{ name: 'x', port: 1, protocol: 'TCP', nodePort: 30000 }, { name: 'y', port: 2, protocol: 'TCP', nodePort: 30000 }])
        : collider([{ name: 'x', port: 1, protocol: 'TCP', nodePort: 30001 }], { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 30001 });
    }
    case 'svc-ignored-externalname':
      return [{ object: svc({ type: 'ExternalName', externalName: `${MARK}.example.com"; flush ruleset` }), origin, expect: { t: 'ignored', ref: `${ns}/${name}` } }];
    case 'svc-ignored-headless':
      return [{ object: svc(at<Record<string, unknown>>([{ clusterIP: 'None' }, { clusterIP: '' }, { clusterIP: undefined }, { clusterIPs: ['None', '::1'] }], h.pick)), origin, expect: { t: 'ignored', ref: `${ns}/${name}` } }];
    case 'svc-ignored-other-proxy':
      return [{ object: svc({}, { labels: { 'service.kubernetes.io/service-proxy-name': at(JUNK, h.pick) } }), origin, expect: { t: 'ignored', ref: `${ns}/${name}` } }];
    case 'svc-duplicate': {
      // The same object twice (two files listing it): the copy is reported, the service kept.
      if (valid.length === 0) return buildHostile({ ...h, kind: 'svc-bad-name' }, idx, valid);
      const v = at(valid, h.pick);
      const first = v.entries[0]!;
      return [{ object: structuredClone(first.object), origin, expect: { t: 'diag', kind: 'Service', object: `${v.ref.ns}/${v.ref.name}`, code: 'duplicate-object' } }];
    }
    case 'svc-junk-meta-valid': {
      // Valid, with nft syntax everywhere the model does not read (and a named targetPort).
      const object = svc({ type: at(['ClusterIP', 'NodePort'], h.pick), ports: [{ ...okPort, targetPort: at(JUNK, h.pick) }] });
      return [{ object, origin, expect: { t: 'service', ns, name, ports: [{ name: 'p', proto: 'tcp' }], clusterIPs: [cip] } }];
    }
    case 'slice-bad-name':
      return invalidSlice('invalid-name', {}, { name: badName }, where(ns, badName));
    case 'slice-bad-namespace':
      return invalidSlice('invalid-name', {}, { namespace: badNs }, where(badNs, name));
    case 'slice-no-label':
      return [{ object: slice({}, { labels: { app: at(JUNK, h.pick) } }), origin, expect: { t: 'ignored', ref: `${ns}/${name}` } }];
    case 'slice-bad-label':
      return invalidSlice('invalid-name', {}, { labels: { 'kubernetes.io/service-name': at(BAD_NAMES.filter((n) => typeof n === 'string'), h.pick) } });
    case 'slice-fqdn':
      return [{ object: slice({ addressType: 'FQDN', endpoints: [{ addresses: [`${MARK}.example.com";`] }] }), origin, expect: { t: 'ignored', ref: `${ns}/${name}` } }];
    case 'slice-bad-address-type':
      return invalidSlice('invalid-address-type', { addressType: at(['IPv5', undefined, 'ipv4', `${MARK}`], h.pick) });
    case 'slice-bad-ip':
      return invalidSlice('invalid-ip', { endpoints: [{ addresses: ['10.244.9.9'] }, { addresses: [at(['1.2.3.999', '::g', `${MARK}`, '', 5], h.pick)] }] });
    case 'slice-wrong-family':
      return invalidSlice('invalid-ip', h.pick % 2 === 0
        ? { endpoints: [{ addresses: ['fd00:10:244::1'] }] }
        : { addressType: 'IPv6', endpoints: [{ addresses: ['10.244.0.1'] }] });
    case 'slice-bad-port':
      return invalidSlice('invalid-port', { ports: [{ name: 'p', port: at([0, 70000, '80', -1], h.pick), protocol: 'TCP' }] });
    case 'slice-bad-protocol':
      return invalidSlice('invalid-protocol', { ports: [{ name: 'p', port: 80, protocol: at(['ICMP', 'udp', `${MARK}`], h.pick) }] });
    case 'slice-bad-port-name':
      return invalidSlice('invalid-name', { ports: [{ name: at(BAD_NAMES.filter((n) => typeof n === 'string' && n !== ''), h.pick), port: 80, protocol: 'TCP' }] });
    case 'slice-junk-meta-valid': {
      // A valid slice of a valid service (or of no service), with junk in every free-text field.
      const target = valid.length > 0 ? at(valid, h.pick) : undefined;
      const sns = target?.ref.ns ?? ns;
      const svcName = target?.ref.name ?? 'nosuch';
      const sliceName = `${svcName}-junk-${idx}`;
      const j = (k: number): string => at(JUNK, h.pick + k);
      const object = {
        apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
        metadata: { namespace: sns, name: sliceName, ...junkMeta(h.pick), labels: { ...(junkMeta(h.pick).labels as object), 'kubernetes.io/service-name': svcName } },
        addressType: 'IPv4',
        ports: [{ port: h.port, protocol: 'TCP' }, { name: 'port-0', port: h.port, protocol: 'TCP' }, { name: 'port-1', port: h.port, protocol: 'UDP' }],
        endpoints: [
          { addresses: [v4(10, 244, 7, (idx % 250) + 1)], nodeName: j(0), zone: j(1), hints: { forZones: [{ name: j(2) }, { name: 'zone-a' }], forNodes: [{ name: j(3) }] }, conditions: { ready: true } },
          { addresses: [v4(10, 244, 8, (idx % 250) + 1)], nodeName: 'node-a', zone: j(4), hints: { forZones: [{ name: j(5) }], forNodes: [{ name: 'node-a' }, { name: j(6) }] }, conditions: { ready: true } },
          { addresses: [v4(10, 244, 9, (idx % 250) + 1)], targetRef: { kind: 'Pod', name: j(7) }, conditions: { ready: false, serving: true, terminating: true } },
        ],
      };
      return [{ object, origin, expect: { t: 'slice', ns: sns, service: svcName, name: sliceName } }];
    }
    case 'node-bad-name':
      return [{
        object: { apiVersion: 'v1', kind: 'Node', metadata: { name: badName, ...junkMeta(h.pick) }, status: { addresses: [{ type: 'InternalIP', address: '192.168.0.9' }] } },
        origin, expect: { t: 'diag', kind: 'Node', object: printable(typeof badName === 'string' ? badName : ''), code: 'invalid-name' },
      }];
    case 'node-junk-valid': {
      const nodeName = `node-h${idx}`;
      return [{
        object: {
          apiVersion: 'v1', kind: 'Node', metadata: { name: nodeName, ...junkMeta(h.pick) },
          status: { addresses: [{ type: 'InternalIP', address: '1.2.3.999' }, { type: 'ExternalIP', address: at(JUNK, h.pick) }, { type: 'Hostname', address: `${MARK}";` }, { type: 'InternalIP', address: '::g' }, 7, null] },
        },
        origin, expect: { t: 'node', name: nodeName },
      }];
    }
    case 'not-an-object':
      return [{ object: at<unknown>([null, 42, `kind: Service ${MARK}`, [{ kind: 'Service' }], true, undefined], h.pick), origin, expect: { t: 'diag', kind: 'Object', object: origin, code: 'not-an-object' } }];
    case 'other-kind':
      return [{ object: at<unknown>([{ kind: 'Pod', metadata: { name: badName } }, { metadata: { name: badName } }, { kind: 42 }, { kind: `Service"; ${MARK}` }], h.pick), origin, expect: { t: 'none' } }];
  }
}

// ---------------------------------------------------------------------------------------
// Snapshots.

export interface Snapshot {
  readonly entries: readonly Entry[];
}

export const snapshotArb: fc.Arbitrary<Snapshot> = fc
  .record({
    services: fc.array(validServiceArb, { maxLength: 6 }),
    pool: fc.uniqueArray(fc.integer({ min: 30000, max: 32767 }), { minLength: 28, maxLength: 28 }),
    withNodes: fc.boolean(),
    hostile: fc.array(hostileArb, { maxLength: 10 }),
  })
  .map(({ services, pool, withNodes, hostile }) => {
    const valid = services.map((p, i) => buildValidService(p, i, pool));
    const entries: Entry[] = [...valid.flatMap((v) => v.entries), ...(withNodes ? validNodes : [])];
    hostile.forEach((h, k) => entries.push(...buildHostile(h, k, valid)));
    return { entries };
  });

export const scenarioArb = snapshotArb.chain((snap) =>
  fc.record({ snap: fc.constant(snap), shuffled: fc.shuffledSubarray([...snap.entries], { minLength: snap.entries.length, maxLength: snap.entries.length }) }),
);

export const sources = (entries: readonly Entry[]): SourceObject[] => entries.map((e) => ({ object: e.object, origin: e.origin }));

// Every name at its maximum length (63-character namespace, name and port names), with
// session affinity and several endpoints: the longest chain, set and comment texts.
export function maxLengthExample(): Snapshot {
  const endpoints = [0, 1, 2].map((b): EndpointParams => ({
    a: 3, b: b + 1, style: 'canonical', ready: true, serving: true, terminating: false,
    nodeName: b === 0 ? 'node-a' : 'node-b', zone: 'zone-a', hintZones: undefined, hintNodes: undefined, extraAddress: false,
  }));
  const p: ServiceParams = {
    ns: `n${'x'.repeat(62)}`, long: true, type: 'LoadBalancer', stack: ['v6', 'v4'], clusterIPx: 200, ipStyle: 'canonical', useClusterIPField: false,
    ports: [
      { port: 65535, proto: 'TCP', target: 65535, withNodePort: true },
      { port: 1, proto: 'UDP', target: undefined, withNodePort: true },
      { port: 443, proto: 'SCTP', target: 'http', withNodePort: true },
    ],
    longPortNames: true, etp: 'Local', itp: 'Local', healthCheck: true, affinity: { timeout: 86400 },
    externalIPs: [['v4', 0], ['v6', 1]], lbIngress: [{ fam: 'v4', ipMode: undefined, hostnameOnly: false }, { fam: 'v6', ipMode: 'VIP', hostnameOnly: false }],
    sourceRanges: ['192.168.0.2/32', 'fd00::/8'], trafficDistribution: 'PreferClose', proxyLabel: true,
    slices: [
      { fam: 'v4', include: [true, true, true], portNums: [65535, 1, 8443], allPortsEntry: false, endpoints },
      { fam: 'v6', include: [true, true, true], portNums: [65535, 1, 8443], allPortsEntry: false, endpoints },
    ],
  };
  const pool = Array.from({ length: 28 }, (_, k) => 32767 - k);
  return { entries: [...buildValidService(p, 0, pool).entries, ...validNodes] };
}

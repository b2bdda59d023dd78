// discovery.k8s.io/v1 EndpointSlice -> EndpointSlice.
import type { InvalidCode } from './diagnostic.js';
import { type IP, parseIP, familyOf, printable } from './ip.js';
import type { EndpointConditions, EndpointSlice, EndpointSlicePort } from './types.js';
import { type Raw, arr, obj, str, isDnsLabel, isDnsSubdomain, metaRef, labels } from './raw.js';
import { parsePort, parseProtocol } from './service.js';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export type SliceOutcome =
  | { kind: 'slice'; slice: EndpointSlice }
  | { kind: 'ignored'; reason: string }
  | { kind: 'invalid'; code: InvalidCode; reason: string };

const invalid = (code: InvalidCode, reason: string): SliceOutcome => ({ kind: 'invalid', code, reason });

// Eight possible conditions, shared by every endpoint (read-only): 100k endpoints need no
// 100k objects for them.
const CONDITIONS: readonly EndpointConditions[] = Array.from({ length: 8 }, (_, i) => Object.freeze({ ready: (i & 4) !== 0, serving: (i & 2) !== 0, terminating: (i & 1) !== 0 }));

// Node and zone names repeat across every endpoint on the node or in the zone; the parsed
// manifest or API object holds each as a string of its own. Interned here, the model keeps one.
const NAMES = new Map<string, string>();
const interned = (s: string | undefined): string | undefined => {
  if (s === undefined) return undefined;
  const hit = NAMES.get(s);
  if (hit !== undefined) return hit;
  if (NAMES.size >= 100_000) NAMES.clear();
  NAMES.set(s, s);
  return s;
};

export function normalizeEndpointSlice(o: Raw): SliceOutcome {
  const ref = metaRef(o);
  if (!isDnsLabel(ref.namespace) || !isDnsSubdomain(ref.name)) {
    return invalid('invalid-name', `name ${printable(ref.namespace)}/${printable(ref.name)} is not a valid object name`);
  }
  const serviceName = labels(o)[SERVICE_NAME_LABEL];
  if (serviceName === undefined) return { kind: 'ignored', reason: `no ${SERVICE_NAME_LABEL} label` };
  if (!isDnsLabel(serviceName)) return invalid('invalid-name', `label ${SERVICE_NAME_LABEL}=${printable(serviceName)} is not a service name`);
  const addressType = o.addressType;
  if (addressType === 'FQDN') return { kind: 'ignored', reason: 'addressType FQDN is not proxied' };
  if (addressType !== 'IPv4' && addressType !== 'IPv6') return invalid('invalid-address-type', `addressType ${printable(addressType)} is unknown`);
  const family = addressType === 'IPv4' ? 'ipv4' : 'ipv6';

  const ports: EndpointSlicePort[] = [];
  for (const rp of arr(o.ports)) {
    const p = obj(rp);
    // A port with no number means "all ports" and is only meaningful for headless services.
    if (p.port === undefined || p.port === null) continue;
    const protocol = parseProtocol(p.protocol);
    if (!protocol.ok) return invalid('invalid-protocol', protocol.error);
    const port = parsePort(p.port, 'port');
    if (!port.ok) return invalid('invalid-port', port.error);
    const name = str(p.name) ?? '';
    if (name !== '' && !isDnsLabel(name)) return invalid('invalid-name', `port name ${printable(name)} is not a valid DNS-1123 label`);
    ports.push({ name, protocol: protocol.value, port: port.value });
  }

  const endpoints: EndpointSlice['endpoints'][number][] = [];
  for (const re of arr(o.endpoints)) {
    const e = obj(re);
    const addrs = arr(e.addresses);
    // kube-proxy uses the first address only.
    if (addrs.length === 0) continue;
    const ip = parseIP(str(addrs[0]) ?? '');
    if (!ip.ok) return invalid('invalid-ip', `endpoint ${ip.error}`);
    if (familyOf(ip.value as IP) !== family) return invalid('invalid-ip', `endpoint ${ip.value} is not ${addressType}`);
    const c = obj(e.conditions);
    // API semantics: ready and serving default to true when unset, terminating to false.
    const ready = c.ready !== false;
    const serving = c.serving === undefined || c.serving === null ? ready : c.serving !== false;
    const terminating = c.terminating === true;
    const hints = obj(e.hints);
    const forZones = Array.isArray(hints.forZones) ? arr(hints.forZones).map((z) => str(obj(z).name) ?? '').filter((z) => z !== '') : undefined;
    const forNodes = Array.isArray(hints.forNodes) ? arr(hints.forNodes).map((n) => str(obj(n).name) ?? '').filter((n) => n !== '') : undefined;
    endpoints.push({
      ip: ip.value,
      conditions: CONDITIONS[(ready ? 4 : 0) + (serving ? 2 : 0) + (terminating ? 1 : 0)]!,
      nodeName: interned(str(e.nodeName)),
      zone: interned(str(e.zone)),
      hintsForZones: forZones,
      hintsForNodes: forNodes,
    });
  }
  return { kind: 'slice', slice: { ref, serviceName, family, ports, endpoints } };
}

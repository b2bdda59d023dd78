// Reading untrusted JSON: small typed accessors that never throw.
export type Raw = Record<string, unknown>;

export const isObj = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);
export const obj = (v: unknown): Raw => (isObj(v) ? v : {});
export const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
export const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

// Kubernetes object names: DNS-1123 labels (namespaces, services) or subdomains (slices,
// nodes). Checking them here is what lets chain names carry a readable suffix safely.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function isDnsLabel(s: string): boolean {
  return s.length <= 63 && DNS_LABEL.test(s);
}
export function isDnsSubdomain(s: string): boolean {
  return s.length <= 253 && DNS_SUBDOMAIN.test(s);
}

export function metaRef(o: Raw): { namespace: string; name: string } {
  const m = obj(o.metadata);
  return { namespace: str(m.namespace) ?? 'default', name: str(m.name) ?? '' };
}

export function labels(o: Raw): Record<string, string> {
  const out: Record<string, string> = {};
  const l = obj(obj(o.metadata).labels);
  for (const [k, v] of Object.entries(l)) if (typeof v === 'string') out[k] = v;
  return out;
}

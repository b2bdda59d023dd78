// v1.Node -> Node: its name, labels (zone for topology) and addresses (node IPs).
import type { InvalidCode } from './diagnostic.js';
import { type IP, parseIP, printable } from './ip.js';
import type { Node } from './types.js';
import { type Raw, arr, obj, str, isDnsSubdomain, labels } from './raw.js';

const TO_BE_DELETED_TAINT = 'ToBeDeletedByClusterAutoscaler';

export type NodeOutcome = { kind: 'node'; node: Node } | { kind: 'invalid'; code: InvalidCode; reason: string };

export function normalizeNode(o: Raw): NodeOutcome {
  const name = str(obj(o.metadata).name) ?? '';
  if (!isDnsSubdomain(name)) return { kind: 'invalid', code: 'invalid-name', reason: `name ${printable(name)} is not a valid node name` };
  const internal: IP[] = [];
  const external: IP[] = [];
  for (const ra of arr(obj(o.status).addresses)) {
    const a = obj(ra);
    const ip = parseIP(str(a.address) ?? '');
    // Hostname entries and junk are not addresses we can program; they do not make the node invalid.
    if (!ip.ok) continue;
    if (a.type === 'InternalIP' && !internal.includes(ip.value)) internal.push(ip.value);
    if (a.type === 'ExternalIP' && !external.includes(ip.value)) external.push(ip.value);
  }
  const leaving = str(obj(o.metadata).deletionTimestamp) !== undefined
    ? 'node is being deleted'
    : arr(obj(o.spec).taints).some((t) => obj(t).key === TO_BE_DELETED_TAINT) ? `node is tainted ${TO_BE_DELETED_TAINT}` : undefined;
  return { kind: 'node', node: { name, labels: labels(o), addresses: [...internal, ...external.filter((e) => !internal.includes(e))], leaving } };
}

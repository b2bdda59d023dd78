// Reading `conntrack -L` output (conntrack-tools 1.4.7): how tests see the kernel's
// conntrack table through a tool independent of the product, which lists and deletes over
// netlink (src/apply/netlink/conntrack.ts).
import type { Flow, Tuple } from '../../src/apply/conntrack-plan.js';
import { familyOf, parseIP } from '../../src/model/ip.js';

const TUPLE_KEYS = ['src', 'dst', 'sport', 'dport'] as const;
type TupleKey = (typeof TUPLE_KEYS)[number];
const isTupleKey = (k: string): k is TupleKey => (TUPLE_KEYS as readonly string[]).includes(k);

/**
 * One line of `conntrack -L` in the default format, e.g. (conntrack 1.4.7)
 *   udp      17 29 src=10.0.0.2 dst=172.30.0.41 sport=40000 dport=53 [UNREPLIED] src=10.180.0.1 dst=10.0.0.2 sport=53 dport=40000 [ASSURED] mark=0 use=1
 * The first src/dst/sport/dport are the original direction, the second the reply. Other
 * words (state, [FLAGS], packets=, bytes=, zone=, mark=, ...) vary with protocol and
 * sysctls and are skipped. Anything without both full tuples (icmp, summary lines) is
 * not a flow we could judge: undefined.
 */
export function parseFlowLine(line: string): Flow | undefined {
  const words = line.trim().split(/\s+/);
  const proto = words[0];
  if (proto === undefined || !/^[a-z0-9]+$/.test(proto) || !/^[0-9]+$/.test(words[1] ?? '')) return undefined;
  const seen: Record<TupleKey, string[]> = { src: [], dst: [], sport: [], dport: [] };
  for (const w of words.slice(2)) {
    const eq = w.indexOf('=');
    const k = w.slice(0, eq);
    if (eq > 0 && isTupleKey(k)) seen[k].push(w.slice(eq + 1));
  }
  const tuple = (i: 0 | 1): Tuple | undefined => {
    const src = parseIP(seen.src[i] ?? ''), dst = parseIP(seen.dst[i] ?? '');
    const sport = port(seen.sport[i]), dport = port(seen.dport[i]);
    if (!src.ok || !dst.ok || sport === undefined || dport === undefined) return undefined;
    return { src: src.value, dst: dst.value, sport, dport };
  };
  const orig = tuple(0), reply = tuple(1);
  if (orig === undefined || reply === undefined) return undefined;
  const fam = familyOf(orig.src);
  if ([orig.dst, reply.src, reply.dst].some((a) => familyOf(a) !== fam)) return undefined;
  return { family: fam === 'ipv4' ? 'ip' : 'ip6', proto, orig, reply };
}

function port(s: string | undefined): number | undefined {
  if (s === undefined || !/^[0-9]{1,5}$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 65535 ? n : undefined;
}

export function parseFlows(listing: string): Flow[] {
  return listing.split('\n').map(parseFlowLine).filter((f): f is Flow => f !== undefined);
}

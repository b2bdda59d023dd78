// UDP conntrack hygiene, the pure half: which flows must go after a sync. No I/O here;
// ./conntrack.ts lists and deletes over netlink.
//
// Why at all: UDP has no connection teardown, so a conntrack entry keeps steering a
// client's packets along the path chosen by its first packet for as long as the client
// keeps sending. Two cases hurt (kube-proxy's CleanStaleEntries handles both):
//  (a) the endpoint went away: the entry still DNATs to a dead address;
//  (b) the service got its first endpoint: entries created while the packet went
//      un-DNATed (reply source = the VIP itself) keep bypassing the new DNAT rule.
// One rule covers both: for a UDP service port with >= 1 serving endpoint, a flow to one
// of its destinations whose reply comes from anything but a serving endpoint is stale.
//
// Deliberate differences from upstream: upstream keys VIP flows by address only (so two
// UDP ports on one ClusterIP share one endpoint set, last writer wins); we key by address
// and port. And a NodePort filter leaves alone flows whose destination is some service's
// VIP:port, which that VIP's own filter judges.
import type { Family, ServicePortInfo } from '../ir/types.js';
import type { IP } from '../model/ip.js';

/** At least one element: an empty keep-list would mean "delete every flow", never wanted. */
export type NonEmpty<T> = readonly [T, ...T[]];

interface FilterCommon {
  readonly family: Family;
  /** only UDP: TCP flows end on their own, and upstream leaves them alone too */
  readonly proto: 'udp';
  readonly origDport: number;
  /** flows whose reply source is one of these are healthy */
  readonly keepReplySrc: NonEmpty<IP>;
  /** "ns/name", for logs */
  readonly service: string;
  readonly portName: string;
}

/** Flows to VIP:port (ClusterIP, externalIP or load-balancer IP). */
export interface VipFilter extends FilterCommon {
  readonly kind: 'vip';
  readonly origDst: IP;
}

/** Flows to any destination address on the NodePort, minus VIP:port destinations (judged by their own filter). */
export interface NodePortFilter extends FilterCommon {
  readonly kind: 'nodeport';
  readonly origDst?: never;
  readonly exceptOrigDst: readonly IP[];
}

export type ConntrackFilter = VipFilter | NodePortFilter;

// ---------------------------------------------------------------------------------------
// Planning

const portKey = (sp: ServicePortInfo): string => `${sp.family} ${sp.id}`;

/** Everything a port's filters are derived from; equal signatures mean equal filters. */
function signature(sp: ServicePortInfo): string {
  return JSON.stringify([sp.proto, sp.port, [...sp.vips].sort(), sp.nodePort ?? null, [...sp.servingEndpoints].sort()]);
}

function nonEmpty<T>(xs: readonly T[]): NonEmpty<T> | undefined {
  return xs.length > 0 ? (xs as unknown as NonEmpty<T>) : undefined;
}

/**
 * The conntrack filters to run after a successful sync from `prev` to `next`.
 *
 * Listing conntrack costs a kernel table walk, so only UDP ports that are new or whose
 * destinations or serving endpoints changed get filters. `prev` undefined (first sync after
 * start) plans every UDP port with serving endpoints: a restart may have missed changes.
 * The caller should only advance its `prev` when cleanup reported no errors, or the
 * failed work is never retried.
 */
export function planConntrackCleanup(prev: readonly ServicePortInfo[] | undefined, next: readonly ServicePortInfo[]): ConntrackFilter[] {
  const known = prev === undefined ? undefined : new Map(prev.map((sp) => [portKey(sp), signature(sp)]));
  return planConntrackChanges(known, next, udpVipsOn(next));
}

/** The UDP VIPs of `ports` by family and port number (what a NodePort filter leaves alone). */
export function udpVipsOn(ports: readonly ServicePortInfo[]): (family: Family, port: number) => readonly IP[] {
  return (family, port) => [...new Set(ports.filter((o) => o.proto === 'udp' && o.family === family && o.port === port).flatMap((o) => o.vips))];
}

/**
 * The same, for the ports a sync touched: `known` holds the signature each port had when its
 * flows were last cleaned (undefined: nothing known, plan every port given); `changed` the
 * ports as they are now; udpVips the UDP VIPs on a port number across every service.
 */
export function planConntrackChanges(known: ReadonlyMap<string, string> | undefined, changed: Iterable<ServicePortInfo>, udpVips: (family: Family, port: number) => readonly IP[]): ConntrackFilter[] {
  const filters: ConntrackFilter[] = [];
  for (const sp of changed) {
    if (sp.proto !== 'udp') continue;
    const keepReplySrc = nonEmpty(sp.servingEndpoints);
    // No serving endpoint: traffic is rejected now, nothing to re-balance to (as upstream).
    if (keepReplySrc === undefined) continue;
    if (known !== undefined && known.get(portKey(sp)) === signature(sp)) continue;

    const common = { family: sp.family, proto: 'udp', origDport: sp.port, keepReplySrc, service: sp.service, portName: sp.portName } as const;
    for (const origDst of new Set(sp.vips)) filters.push({ ...common, kind: 'vip', origDst });
    if (sp.nodePort !== undefined) {
      // A UDP VIP:port that happens to share the NodePort's number is that VIP's traffic.
      filters.push({ ...common, kind: 'nodeport', origDport: sp.nodePort, exceptOrigDst: [...udpVips(sp.family, sp.nodePort)] });
    }
  }
  return filters;
}

export { portKey as conntrackPortKey, signature as conntrackSignature };

// ---------------------------------------------------------------------------------------
// Flows, as the kernel lists them

export interface Tuple {
  readonly src: IP;
  readonly dst: IP;
  readonly sport: number;
  readonly dport: number;
}

/** One conntrack entry, as far as cleanup cares. */
export interface Flow {
  readonly family: Family;
  /** layer-4 protocol name: udp, tcp, icmp, ... */
  readonly proto: string;
  readonly orig: Tuple;
  readonly reply: Tuple;
}

/**
 * Does `filter` say this flow must go? Re-checks every criterion itself, so a listing that
 * was not (or not fully) narrowed by the kernel is still judged correctly.
 */
export function isStale(filter: ConntrackFilter, flow: Flow): boolean {
  if (flow.proto !== filter.proto || flow.family !== filter.family || flow.orig.dport !== filter.origDport) return false;
  switch (filter.kind) {
    case 'vip':
      if (flow.orig.dst !== filter.origDst) return false;
      break;
    case 'nodeport':
      if (filter.exceptOrigDst.includes(flow.orig.dst)) return false;
      break;
  }
  return !filter.keepReplySrc.includes(flow.reply.src);
}

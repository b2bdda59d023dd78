// The BPF hot path as the daemon runs it: --bpf=off|auto|on (decided in bpf-mode.ts from where
// the daemon runs). `auto` loads it in the host's network namespace when the kernel supports
// it and says in one log line why not otherwise; `on` refuses to start without it. Loading
// adopts what a previous run pinned (links switched in place, maps kept), so a restart has no
// gap. The nftables rules stay complete either way: BPF only shortcuts the ClusterIP
// connections it covers (src/compile/bpf-coverage.ts). Kernel I/O: src/apply/bpf-kernel.ts.
import type { Logger } from 'pino';
import { BpfApplier, type BpfSyncResult } from '../apply/bpf-applier.js';
import { DEFAULT_PIN_DIR, type NetnsPlace, type SockDestroyer, type SockLbHandle, attachSockLb, cgroup2Root, destroyUdpSocketsTo, openSockDestroy, pinSet, removePinSet, sockLbSupport, whereAmI } from '../apply/bpf-kernel.js';
import type { ServicePortInfo } from '../ir/types.js';
import type { ProxyConfig } from '../model/config.js';
import { type BpfService, bpfKeptSources, bpfServices } from '../compile/bpf-coverage.js';
import { deadUdpBackends } from '../render/bpf-entries.js';
import { type BpfMode, decideBpf, mayTouchPins } from './bpf-mode.js';

export type { BpfMode };
export { DEFAULT_PIN_DIR };

/** --bpf=on and the socket load balancer cannot run here (exit 4). */
export class BpfUnavailable extends Error {}
/** The --bpf flags ask for something that would act on the whole host from here (exit 2). */
export class BpfUsageError extends Error {}

export interface BpfPath {
  readonly cgroup: string;
  readonly pinDir: string;
  /** `cfg`: this sync's resolved configuration (node IPs and cluster CIDRs can come from the Node) */
  sync(ports: readonly ServicePortInfo[], cfg: Pick<ProxyConfig, 'masqueradeAll' | 'nodeIPs' | 'clusterCIDRs'>): BpfSyncResult & { destroyed: number; entries: number };
  close(): void;
}

const firstLine = (e: unknown): string => (e as Error).message.split('\n')[0]!;

export async function startBpf(mode: BpfMode, o: { cgroup?: string; pinDir?: string; netnsDir?: string; log: Logger; place?: NetnsPlace }): Promise<BpfPath | undefined> {
  const pinDir = o.pinDir ?? DEFAULT_PIN_DIR;
  const place = o.place ?? whereAmI();
  // Programs an earlier run left attached keep rewriting connect() from maps nobody updates
  // any more: when this run does not take them over, they go, if they are ours to remove
  // (mayTouchPins: outside the host's namespace, only pins this namespace made).
  // Returns what it did, for the line that says why BPF is off.
  const removeLeftovers = (): string | undefined => {
    const pins = pinSet(pinDir);
    if (!pins.present) return undefined;
    const may = mayTouchPins(place, pins.ownerNetns);
    if (!may.ok) return `left the pins at ${pinDir} in place: ${may.why}`;
    try {
      if (removePinSet(pinDir)) o.log.warn({ pinDir }, 'BPF hot path off: detached and unpinned the programs an earlier run left attached');
    } catch (e) {
      o.log.error({ pinDir, error: firstLine(e) }, 'BPF hot path off, but the programs an earlier run left could not be removed: run nftproxy cleanup');
    }
    return undefined;
  };
  const decision = decideBpf(mode, place, o.cgroup);
  switch (decision.kind) {
    case 'usage-error':
      throw new BpfUsageError(decision.message);
    case 'off': {
      const leftovers = removeLeftovers();
      if (decision.reason) o.log.info({ reason: decision.reason, netns: place.self, ...(leftovers ? { leftovers } : {}) }, 'BPF hot path off (--bpf=auto): the nftables rules carry all traffic');
      else if (leftovers) o.log.info({ leftovers }, 'BPF hot path off (--bpf=off)');
      return undefined;
    }
    case 'load':
      break;
  }
  const cgroup = decision.cgroup ?? cgroup2Root() ?? '';
  const fail = (reason: string): undefined => {
    if (decision.strict) throw new BpfUnavailable(`--bpf=on: ${reason}`);
    const leftovers = removeLeftovers();
    o.log.info({ reason, ...(leftovers ? { leftovers } : {}) }, 'BPF hot path off (--bpf=auto): the nftables rules carry all traffic');
    return undefined;
  };
  const support = sockLbSupport(cgroup || undefined);
  if (!support.ok) return fail(support.reason);
  // Taking over a pin set switches its links to this run's programs and cgroup: the same
  // ownership rule as removing it.
  const pins = pinSet(pinDir);
  const may = pins.present ? mayTouchPins(place, pins.ownerNetns) : { ok: true as const };
  if (!may.ok) return fail(`${pinDir} holds another nftproxy's pins (${may.why}); give this one its own --bpf-pin-dir`);
  let handle: SockLbHandle;
  try {
    const attached = await attachSockLb({ cgroup, pinDir, ownerNetns: place.self, netnsDir: o.netnsDir });
    handle = attached.handle;
    if (attached.recordError) o.log.warn({ pinDir, error: attached.recordError }, 'BPF: could not record the owner and netns directory beside the pins; status will not show them');
  } catch (e) {
    return fail(firstLine(e));
  }
  const applier = new BpfApplier(handle);
  // bpf_sock_destroy (kernel >= 6.5) through a UDP socket iterator: without it, a connected
  // UDP socket keeps sending to a backend that is gone (the socket LB's classic bug).
  let destroyer: SockDestroyer | undefined;
  try {
    destroyer = openSockDestroy();
  } catch (e) {
    o.log.info({ reason: firstLine(e) }, 'no bpf_sock_destroy on this kernel: connected UDP sockets to removed backends are left to time out (older kernels)');
  }
  o.log.info({ cgroup, pinDir, netns: place.self, ...handle.report, sockDestroy: destroyer !== undefined }, 'BPF hot path on: ClusterIP connections are balanced at connect()');
  let last: BpfService[] = [];
  return {
    cgroup, pinDir,
    sync: (ports, cfg) => {
      const next = bpfServices(ports, cfg);
      let keptWrites = 0;
      try {
        keptWrites = applier.keepSources(bpfKeptSources(cfg.clusterCIDRs));
      } catch (e) {
        // Sources the map does not hold count as masqueraded (left to nft): never wrong.
        o.log.error({ error: firstLine(e) }, 'BPF: writing the kept source prefixes failed; sockets bound to a source outside them go to nft');
      }
      const synced = applier.sync(next);
      const r = { ...synced, writes: synced.writes + keptWrites };
      for (const f of r.refused) o.log.error(f, 'BPF maps refused a service; the nftables rules serve it');
      let destroyed = 0;
      const dead = deadUdpBackends(last, next);
      last = next;
      if (destroyer && dead.length) {
        // this process's namespace (host-network clients) and, when given, every pod
        // namespace file in --bpf-netns-dir (e.g. /run/netns, mounted into the DaemonSet)
        try {
          destroyed = destroyUdpSocketsTo(destroyer, dead, o.netnsDir);
          if (destroyed) o.log.info({ destroyed, backends: dead.length }, 'connected UDP sockets to removed backends destroyed');
        } catch (e) {
          o.log.warn({ error: firstLine(e) }, 'destroying UDP sockets to removed backends failed');
        }
      }
      return { ...r, destroyed, entries: applier.size };
    },
    close: () => { handle.close(); destroyer?.close(); },
  };
}

// The BPF hot path as the daemon runs it: --bpf=off|auto|on. `auto` loads it when the kernel
// supports it and says in one log line why not otherwise; `on` refuses to start without it.
// Loading adopts what a previous run pinned (links switched in place, maps kept), so a
// restart has no gap. The nftables rules stay complete either way: BPF only shortcuts the
// ClusterIP connections it covers (src/render/bpf-entries.ts).
import type { Logger } from 'pino';
import { ensurePinDir } from '../../native/bpffs.js';
import { type SockDestroyer, type SockLbHandle, bpfSupport, findCgroup2Root, loadSockDestroy, loadSockLb, pinnedMapCounts, removePinned } from '../../native/loader.js';
import { BpfApplier, type BpfSyncResult } from '../apply/bpf-applier.js';
import type { ServicePortInfo } from '../ir/types.js';
import type { ProxyConfig } from '../model/config.js';
import { type BpfService, bpfKeptSources, bpfServices, deadUdpBackends } from '../render/bpf-entries.js';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export type BpfMode = 'off' | 'auto' | 'on';
export const DEFAULT_PIN_DIR = '/sys/fs/bpf/nftproxy';

export class BpfUnavailable extends Error {}

export interface BpfPath {
  readonly cgroup: string;
  readonly pinDir: string;
  /** `cfg`: this sync's resolved configuration (node IPs and cluster CIDRs can come from the Node) */
  sync(ports: readonly ServicePortInfo[], cfg: Pick<ProxyConfig, 'masqueradeAll' | 'nodeIPs' | 'clusterCIDRs'>): BpfSyncResult & { destroyed: number; entries: number };
  close(): void;
}

export async function startBpf(mode: BpfMode, o: { cgroup?: string; pinDir?: string; netnsDir?: string; log: Logger }): Promise<BpfPath | undefined> {
  const pinDir = o.pinDir ?? DEFAULT_PIN_DIR;
  // Programs an earlier run left attached keep rewriting connect() from maps nobody updates
  // any more: when this run does not take them over, they go.
  const removeLeftovers = (): void => {
    try {
      if (removeBpf(pinDir)) o.log.warn({ pinDir }, 'BPF hot path off: detached and unpinned the programs an earlier run left attached');
    } catch (e) {
      o.log.error({ pinDir, error: (e as Error).message.split('\n')[0] }, 'BPF hot path off, but the programs an earlier run left could not be removed: run nftproxy cleanup');
    }
  };
  if (mode === 'off') { removeLeftovers(); return undefined; }
  const cgroup = o.cgroup ?? findCgroup2Root() ?? '';
  const fail = (reason: string): undefined => {
    if (mode === 'on') throw new BpfUnavailable(`--bpf=on: ${reason}`);
    o.log.info({ reason }, 'BPF hot path off (--bpf=auto): the nftables rules carry all traffic');
    removeLeftovers();
    return undefined;
  };
  const support = bpfSupport(cgroup ? { cgroupPath: cgroup } : {});
  if (!support.ok) return fail(support.reason);
  let handle: SockLbHandle;
  try {
    await ensurePinDir(pinDir);
    handle = loadSockLb({ cgroupPath: cgroup, pinDir });
  } catch (e) {
    return fail((e as Error).message.split('\n')[0]!);
  }
  const applier = new BpfApplier(handle);
  // bpf_sock_destroy (kernel >= 6.5) through a UDP socket iterator: without it, a connected
  // UDP socket keeps sending to a backend that is gone (the socket LB's classic bug).
  let destroyer: SockDestroyer | undefined;
  try {
    destroyer = loadSockDestroy();
  } catch (e) {
    o.log.info({ reason: (e as Error).message.split('\n')[0] }, 'no bpf_sock_destroy on this kernel: connected UDP sockets to removed backends are left to time out (older kernels)');
  }
  o.log.info({ cgroup, pinDir, ...handle.report, sockDestroy: destroyer !== undefined }, 'BPF hot path on: ClusterIP connections are balanced at connect()');
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
        o.log.error({ error: (e as Error).message.split('\n')[0] }, 'BPF: writing the kept source prefixes failed; sockets bound to a source outside them go to nft');
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
        const netns: (string | null)[] = [null, ...(o.netnsDir && existsSync(o.netnsDir) ? readdirSync(o.netnsDir).map((f) => join(o.netnsDir!, f)) : [])];
        try {
          destroyed = destroyer.destroyUdpSockets(dead.map((b) => ({ addr: b.addr, port: b.port })), netns).length;
          if (destroyed) o.log.info({ destroyed, backends: dead.length }, 'connected UDP sockets to removed backends destroyed');
        } catch (e) {
          o.log.warn({ error: (e as Error).message.split('\n')[0] }, 'destroying UDP sockets to removed backends failed');
        }
      }
      return { ...r, destroyed, entries: applier.size };
    },
    close: () => { handle.close(); destroyer?.close(); },
  };
}

/** `nftproxy cleanup`: detach the programs and remove the pins, if a run (of any version) left any. */
export function removeBpf(pinDir = DEFAULT_PIN_DIR): boolean {
  return removePinned(pinDir);
}

export interface BpfStatus {
  readonly pinned: boolean;
  readonly pinDir: string;
  readonly links?: readonly string[];
  readonly maps?: Readonly<Record<string, number>>;
}

/** `nftproxy status`: what is pinned and how full the maps are. */
export function bpfStatus(pinDir = DEFAULT_PIN_DIR): BpfStatus {
  if (!existsSync(pinDir)) return { pinned: false, pinDir };
  return { pinned: true, pinDir, links: readdirSync(pinDir).filter((f) => f.startsWith('link_')).sort(), maps: pinnedMapCounts(pinDir) };
}

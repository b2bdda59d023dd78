// The daemon's BPF kernel I/O: where it runs, loading and pinning the socket load balancer,
// removing a pin set, destroying UDP sockets. Policy (when to do which) is in
// src/daemon/bpf-path.ts and src/daemon/bpf-mode.ts; the map writes are in bpf-applier.ts.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_PIN_DIR, ensurePinDir } from '../../native/bpffs.js';
import { type SockDestroyer, type SockLbHandle, type Support, bpfSupport, findCgroup2Root, loadSockDestroy, loadSockLb, readPinRecord, removePinned, writePinRecord } from '../../native/loader.js';
import { type NetnsPlace, netnsPlace } from '../../native/netns.js';
import type { Endpoint } from '../../native/layout.js';

export type { NetnsPlace, SockDestroyer, SockLbHandle, Support };
export { DEFAULT_PIN_DIR };

/** Where this process runs, relative to the host's initial network namespace. */
export const whereAmI = (): NetnsPlace => netnsPlace();

/** The cgroup v2 root as this process sees it, or null when none is mounted. */
export const cgroup2Root = (): string | null => findCgroup2Root();

export const sockLbSupport = (cgroup: string | undefined): Support => bpfSupport(cgroup ? { cgroupPath: cgroup } : {});

/** What is pinned at `pinDir`, as far as deciding whether it may be removed or taken over. */
export interface PinSet {
  readonly present: boolean;
  /** `net:[ino]` of the daemon that pinned it; null: not recorded (an older version, or a crash before it was written) */
  readonly ownerNetns: string | null;
}

export function pinSet(pinDir: string): PinSet {
  if (!existsSync(pinDir)) return { present: false, ownerNetns: null };
  return { present: true, ownerNetns: readPinRecord(pinDir).ownerNetns };
}

/** Detach and unpin everything at `pinDir`; false when nothing was there. */
export const removePinSet = (pinDir: string): boolean => removePinned(pinDir);

/**
 * Attach the socket load balancer to `cgroup` and pin it under `pinDir` (a bpffs is mounted on
 * the parent when there is none), adopting what an earlier run pinned there. Then record who
 * pinned it (`ownerNetns`) and `netnsDir`, for `status` and for the next start's ownership check.
 */
export async function attachSockLb(o: { cgroup: string; pinDir: string; ownerNetns: string; netnsDir?: string | undefined }): Promise<{ handle: SockLbHandle; recordError: string | undefined }> {
  await ensurePinDir(o.pinDir);
  const handle = loadSockLb({ cgroupPath: o.cgroup, pinDir: o.pinDir });
  try {
    writePinRecord(o.pinDir, { ownerNetns: o.ownerNetns, netnsDir: o.netnsDir });
    return { handle, recordError: undefined };
  } catch (e) {
    // Without the record another namespace's daemon never removes these pins (the safe side)
    // and status cannot name the netns directory: worth a message, not a refusal.
    return { handle, recordError: (e as Error).message.split('\n')[0] };
  }
}

export const openSockDestroy = (): SockDestroyer => loadSockDestroy();

/**
 * Destroy connected UDP sockets to `backends` in this process's network namespace and in every
 * namespace file in `netnsDir` (e.g. /run/netns, mounted into the DaemonSet). Returns how many.
 */
export function destroyUdpSocketsTo(destroyer: SockDestroyer, backends: readonly Endpoint[], netnsDir: string | undefined): number {
  const netns: (string | null)[] = [null, ...(netnsDir && existsSync(netnsDir) ? readdirSync(netnsDir).map((f) => join(netnsDir, f)) : [])];
  return destroyer.destroyUdpSockets(backends.map((b) => ({ addr: b.addr, port: b.port })), netns).length;
}

// What `nftproxy status` and `nftproxy cleanup` read from and do to the kernel, whatever mount
// namespace they run in (native/mount-view.ts finds the pin directory through the view the
// command was started from when its own hides it, as `ip netns exec` does).
//
// The attach points come from the kernel, not from a file: each pinned link's bpf_link_info
// gives its program and its cgroup's id, mapped to a path by walking the cgroup v2 hierarchy.
// Only what the kernel cannot know (the owner's network namespace, --bpf-netns-dir) is read
// from the record the daemon keeps beside the pins (native/loader.ts, PIN_RECORD).
import { existsSync, readdirSync } from 'node:fs';
import { type MountViews, cgroupPathById, locatePinDir, mountViews } from '../../native/mount-view.js';
import { type PinRecord, linkAttached, pinnedLinks, pinnedMapCounts, readPinRecord, removePinned } from '../../native/loader.js';

export interface BpfAttachment {
  /** the pin's name, e.g. link_npx_connect4 */
  readonly pin: string;
  /** the program the link runs (kernel name); null when unreadable */
  readonly program: string | null;
  /** the cgroup hook, as bpftool names it: connect4, sendmsg6, ... */
  readonly hook: string;
  readonly linkId: number;
  /** the cgroup's id; "0" when the link is pinned but no longer attached */
  readonly cgroupId: string;
  /** the cgroup's path in the first mount view that has it; null when none does */
  readonly cgroup: string | null;
}

export type BpfInspection =
  | { readonly kind: 'absent'; readonly pinDir: string; readonly where: readonly string[] }
  | { readonly kind: 'unreadable'; readonly pinDir: string; readonly where: readonly string[]; readonly reason: string }
  | {
      readonly kind: 'pinned';
      readonly pinDir: string;
      /** the path it was reached by (pinDir itself, or /proc/PID/root/pinDir) */
      readonly path: string;
      /** the mount view that has it, when not this process's own */
      readonly seenFrom: string | null;
      readonly attachments: readonly BpfAttachment[];
      readonly maps: Readonly<Record<string, number>>;
      readonly record: PinRecord;
    };

/** What is pinned at `pinDir`, and where its programs are attached. */
export function inspectBpf(pinDir: string, views: MountViews = mountViews()): BpfInspection {
  const at = locatePinDir(pinDir, views);
  if (at.kind === 'absent') return { kind: 'absent', pinDir, where: at.where };
  if (at.kind === 'unreadable') return { kind: 'unreadable', pinDir, where: at.where, reason: at.reason };
  const cgroups = new Map<bigint, string | null>();
  const pathOf = (id: bigint): string | null => {
    if (id === 0n) return null;
    if (!cgroups.has(id)) cgroups.set(id, cgroupPathById(id, views.views)?.path ?? null);
    return cgroups.get(id)!;
  };
  const attachments = pinnedLinks(at.path).map((l) => ({
    pin: l.pin, program: l.program, hook: l.hook, linkId: l.link.id, cgroupId: String(l.link.cgroupId), cgroup: pathOf(l.link.cgroupId),
  }));
  return {
    kind: 'pinned', pinDir, path: at.path, seenFrom: at.view.root === '' ? null : at.view.label,
    attachments, maps: pinnedMapCounts(at.path), record: readPinRecord(at.path),
  };
}

/**
 * Detach and unpin what `inspectBpf` found, then ask the kernel whether any of those links is
 * still attached (by link id: mount views do not matter to it). `left`: what is still in the
 * pin directory (pins of a kind this version does not know).
 */
export function removeInspected(found: Extract<BpfInspection, { kind: 'pinned' }>): { error: string | undefined; stillAttached: BpfAttachment[]; left: string[] } {
  let error: string | undefined;
  try {
    removePinned(found.path);
  } catch (e) {
    error = (e as Error).message.split('\n')[0];
  }
  let left: string[] = [];
  try {
    left = existsSync(found.path) ? readdirSync(found.path).sort() : [];
  } catch (e) {
    error ??= (e as Error).message;
  }
  return { error, stillAttached: found.attachments.filter((a) => linkAttached(a.linkId)), left };
}

// --bpf=off|auto|on, decided from where the daemon runs. Pure: the facts (network namespace,
// what is pinned) come in as values, src/daemon/bpf-path.ts acts on the answer.
//
// The socket load balancer's programs hang on a cgroup, not in a network namespace. On the
// cgroup v2 root (the default --bpf-cgroup) they rewrite connect() of every process on the
// machine, in every namespace, and stay there after the daemon stops (pinned, for a restart
// without a gap). That is right for a DaemonSet in the node's own network namespace
// (hostNetwork), whose services are the node's; anywhere else (a lab, a test, a cautious first
// try in `ip netns add`), the backends exist only inside that namespace and the whole host's
// connections to those ClusterIPs break (issue 14). So:
// - auto: on only in the host's initial network namespace; elsewhere off, with one line why;
// - on:   outside the initial namespace only with an explicit --bpf-cgroup (the cgroup of the
//         processes it is meant for), else a usage error: the flags ask for something that
//         would act on the whole host, which an operator fixes on the command line (exit 2);
// - off:  off.
// A namespace we cannot place (PID 1's unreadable, no fixed init inode) counts as "not the
// host's": the cost is the slower nft path, the alternative is the host's connect().
import type { NetnsPlace } from '../apply/bpf-kernel.js';
import { assertNever } from '../model/result.js';

export type BpfMode = 'off' | 'auto' | 'on';

export type BpfDecision =
  /** stay off; `reason` (auto only) is logged once */
  | { readonly kind: 'off'; readonly reason: string | undefined }
  /** load; `cgroup` undefined means the cgroup v2 root; `strict`: a failure stops the daemon */
  | { readonly kind: 'load'; readonly cgroup: string | undefined; readonly strict: boolean }
  /** the flags cannot be honoured here without acting on the whole host */
  | { readonly kind: 'usage-error'; readonly message: string };

const notHost = (p: Exclude<NetnsPlace, { kind: 'initial' }>): string =>
  p.kind === 'other' ? `this is not the host's network namespace (${p.self}; PID 1 is in ${p.host})` : `cannot tell whether this is the host's network namespace (${p.self}; ${p.reason})`;

export function decideBpf(mode: BpfMode, place: NetnsPlace, cgroupFlag: string | undefined): BpfDecision {
  switch (mode) {
    case 'off':
      return { kind: 'off', reason: undefined };
    case 'auto':
      if (place.kind === 'initial') return { kind: 'load', cgroup: cgroupFlag, strict: false };
      return {
        kind: 'off',
        reason: `${notHost(place)}: the socket load balancer rewrites connect() of every process in its cgroup (by default the cgroup v2 root, the whole host), whatever network namespace the process is in. To turn it on here: --bpf=on --bpf-cgroup <the cgroup of this namespace's processes>`,
      };
    case 'on':
      if (place.kind === 'initial' || cgroupFlag !== undefined) return { kind: 'load', cgroup: cgroupFlag, strict: true };
      return {
        kind: 'usage-error',
        message: `--bpf=on needs --bpf-cgroup here: ${notHost(place)}, and on the default cgroup (the cgroup v2 root) the programs would rewrite connect() for every process on the host. Give --bpf-cgroup the cgroup of the processes in this namespace, or use --bpf=auto or --bpf=off.`,
      };
    default:
      return assertNever(mode);
  }
}

/**
 * May a daemon (or `nftproxy cleanup`) in `place` remove, or take over, the pin set an earlier
 * run left? In the host's namespace, yes: the pin directory is the host's. Elsewhere only when
 * the pins record this very namespace as their owner. The pin directory lives in the mount
 * namespace, which `nsenter --net` and `ip netns exec` share with the host (the latter below
 * /sys only), so /sys/fs/bpf/nftproxy seen from a lab namespace is usually the HOST daemon's:
 * its links keep the host's ClusterIPs balanced and its maps are updated by that daemon.
 * Removing them would be acting on a host we do not own; pins without an owner record (an
 * older version) are treated the same way. Leftovers of this namespace's own --bpf=on run
 * are ours to remove: they would keep rewriting connect() from maps nobody updates.
 */
export function mayTouchPins(place: NetnsPlace, ownerNetns: string | null): { ok: true } | { ok: false; why: string } {
  if (place.kind === 'initial' || (place.self !== '' && ownerNetns === place.self)) return { ok: true };
  const owner = ownerNetns === null ? 'an unrecorded network namespace (pinned by an older nftproxy, or a run that stopped before recording it)' : `network namespace ${ownerNetns}`;
  return { ok: false, why: `they were pinned by the nftproxy of ${owner}, and ${notHost(place)}` };
}

// Is this process in the host's initial network namespace? The socket load balancer's hooks
// live on a cgroup, not in a network namespace: attached to the cgroup v2 root they rewrite
// connect() for every process on the machine, whatever namespace it is in. So where the
// daemon runs decides what `--bpf=auto` may do (src/daemon/bpf-mode.ts).
//
// Evidence, strongest first:
// - the kernel's fixed inode of the initial network namespace (uapi linux/nsfs.h,
//   NET_NS_INIT_INO, recent kernels): dynamically numbered namespaces start at 0xF0000000,
//   so a process whose namespace has this number is in the initial one, certainly;
// - the namespace of PID 1 (/proc/1/ns/net), as a DaemonSet with hostNetwork shares it.
//   Reading it needs ptrace access to PID 1; some sandboxes refuse even root. Then the
//   answer is `unknown`, which the policy treats as "not the host's".
import { statSync } from 'node:fs';

export const NET_NS_INIT_INO = 0xeffffff9n;

export type NetnsPlace =
  | { readonly kind: 'initial'; readonly self: string; readonly evidence: string }
  | { readonly kind: 'other'; readonly self: string; readonly host: string; readonly evidence: string }
  | { readonly kind: 'unknown'; readonly self: string; readonly reason: string };

/** `net:[4026532312]`: how /proc/PID/ns/net names a namespace (what `ls -l` shows). */
const netnsName = (ino: bigint): string => `net:[${ino}]`;

/** Where this process is, relative to the initial network namespace. `proc` is for tests. */
export function netnsPlace(proc = '/proc'): NetnsPlace {
  let self: bigint;
  try {
    self = statSync(`${proc}/self/ns/net`, { bigint: true }).ino;
  } catch (e) {
    // no /proc: nothing to compare, and nothing to claim pins with ('' owns nothing)
    return { kind: 'unknown', self: '', reason: `cannot read ${proc}/self/ns/net (${(e as NodeJS.ErrnoException).code ?? String(e)})` };
  }
  const name = netnsName(self);
  if (self === NET_NS_INIT_INO) return { kind: 'initial', self: name, evidence: 'the kernel\'s inode number of the initial network namespace' };
  let pid1: bigint;
  try {
    pid1 = statSync(`${proc}/1/ns/net`, { bigint: true }).ino;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    return { kind: 'unknown', self: name, reason: `cannot read ${proc}/1/ns/net (${code}) to compare with PID 1's network namespace` };
  }
  if (pid1 === self) return { kind: 'initial', self: name, evidence: 'the network namespace of PID 1' };
  return { kind: 'other', self: name, host: netnsName(pid1), evidence: `PID 1 is in ${netnsName(pid1)}` };
}

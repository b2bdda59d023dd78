// The BPF parts of `nftproxy status` and `nftproxy cleanup`. Both find the pins whatever
// namespace they run in (src/apply/bpf-inspect.ts), or say they cannot and fail; `cleanup`
// never reports success while a program it found stays attached.
import { type BpfAttachment, type BpfInspection, inspectBpf, removeInspected } from '../apply/bpf-inspect.js';
import { whereAmI } from '../apply/bpf-kernel.js';
import { mayTouchPins } from '../daemon/bpf-mode.js';

/** Exit status of status/cleanup when the BPF state could not be seen or removed. */
export const BPF_INCOMPLETE = 1;

export const BPF_VIEW_HELP = `
The BPF pins are looked up in this mount namespace, then in the one the command was started
from (\`ip netns exec\` hides /sys/fs/bpf), then in PID 1's. cleanup outside the host's network
namespace removes only pins that namespace's nftproxy made.

Exit codes: 0 ok, 1 the BPF pins could not be seen, or were left attached (the message says why).`;

const firstLine = (e: unknown): string => (e as Error).message.split('\n')[0]!;

/** cgroup path -> hooks, in pin order; a detached link under "(not attached)". */
function byCgroup(as: readonly BpfAttachment[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const a of as) {
    const where = a.cgroupId === '0' ? '(not attached)' : a.cgroup ?? `cgroup id ${a.cgroupId} (no such directory under the cgroup v2 mounts seen from here: removed, or outside this cgroup namespace)`;
    out.set(where, [...(out.get(where) ?? []), a.hook]);
  }
  return out;
}

const HINT = 'run it as root from a shell in the host\'s mount namespace (`nsenter --net=/run/netns/NAME` keeps it; `ip netns exec` works when started from such a shell)';

export interface BpfStatusSection {
  readonly json: Record<string, unknown>;
  readonly text: string;
  /** false: the pins could not be seen; status exits BPF_INCOMPLETE */
  readonly ok: boolean;
}

export function bpfStatusSection(pinDir: string): BpfStatusSection {
  let s: BpfInspection;
  try {
    s = inspectBpf(pinDir);
  } catch (e) {
    return { ok: false, json: { pinned: null, pinDir, error: firstLine(e) }, text: `bpf: cannot read ${pinDir}: ${firstLine(e)}\n` };
  }
  switch (s.kind) {
    case 'absent':
      return { ok: true, json: { pinned: false, pinDir, lookedIn: s.where }, text: `bpf: inactive (nothing pinned at ${pinDir}; ${s.where.join('; ')})\n` };
    case 'unreadable':
      return {
        ok: false,
        json: { pinned: null, pinDir, lookedIn: s.where, error: `cannot see ${pinDir}: ${s.reason}` },
        text: `bpf: cannot tell whether anything is pinned at ${pinDir}: ${s.where.join('; ')}. ${HINT}\n`,
      };
    case 'pinned': {
      const groups = byCgroup(s.attachments);
      const attached = s.attachments.filter((a) => a.cgroupId !== '0');
      const cgroups = [...new Set(attached.map((a) => a.cgroup ?? `id:${a.cgroupId}`))];
      const json = {
        pinned: true, pinDir, active: attached.length > 0, seenFrom: s.seenFrom,
        cgroups, netnsDir: s.record.netnsDir, ownerNetns: s.record.ownerNetns,
        attachments: s.attachments, links: s.attachments.map((a) => a.pin), maps: s.maps,
      };
      const lines = [
        `bpf: ${attached.length > 0 ? 'active' : 'pinned, not attached'}, pinned at ${pinDir}${s.seenFrom ? ` (seen in ${s.seenFrom})` : ''}`,
        ...[...groups].map(([cg, hooks]) => `  attached to cgroup ${cg}: ${hooks.join(' ')}`),
        `  UDP sockets to removed backends destroyed in: the daemon's network namespace${s.record.netnsDir ? ` and each namespace file in ${s.record.netnsDir}` : ''}`,
        `  pinned by the nftproxy of network namespace ${s.record.ownerNetns ?? '(not recorded)'}`,
        `  programs: ${s.attachments.map((a) => a.program ?? a.pin).join(', ') || 'none'}`,
        `  map entries: ${Object.entries(s.maps).map(([k, n]) => `${k} ${n}`).join(', ')}`,
      ];
      return { ok: true, json, text: lines.join('\n') + '\n' };
    }
  }
}

/** `nftproxy cleanup`'s BPF part: messages for stderr, and whether everything found is gone. */
export function bpfCleanup(pinDir: string): { messages: string[]; ok: boolean } {
  let s: BpfInspection;
  try {
    s = inspectBpf(pinDir);
  } catch (e) {
    return { ok: false, messages: [`nftproxy: cannot read the BPF pins at ${pinDir}: ${firstLine(e)}`] };
  }
  if (s.kind === 'absent') return { ok: true, messages: [] };
  if (s.kind === 'unreadable') {
    return { ok: false, messages: [`nftproxy: BPF programs NOT removed: cannot tell whether anything is pinned at ${pinDir}: ${s.where.join('; ')}. ${HINT}.`] };
  }
  const place = whereAmI();
  const may = mayTouchPins(place, s.record.ownerNetns);
  const attachedTo = [...byCgroup(s.attachments).keys()].join(', ');
  if (!may.ok) {
    return {
      ok: false,
      messages: [`nftproxy: BPF programs pinned at ${pinDir} (attached to ${attachedTo || 'nothing'}) left in place: ${may.why}. Run nftproxy cleanup in that network namespace (for the host's: from a host shell).`],
    };
  }
  let r: ReturnType<typeof removeInspected>;
  try {
    r = removeInspected(s);
  } catch (e) {
    // the kernel could not be asked whether the links are gone: not a success
    return { ok: false, messages: [`nftproxy: removing the BPF pins at ${pinDir}: ${firstLine(e)}; check with nftproxy status`] };
  }
  const messages: string[] = [];
  if (r.error) messages.push(`nftproxy: removing the BPF pins at ${pinDir} failed: ${r.error}`);
  if (r.stillAttached.length) messages.push(`nftproxy: BPF programs STILL ATTACHED after cleanup: ${[...byCgroup(r.stillAttached)].map(([cg, hooks]) => `${cg}: ${hooks.join(' ')}`).join('; ')}`);
  if (r.left.length) messages.push(`nftproxy: ${pinDir} still holds: ${r.left.join(', ')}`);
  if (messages.length) return { ok: false, messages };
  return { ok: true, messages: [`BPF programs detached${attachedTo ? ` from cgroup ${attachedTo}` : ''}, ${pinDir} unpinned${s.seenFrom ? ` (seen in ${s.seenFrom})` : ''}`] };
}

// --bpf=off|auto|on by where the daemon runs (src/daemon/bpf-mode.ts): the socket load
// balancer never acts on the whole host from a namespace that is not the host's.
import { describe, expect, it } from 'vitest';
import type { NetnsPlace } from '../../src/apply/bpf-kernel.js';
import { type BpfMode, decideBpf, mayTouchPins } from '../../src/daemon/bpf-mode.js';

const HOST: NetnsPlace = { kind: 'initial', self: 'net:[4026531833]', evidence: 'test' };
const LAB: NetnsPlace = { kind: 'other', self: 'net:[4026532300]', host: 'net:[4026531833]', evidence: 'test' };
const UNKNOWN: NetnsPlace = { kind: 'unknown', self: 'net:[4026532301]', reason: 'cannot read /proc/1/ns/net (EACCES)' };
const CG = '/sys/fs/cgroup/unified/lab';

describe('decideBpf', () => {
  it.each<{ name: string; mode: BpfMode; place: NetnsPlace; cgroup?: string; want: string }>([
    { name: 'auto in the host namespace loads on the root', mode: 'auto', place: HOST, want: 'load root' },
    { name: 'auto in the host namespace loads on the cgroup given', mode: 'auto', place: HOST, cgroup: CG, want: `load ${CG}` },
    { name: 'auto in a lab namespace stays off', mode: 'auto', place: LAB, want: 'off, says why' },
    { name: 'auto in a lab namespace stays off even with a cgroup', mode: 'auto', place: LAB, cgroup: CG, want: 'off, says why' },
    { name: 'auto where the namespace cannot be placed stays off', mode: 'auto', place: UNKNOWN, want: 'off, says why' },
    { name: 'on in the host namespace loads on the root, strictly', mode: 'on', place: HOST, want: 'load root strict' },
    { name: 'on in a lab namespace with a cgroup loads there, strictly', mode: 'on', place: LAB, cgroup: CG, want: `load ${CG} strict` },
    { name: 'on in a lab namespace without a cgroup is a usage error', mode: 'on', place: LAB, want: 'usage error' },
    { name: 'on where the namespace cannot be placed, without a cgroup: usage error', mode: 'on', place: UNKNOWN, want: 'usage error' },
    { name: 'off is off, silently', mode: 'off', place: HOST, want: 'off' },
    { name: 'off in a lab namespace is off, silently', mode: 'off', place: LAB, want: 'off' },
  ])('$name', ({ mode, place, cgroup, want }) => {
    const d = decideBpf(mode, place, cgroup);
    const got = d.kind === 'load' ? `load ${d.cgroup ?? 'root'}${d.strict ? ' strict' : ''}` : d.kind === 'off' ? (d.reason ? 'off, says why' : 'off') : 'usage error';
    expect(got).toBe(want);
  });

  it('the reasons name the namespace and what to do', () => {
    const off = decideBpf('auto', LAB, undefined);
    expect(off.kind === 'off' && off.reason).toMatch(/not the host's network namespace \(net:\[4026532300\]; PID 1 is in net:\[4026531833\]\).*--bpf=on --bpf-cgroup/);
    const refused = decideBpf('on', UNKNOWN, undefined);
    expect(refused.kind === 'usage-error' && refused.message).toMatch(/^--bpf=on needs --bpf-cgroup here: cannot tell whether .*EACCES.*Give --bpf-cgroup/);
  });
});

describe('mayTouchPins', () => {
  it.each<{ name: string; place: NetnsPlace; owner: string | null; want: boolean }>([
    { name: 'the host namespace removes any pin set', place: HOST, owner: LAB.self, want: true },
    { name: 'the host namespace removes an unrecorded pin set', place: HOST, owner: null, want: true },
    { name: 'a lab namespace removes its own', place: LAB, owner: LAB.self, want: true },
    { name: 'a lab namespace leaves the host daemon\'s alone', place: LAB, owner: HOST.self, want: false },
    { name: 'a lab namespace leaves an unrecorded pin set alone', place: LAB, owner: null, want: false },
    { name: 'an unplaced namespace leaves another\'s alone', place: UNKNOWN, owner: LAB.self, want: false },
    { name: 'an unplaced namespace removes its own', place: UNKNOWN, owner: UNKNOWN.self, want: true },
    { name: 'without /proc nothing is anyone\'s own', place: { kind: 'unknown', self: '', reason: 'no /proc' }, owner: '', want: false },
  ])('$name', ({ place, owner, want }) => {
    expect(mayTouchPins(place, owner).ok).toBe(want);
  });
});

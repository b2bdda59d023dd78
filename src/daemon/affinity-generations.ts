// Which generation of session-affinity memory each endpoint uses (see compile/affinity.ts).
// After every compile, an affinity endpoint that was in the rules before and is not now
// moves to its next generation: if it comes back (a readiness flap, a rollout reusing the
// address), its key is new, so no client is sent back to it from memory of the old one,
// which is what kube-proxy's deleting the endpoint's set gives.
//
// Memory: an endpoint absent for longer than the longest affinity timeout (1 day) has no
// remembered client left under any of its keys, so it is forgotten (back to generation 0).
import type { CompiledFamily } from '../compile/compile.js';
import type { GenerationOf } from '../compile/affinity.js';

/** The API's maximum sessionAffinityConfig.clientIP.timeoutSeconds. */
const MAX_TIMEOUT_MS = 86_400_000;

export class AffinityGenerations {
  private readonly gone = new Map<string, { generation: number; since: number }>();
  /** the affinity endpoints each service's rules use now */
  private live = new Map<string, ReadonlySet<string>>();
  private lastSweep = -Infinity;

  readonly generationOf: GenerationOf = (eid) => this.gone.get(eid)?.generation ?? 0;

  /**
   * Record the endpoints the compiled rules use now, for the services that changed ('all':
   * every service); nowMs: a monotonic clock. An endpoint's id names its service port, so an
   * endpoint can only leave the rules of a service that changed.
   */
  settle(parts: readonly CompiledFamily[], nowMs: number, changed: ReadonlySet<string> | 'all' = 'all'): void {
    const refs = changed === 'all' ? new Set([...this.live.keys(), ...parts.flatMap((f) => [...f.services.keys()])]) : changed;
    for (const ref of refs) {
      const now = new Set<string>();
      for (const f of parts) for (const r of f.services.get(ref) ?? []) if (r) for (const [eid] of r.affinity) now.add(eid);
      for (const eid of this.live.get(ref) ?? []) {
        if (!now.has(eid)) this.gone.set(eid, { generation: this.generationOf(eid) + 1, since: nowMs });
      }
      if (now.size) this.live.set(ref, now); else this.live.delete(ref);
    }
    // forgetting is not urgent: at most once a minute, it walks only what went away
    if (nowMs - this.lastSweep < 60_000) return;
    this.lastSweep = nowMs;
    const inUse = (eid: string): boolean => this.live.get(eid.split('/').slice(0, 2).join('/'))?.has(eid) ?? false;
    for (const [eid, g] of this.gone) if (nowMs - g.since > MAX_TIMEOUT_MS && !inUse(eid)) this.gone.delete(eid);
  }
}

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
  private live = new Set<string>();

  readonly generationOf: GenerationOf = (eid) => this.gone.get(eid)?.generation ?? 0;

  /** Record the endpoints the compiled rules use now; nowMs: a monotonic clock. */
  settle(parts: readonly CompiledFamily[], nowMs: number): void {
    const now = new Set<string>();
    for (const f of parts) {
      for (const rules of f.services.values()) {
        for (const r of rules) if (r) for (const [eid] of r.affinity) now.add(eid);
      }
    }
    for (const eid of this.live) {
      if (!now.has(eid)) this.gone.set(eid, { generation: this.generationOf(eid) + 1, since: nowMs });
    }
    for (const [eid, g] of this.gone) if (!now.has(eid) && nowMs - g.since > MAX_TIMEOUT_MS) this.gone.delete(eid);
    this.live = now;
  }
}

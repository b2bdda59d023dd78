// After every successful sync: UDP conntrack cleanup as kube-proxy does it (see
// src/apply/conntrack-plan.ts). Remembers the last state it cleaned for, and only moves on
// when every deletion worked, so a failed cleanup is planned again after the next sync.
import type { Logger } from 'pino';
import { type RunConntrack, cleanConntrack, runConntrackHere } from '../apply/conntrack.js';
import { planConntrackCleanup } from '../apply/conntrack-plan.js';
import type { ServicePortInfo } from '../ir/types.js';

export class ConntrackHygiene {
  private prev: readonly ServicePortInfo[] | undefined;
  deletedTotal = 0;

  constructor(private readonly log: Logger, private readonly run: RunConntrack = runConntrackHere) {}

  async afterSync(next: readonly ServicePortInfo[]): Promise<void> {
    const filters = planConntrackCleanup(this.prev, next);
    if (filters.length === 0) { this.prev = next; return; }
    const start = performance.now();
    const r = await cleanConntrack(filters, this.run);
    this.deletedTotal += r.deleted;
    if (r.errors.length === 0) this.prev = next;
    const fields = { filters: filters.length, deleted: r.deleted, durationMs: Math.round(performance.now() - start) };
    if (r.errors.length) this.log.warn({ ...fields, errors: r.errors.slice(0, 5) }, 'conntrack cleanup incomplete; retried after the next sync');
    else if (r.deleted > 0) this.log.info(fields, 'stale UDP conntrack entries deleted');
    else this.log.debug(fields, 'conntrack cleanup: nothing stale');
  }
}

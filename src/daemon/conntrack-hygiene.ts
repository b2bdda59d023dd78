// After every successful sync: UDP conntrack cleanup as kube-proxy does it (see
// src/apply/conntrack-plan.ts). Remembers the last state it cleaned for, and only moves on
// when every deletion worked, so a failed cleanup is planned again after the next sync.
import type { Logger } from 'pino';
import { type ConntrackTable, cleanConntrack } from '../apply/conntrack.js';
import { conntrackPortKey, conntrackSignature, planConntrackChanges, udpVipsOn } from '../apply/conntrack-plan.js';
import type { ServicePortInfo } from '../ir/types.js';
import type { IP } from '../model/ip.js';
import type { PortChanges } from './port-index.js';

export class ConntrackHygiene {
  /** each port's signature when its flows were last judged; undefined before the first cleanup */
  private known: Map<string, string> | undefined;
  /** ports whose cleanup failed: judged again with the next sync's */
  private retry = new Map<string, ServicePortInfo>();
  deletedTotal = 0;

  constructor(private readonly log: Logger, private readonly table: ConntrackTable) {}

  /**
   * After a sync: `changed` the ports of the services it touched as they are now ('all': every
   * port, given by `all`). Only ports whose destinations or serving endpoints changed are
   * cleaned; the UDP VIPs a NodePort filter leaves alone come from `all` (read only then).
   */
  afterSync(changes: PortChanges | 'all', all: () => readonly ServicePortInfo[]): void {
    const changed = changes === 'all' ? 'all' : changes.after;
    const ports = changed === 'all' ? all() : [...changed, ...[...this.retry.values()].filter((r) => !changed.some((c) => c.id === r.id && c.family === r.family))];
    // ports that are gone are forgotten: a service that comes back is judged afresh
    if (changes !== 'all' && this.known) for (const p of changes.before) if (!changes.after.some((a) => a.id === p.id && a.family === p.family)) this.known.delete(conntrackPortKey(p));
    let udpVips: ((f: ServicePortInfo['family'], port: number) => readonly IP[]) | undefined;
    const filters = planConntrackChanges(this.known, ports, (f, port) => (udpVips ??= udpVipsOn(all()))(f, port));
    const remember = (): void => {
      this.known ??= new Map();
      if (changed === 'all') this.known.clear();
      for (const p of ports) this.known.set(conntrackPortKey(p), conntrackSignature(p));
      this.retry.clear();
    };
    if (filters.length === 0) { remember(); return; }
    const start = performance.now();
    const r = cleanConntrack(filters, this.table);
    this.deletedTotal += r.deleted;
    if (r.errors.length === 0) remember();
    else for (const p of ports) this.retry.set(conntrackPortKey(p), p);
    const fields = { filters: filters.length, deleted: r.deleted, durationMs: Math.round(performance.now() - start) };
    if (r.errors.length) this.log.warn({ ...fields, errors: r.errors.slice(0, 5) }, 'conntrack cleanup incomplete; retried after the next sync');
    else if (r.deleted > 0) this.log.info(fields, 'stale UDP conntrack entries deleted');
    else this.log.debug(fields, 'conntrack cleanup: nothing stale');
  }
}

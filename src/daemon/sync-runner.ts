// When to sync, as kube-proxy's bounded-frequency runner decides it:
// - the first change after a quiet period syncs at once;
// - a burst is coalesced: at most one sync per minInterval, the last one sees every change;
// - a sync never overlaps another; a change during a sync queues exactly one more;
// - every period a full sync runs even without changes;
// - a failed sync is retried after minInterval, then with exponential backoff up to maxBackoff.
// 'drift': another process changed nftproxy's tables (apply/netlink/monitor.ts): a full sync.
export type SyncReason = 'start' | 'change' | 'periodic' | 'retry' | 'drift';

/** Reasons that replace the tables whole. */
export const isFullReason = (r: SyncReason): boolean => r === 'start' || r === 'periodic' || r === 'drift';

export interface SyncRunnerOptions {
  readonly minIntervalMs: number;
  readonly periodMs: number;
  readonly maxBackoffMs?: number;
}

export class SyncRunner {
  private lastStart = -Infinity;
  /** the scheduled run, if any (a timeout, or an immediate when nothing holds it back) */
  private timer: { cancel(): void } | undefined;
  private periodic: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private pending: SyncReason | undefined;
  private failures = 0;
  private stopped = false;
  /** when the oldest change not yet applied was queued (health: kube-proxy's lastQueued) */
  queuedSince: number | undefined;
  /** the same moment by performance.now(), handed to the sync: its log says event -> kernel ack */
  private queuedAt: number | undefined;

  constructor(
    /** `queuedAt`: performance.now() when the oldest change this sync includes was queued */
    private readonly sync: (reason: SyncReason, queuedAt: number | undefined) => Promise<boolean>,
    private readonly opts: SyncRunnerOptions,
    private readonly now: () => number = Date.now,
  ) {}

  start(): void {
    this.queue('start');
    this.armPeriodic();
  }

  /** Something changed: sync soon. */
  request(): void {
    this.queue('change');
  }

  /** The tables changed under us: a full sync soon (within minInterval, as any sync). */
  requestFull(reason: 'drift'): void {
    this.queue(reason);
  }

  /** Stop scheduling; resolves when a sync in flight has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    if (this.periodic) clearTimeout(this.periodic);
    await this.running;
  }

  get consecutiveFailures(): number {
    return this.failures;
  }

  private queue(reason: SyncReason): void {
    if (this.stopped) return;
    this.queuedSince ??= this.now();
    this.queuedAt ??= performance.now();
    // A periodic or start request upgrades a queued change: it must not be lost.
    this.pending = this.pending === undefined || this.pending === 'change' ? reason : this.pending;
    if (this.running || this.timer) return;
    this.schedule(Math.max(0, this.lastStart + this.opts.minIntervalMs - this.now()));
  }

  private schedule(delayMs: number): void {
    const run = (): void => {
      this.timer = undefined;
      void this.runOnce();
    };
    // Nothing to wait for: the next turn of the event loop. setTimeout(0) waits at least 1 ms,
    // a quarter of a one-endpoint sync's whole event -> ack.
    if (delayMs <= 0) {
      const h = setImmediate(run);
      this.timer = { cancel: () => clearImmediate(h) };
    } else {
      const h = setTimeout(run, delayMs);
      this.timer = { cancel: () => clearTimeout(h) };
    }
  }

  private armPeriodic(): void {
    if (this.stopped) return;
    this.periodic = setTimeout(() => {
      this.queue('periodic');
      this.armPeriodic();
    }, this.opts.periodMs);
    this.periodic.unref?.();
  }

  private async runOnce(): Promise<void> {
    if (this.stopped || this.pending === undefined) return;
    const reason = this.failures > 0 && this.pending === 'change' ? 'retry' : this.pending;
    this.pending = undefined;
    const queuedSince = this.queuedSince, queuedAt = this.queuedAt;
    this.queuedSince = undefined;
    this.queuedAt = undefined;
    this.lastStart = this.now();
    let ok = false;
    this.running = (async () => {
      try {
        ok = await this.sync(reason, queuedAt);
      } catch {
        ok = false;
      }
    })();
    await this.running;
    this.running = undefined;
    if (this.stopped) return;
    if (!ok) {
      this.failures++;
      this.queuedSince ??= queuedSince;
      this.queuedAt ??= queuedAt;
      this.pending ??= isFullReason(reason) ? reason : 'change';
      const backoff = Math.min(this.opts.maxBackoffMs ?? 60_000, this.opts.minIntervalMs * 2 ** (this.failures - 1));
      this.schedule(Math.max(backoff, this.opts.minIntervalMs, 100));
      return;
    }
    this.failures = 0;
    if (this.pending !== undefined) this.schedule(Math.max(0, this.lastStart + this.opts.minIntervalMs - this.now()));
  }
}

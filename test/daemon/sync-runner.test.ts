// When syncs happen: kube-proxy's bounded-frequency rules, on a fake clock.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type SyncReason, SyncRunner } from '../../src/daemon/sync-runner.js';

describe('SyncRunner', () => {
  let runs: { at: number; reason: SyncReason }[];
  let queued: (number | undefined)[];
  let results: boolean[];
  let syncMs: number;
  const make = (minIntervalMs = 1000, periodMs = 3_600_000): SyncRunner =>
    new SyncRunner(async (reason, queuedAt) => {
      runs.push({ at: Date.now(), reason });
      queued.push(queuedAt);
      if (syncMs) await new Promise((r) => setTimeout(r, syncMs));
      return results.shift() ?? true;
    }, { minIntervalMs, periodMs, maxBackoffMs: 8000 });

  beforeEach(() => { vi.useFakeTimers({ now: 0 }); runs = []; queued = []; results = []; syncMs = 0; });
  afterEach(() => { vi.useRealTimers(); });

  it('syncs at start, then the first change after a quiet period at once', async () => {
    const r = make();
    r.start();
    await vi.advanceTimersByTimeAsync(5000);
    r.request();
    await vi.advanceTimersByTimeAsync(0);
    expect(runs).toEqual([{ at: 0, reason: 'start' }, { at: 5000, reason: 'change' }]);
    await r.stop();
  });

  it('coalesces a burst into one sync per min interval', async () => {
    const r = make();
    r.start();
    await vi.advanceTimersByTimeAsync(10);
    for (let i = 0; i < 50; i++) { r.request(); await vi.advanceTimersByTimeAsync(15); }
    await vi.advanceTimersByTimeAsync(3000);
    expect(runs.map((x) => x.at)).toEqual([0, 1000]);
    await r.stop();
  });

  it('a change during a sync queues exactly one more, min interval after the last start', async () => {
    syncMs = 300;
    const r = make();
    r.start();
    await vi.advanceTimersByTimeAsync(100);
    r.request(); r.request();
    await vi.advanceTimersByTimeAsync(5000);
    expect(runs.map((x) => [x.at, x.reason])).toEqual([[0, 'start'], [1000, 'change']]);
    await r.stop();
  });

  it('retries a failed sync with exponential backoff, keeping a start sync full', async () => {
    results = [false, false, false, true];
    const r = make();
    r.start();
    await vi.advanceTimersByTimeAsync(20_000);
    expect(runs.map((x) => [x.at, x.reason])).toEqual([[0, 'start'], [1000, 'start'], [3000, 'start'], [7000, 'start']]);
    expect(r.consecutiveFailures).toBe(0);
    await r.stop();
  });

  it('runs a periodic sync without changes', async () => {
    const r = make(1000, 60_000);
    r.start();
    await vi.advanceTimersByTimeAsync(130_000);
    // (Node fires a 0 ms timeout set inside another timer's callback 1 ms later.)
    expect(runs.map((x) => [Math.round(x.at / 10) * 10, x.reason])).toEqual([[0, 'start'], [60_000, 'periodic'], [120_000, 'periodic']]);
    await r.stop();
  });

  it('remembers since when an update waits (health), cleared by a successful sync', async () => {
    const r = make();
    r.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(r.queuedSince).toBeUndefined();
    r.request();
    expect(r.queuedSince).toBe(10);
    await vi.advanceTimersByTimeAsync(2000);
    expect(r.queuedSince).toBeUndefined();
    await r.stop();
  });

  // What the synced log line's eventToAckMs counts from (performance.now(), faked here with Date).
  it('hands each sync the time its oldest change was queued, kept across a failed attempt', async () => {
    results = [true, true, false, true];
    const t0 = performance.now();
    const r = make();
    r.start();
    await vi.advanceTimersByTimeAsync(5000);
    r.request();
    await vi.advanceTimersByTimeAsync(10);
    r.request(); // within the min interval: waits, and joins a later change
    await vi.advanceTimersByTimeAsync(300);
    r.request();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(runs.map((x) => [x.at, x.reason])).toEqual([[0, 'start'], [5000, 'change'], [6000, 'change'], [7000, 'retry']]);
    // the start sync counts from start(); the throttled sync and its retry from the first of the two later changes
    expect(queued.map((q) => (q === undefined ? q : q - t0))).toEqual([0, 5000, 5010, 5010]);
    await r.stop();
  });

  it('stop waits for the sync in flight and schedules nothing more', async () => {
    syncMs = 500;
    const r = make();
    r.start();
    await vi.advanceTimersByTimeAsync(10);
    const stopped = r.stop();
    r.request();
    await vi.advanceTimersByTimeAsync(5000);
    await stopped;
    expect(runs).toHaveLength(1);
  });
});

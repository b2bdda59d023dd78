// The task list: every phase and step is printed as it starts and ends, with a bar of steps
// done over steps planned (each phase re-plans its share when it knows more, e.g. after the
// budget skipped a slow loader) and the elapsed time. Works on a terminal and in a log file.
import { fmtDur } from './stats.js';

export class Progress {
  private readonly phases = new Map<string, { planned: number; done: number }>();
  private current = '';
  private readonly t0 = performance.now();
  constructor(private readonly out: (s: string) => void = (s) => process.stdout.write(s)) {}

  elapsedSec(): number { return (performance.now() - this.t0) / 1000; }

  /** Sets how many steps a phase is expected to take. */
  allot(phase: string, steps: number): void {
    const p = this.phases.get(phase) ?? { planned: 0, done: 0 };
    p.planned = Math.max(p.done, steps);
    this.phases.set(phase, p);
  }

  /** Adjusts the current phase's plan by `delta` steps. */
  replan(delta: number): void {
    const p = this.phases.get(this.current);
    if (p) p.planned = Math.max(p.done, p.planned + delta);
  }

  /** Prints the plan: each phase and its expected steps. */
  printPlan(titles: Record<string, string>): void {
    this.out('\nTask list:\n');
    for (const [id, p] of this.phases) this.out(`  [ ] ${titles[id] ?? id} (${p.planned} steps)\n`);
  }

  phase(id: string, title: string, detail?: string): void {
    this.endPhase();
    this.current = id;
    if (!this.phases.has(id)) this.phases.set(id, { planned: 0, done: 0 });
    this.out(`\n== ${title}${detail ? ` — ${detail}` : ''}\n`);
  }

  /** The current phase is over: its plan becomes what it did. */
  endPhase(): void {
    const p = this.phases.get(this.current);
    if (p) p.planned = p.done;
  }

  private tick(): void {
    const p = this.phases.get(this.current);
    if (p) { p.done++; if (p.planned < p.done) p.planned = p.done; }
  }

  private bar(): string {
    let done = 0, planned = 0;
    for (const p of this.phases.values()) { done += p.done; planned += Math.max(p.planned, p.done); }
    const width = 20;
    const fill = planned ? Math.round((Math.min(1, done / planned)) * width) : 0;
    return `[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${String(done).padStart(3)}/${String(planned).padEnd(3)} ${fmtDur(this.elapsedSec())}`;
  }

  /** One step: prints "✓ label: result (seconds)" or "✗ label: error". */
  async step<T>(label: string, fn: () => Promise<T>, describe: (r: T) => string = () => 'ok'): Promise<T> {
    const t = performance.now();
    try {
      const r = await fn();
      this.tick();
      this.out(`${this.bar()}  ✓ ${label}: ${describe(r)} (${((performance.now() - t) / 1000).toFixed(1)} s)\n`);
      return r;
    } catch (e) {
      this.tick();
      this.out(`${this.bar()}  ✗ ${label}: ${(e as Error).message.split('\n')[0]}\n`);
      throw e;
    }
  }

  note(text: string): void { this.out(`${' '.repeat(38)}· ${text}\n`); }

  skip(label: string, why: string): void {
    this.out(`${' '.repeat(38)}– ${label}: skipped (${why})\n`);
  }
}

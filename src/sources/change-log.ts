// What a source changed, by version, for changesSince: a bounded log its one consumer (the
// daemon's sync) reads from the version it last took in. Shared by the manifest watcher and
// the API informers.

export class ChangeLog<T> {
  /** changes after version `from`, oldest first */
  private readonly entries: { readonly version: number; readonly items: readonly T[] }[] = [];
  private from = 0;
  private count = 0;

  /** `max`: changes remembered; beyond them the oldest are forgotten and the consumer compares snapshots */
  constructor(private readonly max: number) {}

  /** Nothing before `version` will be asked for (the first snapshot is taken whole). */
  startAt(version: number): void {
    this.entries.length = 0;
    this.count = 0;
    this.from = version;
  }

  add(version: number, items: readonly T[]): void {
    this.entries.push({ version, items });
    this.count += items.length;
    while (this.count > this.max && this.entries.length > 0) {
      const e = this.entries.shift()!;
      this.count -= e.items.length;
      this.from = e.version;
    }
  }

  /**
   * The changes after version `since`; undefined when not known (no `since`, or older than
   * what is remembered). What the consumer has seen (versions up to `since`) is forgotten.
   */
  since(since: number | undefined): T[] | undefined {
    if (since === undefined || since < this.from) return undefined;
    while (this.entries.length > 0 && this.entries[0]!.version <= since) this.count -= this.entries.shift()!.items.length;
    this.from = Math.max(this.from, since);
    const out: T[] = [];
    for (const e of this.entries) for (const c of e.items) out.push(c);
    return out;
  }
}

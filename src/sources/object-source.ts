// What every source (manifest files, the Kubernetes API) offers the daemon: the objects as
// they stand now, and its lifecycle. The daemon pulls a snapshot when it syncs; a source only
// says "changed", so a burst of events costs one snapshot per sync, not one per event.
import type { SourceChange, SourceObject } from '../model/build-model.js';

export interface ObjectSource {
  snapshot(): readonly SourceObject[];
  /**
   * Optional: the source's version now and what changed since version `since` (a version an
   * earlier call returned). `changes` undefined when the source cannot say (no `since`, or it
   * no longer remembers that far back): the caller then compares snapshots.
   */
  changesSince?(since: number | undefined): SourceDelta;
}

export interface SourceDelta {
  readonly version: number;
  readonly changes: readonly SourceChange[] | undefined;
}

export interface DaemonSource extends ObjectSource {
  /** resolves once the source holds a complete first view */
  start(): Promise<void>;
  stop(): void | Promise<void>;
  /** API sources: watch restarts so far (metrics) */
  status?(): { readonly restarts: number };
}

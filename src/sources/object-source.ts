// What every source (manifest files, the Kubernetes API) offers the daemon: the objects as
// they stand now, and its lifecycle. The daemon pulls a snapshot when it syncs; a source only
// says "changed", so a burst of events costs one snapshot per sync, not one per event.
import type { SourceObject } from '../model/build-model.js';

export interface ObjectSource {
  snapshot(): readonly SourceObject[];
}

export interface DaemonSource extends ObjectSource {
  /** resolves once the source holds a complete first view */
  start(): Promise<void>;
  stop(): void | Promise<void>;
  /** API sources: watch restarts so far (metrics) */
  status?(): { readonly restarts: number };
}

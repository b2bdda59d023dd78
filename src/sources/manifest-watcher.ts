// A directory of manifests as a live source for `nftproxy run --manifests DIR`.
//
// Every file keeps its last good content: a file that is half-written, does not parse, or
// holds an object nftproxy refuses is logged and ignored until it is fixed, so an editor
// saving in two steps never takes services away.
//
// What says when to look: one inotify watch per directory (fs.watch, not recursive), and a
// slow stat-only poll behind it. Node 20's recursive fs.watch on Linux watches each file by
// inode and loses a file once it is replaced by a rename (measured: 3 events for 20 renames
// over one file), which is how editors, kubectl-based tools and config management write.
// A directory's watch sees every entry created, written, renamed or removed in it, whatever
// inode the entry has. Each scan re-arms: a directory created after start gets its watch, a
// removed one loses it, and one replaced in place (a new inode under the same path) is
// watched afresh. The poll catches what inotify cannot see: a symlinked file whose target
// lies outside the tree changes, a network filesystem.
import { type FSWatcher, watch } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { SourceChange, SourceObject } from '../model/build-model.js';
import type { SourceDelta } from './object-source.js';
import { ChangeLog } from './change-log.js';
import { buildModel } from '../model/build-model.js';
import { formatDiagnostic } from '../model/diagnostic.js';
import { formatManifestError, listManifestTree, parseManifest } from './manifests.js';

interface FileState {
  /** stat signature of the content last read (good or bad), to read each version once */
  readonly seen: string;
  /** objects of the last version that was good; undefined if no version ever was */
  readonly good: readonly SourceObject[] | undefined;
}

export interface WatchLog {
  info(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface ManifestWatcherOptions {
  readonly pollMs?: number;
  readonly debounceMs?: number;
}

/** What made a scan happen: a directory's watch reported something, or the poll came round. */
type Trigger = 'watch' | 'poll';

interface DirWatch {
  readonly watcher: FSWatcher;
  /** the directory's inode when armed: another inode under the path needs a new watch */
  readonly ino: number;
}

export class ManifestWatcher {
  private files = new Map<string, FileState>();
  /** snapshot(), until a file's good version changes */
  private objects: readonly SourceObject[] | undefined;
  /** bumped by every change of a file's good version (changesSince) */
  private version = 0;
  /** what changesSince can tell */
  private readonly logged = new ChangeLog<SourceChange>(MAX_LOGGED);
  private readonly dirs = new Map<string, DirWatch>();
  private poll: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private triggers = new Set<Trigger>();
  private scanning: Promise<void> = Promise.resolve();
  private started = false;
  private stopped = false;
  /** errors of the current version of each bad file (for status and tests) */
  readonly badFiles = new Map<string, string>();

  constructor(
    private readonly root: string,
    private readonly onChange: () => void,
    private readonly log: WatchLog,
    private readonly opts: ManifestWatcherOptions = {},
  ) {}

  /** Reads everything once; throws when the root itself cannot be read. */
  async start(): Promise<void> {
    const listed = await listManifestTree(this.root);
    if (!listed.ok) throw new Error(formatManifestError(listed.error));
    // Watches first, then the first read: a change in between is an event, not a miss.
    await this.watchDirs(this.dirsToWatch(listed.value.dirs));
    // In the scan chain, so an event during the first read waits for it.
    this.scanning = this.rescan(new Set());
    await this.scanning;
    this.started = true;
    this.poll = setInterval(() => this.kick('poll'), this.opts.pollMs ?? 5_000);
    this.poll.unref();
  }

  stop(): void {
    this.stopped = true;
    for (const d of this.dirs.values()) d.watcher.close();
    this.dirs.clear();
    if (this.poll) clearInterval(this.poll);
    if (this.debounce) clearTimeout(this.debounce);
  }

  /**
   * Every object of every file's last good version, in file order. Kept until a file's good
   * version changes: a sync after one small file changed copies the object list once, and a
   * sync with nothing new (a periodic one) copies nothing.
   */
  snapshot(): readonly SourceObject[] {
    if (this.objects) return this.objects;
    const out: SourceObject[] = [];
    for (const f of [...this.files.keys()].sort()) for (const o of this.files.get(f)!.good ?? []) out.push(o);
    this.objects = out;
    return out;
  }

  /**
   * What changed since version `since` (as an earlier call returned it): the objects of each
   * file whose good version changed, the old ones as `before`, the new as `after`. So a sync
   * after one small file changed reads that file's objects, not the directory's. For one
   * consumer (the daemon's sync): what it has seen (versions up to `since`) is forgotten.
   */
  changesSince(since: number | undefined): SourceDelta {
    return { version: this.version, changes: this.logged.since(since) };
  }

  /** A file's good version changed from `before` to `after` (undefined: none). */
  private record(before: readonly SourceObject[] | undefined, after: readonly SourceObject[] | undefined): void {
    this.objects = undefined;
    this.version++;
    // The first read is the first snapshot: nobody asks what changed before it.
    if (!this.started) { this.logged.startAt(this.version); return; }
    const changes: SourceChange[] = [];
    for (const o of before ?? []) changes.push({ before: o });
    for (const o of after ?? []) changes.push({ after: o });
    this.logged.add(this.version, changes);
  }

  /** The directories watched now (for tests and status). */
  watchedDirs(): string[] {
    return [...this.dirs.keys()].sort();
  }

  private kick(by: Trigger): void {
    if (this.stopped) return;
    this.triggers.add(by);
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      const triggers = this.triggers;
      this.triggers = new Set();
      this.scanning = this.scanning.then(() => this.rescan(triggers)).catch((e) => this.log.error('reading manifests failed', { err: String(e) }));
    }, this.opts.debounceMs ?? 30);
  }

  /** A file root is watched through its directory: the file's own inode changes on every rename. */
  private dirsToWatch(dirs: readonly string[]): string[] {
    return dirs.length > 0 ? [...dirs] : [dirname(this.root)];
  }

  /** Arms a watch on each directory not watched yet (or replaced), drops the others'. True if one was armed. */
  private async watchDirs(want: readonly string[]): Promise<boolean> {
    const keep = new Set(want);
    for (const [dir, d] of this.dirs) {
      if (keep.has(dir)) continue;
      d.watcher.close();
      this.dirs.delete(dir);
    }
    let armed = false;
    for (const dir of want) {
      let ino: number;
      try {
        ino = (await stat(dir)).ino;
      } catch {
        continue; // gone since the listing: the next scan drops it
      }
      const had = this.dirs.get(dir);
      if (had?.ino === ino) continue;
      had?.watcher.close();
      this.dirs.delete(dir);
      if (this.stopped) return armed;
      let watcher: FSWatcher;
      try {
        watcher = watch(dir, () => this.kick('watch'));
      } catch (e) {
        this.log.error('watching a manifest directory failed; polling covers it', { dir, err: String(e) });
        continue;
      }
      watcher.on('error', (e) => {
        this.log.error('watching a manifest directory failed; polling covers it', { dir, err: String(e) });
        watcher.close();
        if (this.dirs.get(dir)?.watcher === watcher) this.dirs.delete(dir);
      });
      this.dirs.set(dir, { watcher, ino });
      armed = true;
    }
    return armed;
  }

  private async rescan(triggers: ReadonlySet<Trigger>): Promise<void> {
    const listed = await listManifestTree(this.root);
    if (!listed.ok) {
      this.log.error('manifest directory unreadable; keeping the last good state', { error: formatManifestError(listed.error) });
      return;
    }
    // A directory that appeared after its parent was read for this scan may already hold
    // files this listing did not see: once its watch is armed, look again.
    if ((await this.watchDirs(this.dirsToWatch(listed.value.dirs))) && this.started) this.kick('watch');
    const by = triggers.has('watch') ? 'watch' : 'poll';
    let changed = false;
    const present = new Set(listed.value.files);
    for (const f of [...this.files.keys()]) {
      if (present.has(f)) continue;
      const gone = this.files.get(f)!.good;
      if (gone?.length) changed = true;
      this.files.delete(f);
      this.record(gone, undefined);
      this.badFiles.delete(f);
      this.log.info('manifest removed', { file: f, by });
    }
    for (const f of listed.value.files) {
      let sig: string;
      try {
        const st = await stat(f);
        sig = `${st.ino}:${st.size}:${st.mtimeMs}`;
      } catch {
        continue; // removed between listing and stat: the next scan drops it
      }
      const prev = this.files.get(f);
      if (prev?.seen === sig) continue;
      const result = await this.readGood(f);
      if (result.ok) {
        this.files.set(f, { seen: sig, good: result.objects });
        this.record(prev?.good, result.objects);
        if (this.badFiles.delete(f)) this.log.info('manifest fixed', { file: f, by });
        else if (this.started) this.log.info('manifest changed', { file: f, by });
        changed = true;
      } else {
        this.files.set(f, { seen: sig, good: prev?.good });
        this.badFiles.set(f, result.error);
        this.log.error('manifest rejected; keeping its last good version', { file: f, error: result.error, kept: prev?.good !== undefined });
      }
    }
    // The first read is the first snapshot, not a change (as for the API source).
    if (changed && this.started && !this.stopped) this.onChange();
  }

  private async readGood(file: string): Promise<{ ok: true; objects: SourceObject[] } | { ok: false; error: string }> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      return { ok: false, error: `${file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` };
    }
    const parsed = parseManifest(text, file);
    if (!parsed.ok) return { ok: false, error: formatManifestError(parsed.error) };
    // An object the model refuses on its own (not a conflict with another file) means the
    // file is not finished or not right: keep the version that was.
    const own = buildModel(parsed.value).diagnostics.filter((d) => d.code !== 'nodeport-conflict' && d.code !== 'address-conflict' && d.code !== 'duplicate-object');
    if (own.length) return { ok: false, error: own.map((d) => `${file}: ${formatDiagnostic(d)}`).join('; ') };
    return { ok: true, objects: parsed.value };
  }
}

/** Changes remembered for changesSince; more than the model folds in one by one (2,000). */
const MAX_LOGGED = 4096;

// Manifest files -> raw objects. YAML or JSON, multi-document, `kind: List` (what
// `kubectl get svc,endpointslices,nodes -A -o yaml` prints); directories recursively.
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LineCounter, parseAllDocuments } from 'yaml';
import type { SourceObject } from '../model/build-model.js';
import { type Result, ok, err } from '../model/result.js';

export interface ManifestError {
  readonly code: 'UNREADABLE' | 'SYNTAX';
  readonly file: string;
  readonly line?: number;
  readonly message: string;
}

export const formatManifestError = (e: ManifestError): string => `${e.file}${e.line !== undefined ? `:${e.line}` : ''}: ${e.message}`;

const MANIFEST = /\.(ya?ml|json)$/i;

export async function listManifestFiles(path: string): Promise<Result<string[], ManifestError>> {
  const tree = await listManifestTree(path);
  return tree.ok ? ok(tree.value.files) : tree;
}

export interface ManifestTree {
  /** manifest files, sorted per directory, depth first */
  readonly files: string[];
  /** the directories read to find them (none when `path` is a file) */
  readonly dirs: string[];
}

/** The manifest files under `path` (a file or a directory, read recursively; dot-names skipped). */
export async function listManifestTree(path: string): Promise<Result<ManifestTree, ManifestError>> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    return err({ code: 'UNREADABLE', file: path, message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` });
  }
  if (!st.isDirectory()) return ok({ files: [path], dirs: [] });
  const out: ManifestTree = { files: [], dirs: [] };
  const walked = await walk(path, out, true);
  return walked.ok ? ok(out) : walked;
}

async function walk(dir: string, out: ManifestTree, root: boolean): Promise<Result<void, ManifestError>> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // A subdirectory removed while we walk is gone, with its files. Any other failure fails
    // the listing: a directory we cannot read now must not look empty (its services would go).
    if (code === 'ENOENT' && !root) return ok(undefined);
    return err({ code: 'UNREADABLE', file: dir, message: `cannot read: ${code ?? String(e)}` });
  }
  out.dirs.push(dir);
  entries.sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const ent of entries) {
    if (ent.name.startsWith('.')) continue;
    const p = join(dir, ent.name);
    if (ent.isDirectory()) {
      const sub = await walk(p, out, false);
      if (!sub.ok) return sub;
    } else if (MANIFEST.test(ent.name)) out.files.push(p);
  }
  return ok(undefined);
}

export function parseManifest(text: string, file: string): Result<SourceObject[], ManifestError> {
  const out: SourceObject[] = [];
  // JSON is YAML, but the YAML parser takes 12 s for 10k services' worth of JSON (17.6 MB,
  // what the bench's daemon reads: a third of its cold start); JSON.parse takes 0.2 s.
  // Anything JSON.parse rejects goes to the YAML parser, which reports errors with a line.
  const head = text.trimStart()[0];
  if (head === '{' || head === '[') {
    let value: unknown;
    try { value = JSON.parse(text); } catch { value = undefined; }
    if (value !== undefined) {
      addDocument(out, value, `${file}:1`);
      return ok(out);
    }
  }
  // The parser records every line start as it goes; a line number is then a binary search.
  // (Slicing the text from the start per document made a 2,000-service file take 8 s.)
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { prettyErrors: false, uniqueKeys: false, lineCounter: lines });
  const lineOf = (offset: number): number => lines.linePos(offset).line;
  for (const doc of Array.isArray(docs) ? docs : [docs]) {
    const e = doc.errors[0];
    if (e) return err({ code: 'SYNTAX', file, line: lineOf(e.pos[0]), message: `YAML syntax error: ${e.message.split('\n')[0]}` });
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    const line = doc.range ? lineOf(doc.range[0]) : undefined;
    addDocument(out, value, `${file}${line !== undefined ? `:${line}` : ''}`);
  }
  return ok(out);
}

function addDocument(out: SourceObject[], value: unknown, origin: string): void {
  if (value === null || value === undefined) return;
  if (typeof value === 'object' && !Array.isArray(value) && (value as { kind?: unknown }).kind === 'List') {
    const items = (value as { items?: unknown }).items;
    for (const item of Array.isArray(items) ? items : []) out.push({ object: withListKind(item), origin });
  } else out.push({ object: value, origin });
}

// A real API server's list items carry no kind; `kubectl get -o yaml` adds it back, but
// hand-made Lists may not. Recognize the three kinds we read by their shape.
function withListKind(item: unknown): unknown {
  if (typeof item !== 'object' || item === null || (item as { kind?: unknown }).kind !== undefined) return item;
  const o = item as Record<string, unknown>;
  if ('addressType' in o) return { ...o, kind: 'EndpointSlice' };
  const spec = o.spec as Record<string, unknown> | undefined;
  if (spec && ('ports' in spec || 'clusterIP' in spec || 'type' in spec)) return { ...o, kind: 'Service' };
  if (o.status && typeof o.status === 'object' && 'addresses' in (o.status as object)) return { ...o, kind: 'Node' };
  return item;
}

export async function readManifests(paths: readonly string[]): Promise<Result<SourceObject[], ManifestError>> {
  const out: SourceObject[] = [];
  for (const p of paths) {
    const files = await listManifestFiles(p);
    if (!files.ok) return files;
    for (const f of files.value) {
      let text: string;
      try {
        text = await readFile(f, 'utf8');
      } catch (e) {
        return err({ code: 'UNREADABLE', file: f, message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` });
      }
      const r = parseManifest(text, f);
      if (!r.ok) return r;
      for (const o of r.value) out.push(o); // no spread: one kubectl dump can hold 100k objects
    }
  }
  return ok(out);
}

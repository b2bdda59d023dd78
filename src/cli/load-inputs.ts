// Shared by dump and explain: files + flags -> model, config, compiled ruleset.
import { type SourceObject, buildModel } from '../model/build-model.js';
import { formatDiagnostic, type Diagnostic } from '../model/diagnostic.js';
import { type BaseConfig, type ProxyConfig, resolveConfig } from '../model/config.js';
import type { Ruleset } from '../ir/types.js';
import { compile } from '../compile/compile.js';
import { formatManifestError, readManifests } from '../sources/manifests.js';
import { type ConfigFlags, loadBaseConfig } from './config.js';

export interface Loaded {
  readonly config: ProxyConfig;
  readonly ruleset: Ruleset;
  readonly diagnostics: readonly Diagnostic[];
  readonly ignored: readonly { ref: string; reason: string }[];
}

export class UsageError extends Error {}

export async function loadInputs(files: string[], flags: ConfigFlags, warn: (line: string) => void): Promise<Loaded> {
  if (files.length === 0) throw new UsageError('-f FILE_OR_DIR is required (repeatable)');
  const base = await loadBaseConfig(flags);
  if (!base.ok) throw new UsageError(base.error);
  const objects = await readManifests(files);
  if (!objects.ok) throw new UsageError(formatManifestError(objects.error));
  return compileInputs(objects.value, base.value, warn);
}

/** Objects (from files or the API) + the configuration -> what dump and explain print. */
export function compileInputs(objects: readonly SourceObject[], base: BaseConfig, warn: (line: string) => void): Loaded {
  const { model, diagnostics, ignored } = buildModel(objects);
  const { config, notes } = resolveConfig(base, model);
  for (const n of notes) warn(`note: ${n}`);
  const ruleset = compile(model, config);
  for (const d of diagnostics) warn(formatDiagnostic(d));
  return { config, ruleset, diagnostics, ignored };
}

// The compiler across syncs: the compiled parts kept, and only the services a change touched
// compiled again. Pure like the rest of compile/: no I/O, the same input gives the same parts
// as compileParts (test/compile/incremental-compile.test.ts checks it on random changes).
//
// A change of context (the node's addresses, the configuration, the families) touches every
// service: everything is compiled again and the caller is told `changed: 'all'`.
import type { ProxyConfig } from '../model/config.js';
import type { EndpointSlice, Model, Service } from '../model/types.js';
import { type GenerationOf, firstGeneration } from './affinity.js';
import { type CompiledFamily, compileParts, compileService } from './compile.js';
import type { ServicePortRules } from './service-port.js';

export interface CompileUpdate {
  readonly parts: readonly CompiledFamily[];
  /** services ("ns/name") whose compiled rules may differ from the last update's, or 'all' */
  readonly changed: ReadonlySet<string> | 'all';
}

type Rules = readonly (ServicePortRules | undefined)[];
const NO_SLICES: readonly EndpointSlice[] = [];

export class IncrementalCompiler {
  private parts: (CompiledFamily & { services: Map<string, Rules> })[] | undefined;

  /**
   * dirty: services whose Service or slices changed since the last update ('all': anything may
   * have). serviceOf: the model's service for a ref (undefined: gone, or left out, e.g. quarantined).
   */
  update(model: Model, cfg: ProxyConfig, dirty: ReadonlySet<string> | 'all', serviceOf: (ref: string) => Service | undefined, generationOf: GenerationOf = firstGeneration): CompileUpdate {
    const keys = compileParts({ services: [], slices: new Map(), nodes: model.nodes }, cfg, generationOf);
    const same = this.parts !== undefined && this.parts.length === keys.length && keys.every((k, i) => this.parts![i]!.ctxKey === k.ctxKey);
    if (dirty === 'all' || !same) {
      const included = { ...model, services: model.services.filter((s) => serviceOf(`${s.ref.namespace}/${s.ref.name}`) === s) };
      this.parts = compileParts(included, cfg, generationOf).map((p) => ({ ...p, services: new Map(p.services) }));
      return { parts: this.parts, changed: 'all' };
    }
    for (const p of this.parts!) {
      for (const ref of dirty) {
        const svc = serviceOf(ref);
        if (svc) p.services.set(ref, compileService(p.ctx, p.ctxKey, svc, model.slices.get(ref) ?? NO_SLICES, generationOf));
        else p.services.delete(ref);
      }
    }
    return { parts: this.parts!, changed: dirty };
  }

  /** Forget everything: the next update compiles the whole model. */
  reset(): void {
    this.parts = undefined;
  }
}

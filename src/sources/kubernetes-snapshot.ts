// One look at the API server, no watch: what `dump`, `explain`, `verify` and `trace` with
// --kubeconfig compile, so an operator can ask from a laptop. The same lists and the same
// trimming as the daemon's informers (kubernetes.ts), so the same cluster compiles the same.
import type { KubeConfig } from '@kubernetes/client-node';
import type { SourceObject } from '../model/build-model.js';
import { resourcesFor } from './kubernetes.js';
import { listAll } from './kubernetes-list.js';
import { trimObject } from './kubernetes-trim.js';

export async function listOnce(kc: KubeConfig, nodeName: string, timeoutMs = 30_000): Promise<SourceObject[]> {
  const lists = await Promise.all(resourcesFor(nodeName).map(async (spec) => {
    const list = await listAll(kc, spec.path, { ...(spec.fieldSelector ? { fieldSelector: spec.fieldSelector } : {}), timeoutMs, keep: (o) => trimObject(spec, o) });
    return list.items.map((o): SourceObject => {
      const m = o.metadata ?? {};
      return { object: o, origin: `api:${spec.kind}/${m.namespace ? `${m.namespace}/` : ''}${m.name ?? ''}` };
    });
  }));
  return lists.flat();
}

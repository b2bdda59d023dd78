// `run` without --manifests: the Kubernetes API source (in-cluster config, or --kubeconfig).
// The client library is imported only here and only when used: `run --manifests` does not
// pay its memory.
import type { DaemonSource, SourceDelta } from '../sources/object-source.js';
import type { Logger } from 'pino';
import type { SourceObject } from '../model/build-model.js';
import { UsageError } from './load-inputs.js';

export function kubernetesSourceFactory(o: { kubeconfig: string | undefined; nodeName: string; log: Logger; onChange: () => void }): DaemonSource {
  let source: { start(): Promise<void>; stop(): void; snapshot(): readonly SourceObject[]; changesSince(since: number | undefined): SourceDelta; status(): { restarts: number } } | undefined;
  return {
    start: async () => {
      const { KubernetesSource, loadKubeConfig } = await import('../sources/kubernetes.js');
      let kc;
      try {
        kc = loadKubeConfig(o.kubeconfig);
      } catch (e) {
        throw new UsageError(`${o.kubeconfig ? `--kubeconfig ${o.kubeconfig}` : 'in-cluster config'}: ${(e as Error).message}`);
      }
      source = new KubernetesSource(kc, o.nodeName, o.onChange, o.log);
      await source.start();
    },
    stop: () => source?.stop(),
    snapshot: () => source?.snapshot() ?? [],
    changesSince: (since) => source?.changesSince(since) ?? { version: 0, changes: undefined },
    status: () => source?.status() ?? { restarts: 0 },
  };
}

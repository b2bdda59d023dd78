// `run` without --manifests: the Kubernetes API source (in-cluster config, or --kubeconfig).
import type { DaemonSource } from '../daemon/daemon.js';
import type { Logger } from 'pino';
import { KubernetesSource, loadKubeConfig } from '../sources/kubernetes.js';
import { UsageError } from './load-inputs.js';

export function kubernetesSourceFactory(o: { kubeconfig: string | undefined; nodeName: string; log: Logger; onChange: () => void }): DaemonSource {
  let kc;
  try {
    kc = loadKubeConfig(o.kubeconfig);
  } catch (e) {
    throw new UsageError(`${o.kubeconfig ? `--kubeconfig ${o.kubeconfig}` : 'in-cluster config'}: ${(e as Error).message}`);
  }
  const s = new KubernetesSource(kc, o.nodeName, o.onChange, o.log);
  return { start: () => s.start(), stop: () => s.stop(), snapshot: () => s.snapshot(), status: () => s.status() };
}

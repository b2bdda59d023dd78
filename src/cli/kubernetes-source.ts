// `run` without --manifests: the Kubernetes API source. Kept apart from run.ts so the
// manifest path does not load the client library.
import type { DaemonSource } from '../daemon/daemon.js';
import type { Logger } from 'pino';

export const kubernetesSourceFactory: ((o: { kubeconfig: string | undefined; nodeName: string; log: Logger; onChange: () => void }) => DaemonSource) | undefined = undefined;

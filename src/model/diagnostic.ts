// A skipped object: which one, and why, in a sentence an operator can act on.
export type DiagnosticKind = 'Service' | 'EndpointSlice' | 'Node' | 'Object';

export interface Diagnostic {
  readonly kind: DiagnosticKind;
  /** namespace/name, or a file position for objects without a usable name */
  readonly object: string;
  /** stable code for metrics: invalid-ip, invalid-port, nodeport-conflict, ... */
  readonly code: string;
  readonly reason: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  return `skip ${d.kind === 'Object' ? 'object' : d.kind} ${d.object}: ${d.reason}`;
}

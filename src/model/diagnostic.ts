// A skipped object: which one, and why, in a sentence an operator can act on.
export type DiagnosticKind = 'Service' | 'EndpointSlice' | 'Node' | 'Object';

/** Why one object is refused on its own (service.ts, endpoint-slice.ts, node.ts). */
export type InvalidCode =
  | 'invalid-name' | 'invalid-type' | 'invalid-ip' | 'invalid-cidr' | 'invalid-port' | 'duplicate-port'
  | 'invalid-protocol' | 'invalid-policy' | 'invalid-affinity' | 'invalid-address-type';
/** Why an object valid on its own is refused beside the others (build-model.ts): the first claimant keeps it. */
type ConflictCode = 'nodeport-conflict' | 'address-conflict' | 'duplicate-object';
/** Stable: metrics count by it (nftproxy_skipped_objects{reason}). */
export type DiagnosticCode = 'not-an-object' | InvalidCode | ConflictCode;

export interface Diagnostic {
  readonly kind: DiagnosticKind;
  /** namespace/name, or a file position for objects without a usable name */
  readonly object: string;
  readonly code: DiagnosticCode;
  readonly reason: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  return `skip ${d.kind === 'Object' ? 'object' : d.kind} ${d.object}: ${d.reason}`;
}

// A trace as text an operator reads top to bottom: the answer first, then why.
import type { Trace } from './trace.js';
import { fmtBackend } from '../ir/types.js';

export function formatTrace(t: Trace, ignored: readonly { ref: string; reason: string }[] = []): string {
  const p = t.packet;
  const lines: string[] = [];
  lines.push(`packet: ${p.proto} ${p.src} -> ${fmtBackend({ addr: p.dst, port: p.dport })} (from ${t.origin === 'node' ? 'this node itself' : 'a pod or remote host'})`);
  const o = t.outcome;
  switch (o.kind) {
    case 'dnat':
      lines.push(`verdict: DNAT to one of ${o.endpoints.length} endpoint(s), chosen at random`);
      for (const e of o.endpoints) lines.push(`  ${fmtBackend(e)}  masquerade: ${e.masquerade ? 'yes' : 'no'}${e.masquerade ? ` (${e.masqueradeWhy.join('; ')})` : ''}`);
      break;
    case 'drop': lines.push(`verdict: DROP: ${o.why}`); break;
    case 'reject': lines.push(`verdict: REJECT: ${o.why}`); break;
    case 'not-proxied': lines.push(`verdict: not proxied: ${o.why}`); break;
  }
  const sp = t.servicePort;
  if (sp) {
    lines.push(`service port: ${sp.service} port ${sp.portName || '(unnamed)'} ${sp.port}/${sp.proto.toUpperCase()}`);
    lines.push('decisions:');
    for (const d of sp.decisions) lines.push(`  - ${d}`);
    lines.push(`cluster endpoints: ${sp.clusterBackends.map(fmtBackend).join(', ') || '(none)'}`);
    lines.push(`local endpoints:   ${sp.localBackends.map(fmtBackend).join(', ') || '(none)'}`);
  }
  if (t.steps.length) {
    lines.push('path:');
    for (const s of t.steps) lines.push(`  ${s}`);
  }
  if (o.kind === 'not-proxied' && ignored.length) {
    lines.push('services not proxied on purpose:');
    for (const i of ignored) lines.push(`  ${i.ref}: ${i.reason}`);
  }
  return lines.join('\n') + '\n';
}

// Turns the raw tries of one probe into the reference tables' notation, so a kernel result
// compares with `expect` against the table row and the tracer's answer. Pure.
import type { Try } from './agent-process.js';

/**
 * What the kernel did, in table notation: sorted `ip:port` landings, 'DROP', 'REJECT', ''
 * (answered by the node itself), or a sentence for anything the tables never expect
 * ('UNREACHABLE', a mix of outcomes, ...), so that a mismatch shows what happened.
 */
export type Observed = { got: string[] | string; masq: boolean | string | undefined };

export interface Landings {
  /** `ip:port` of the endpoint an agent stands for, '' for the node, undefined for a stranger. */
  landing(agentName: string, port: number): string | undefined;
  /** Addresses a masqueraded packet may carry: the node's. */
  readonly nodeAddrs: ReadonlySet<string>;
}

const errLabel = (err: string): string => {
  switch (err) {
    case 'timeout': return 'DROP';
    case 'refused': return 'REJECT';
    case 'unreachable': return 'UNREACHABLE';
    default: return `ERROR ${err}`;
  }
};

export function summarize(tries: readonly Try[], src: string, where: Landings): Observed {
  const labels = tries.map((t) => (t.ok ? (where.landing(t.name, t.port) ?? `answered by ${t.name}:${t.port}`) : errLabel(t.err)));
  const distinct = [...new Set(labels)].sort();
  const errors = new Set(['DROP', 'REJECT', 'UNREACHABLE']);
  let got: string[] | string;
  if (distinct.length === 0) got = 'NO TRIES';
  else if (tries.every((t) => !t.ok) && distinct.length === 1) got = distinct[0]!;
  else if (distinct.length === 1 && distinct[0] === '') got = '';
  else if (tries.every((t) => t.ok) && !distinct.includes('') && distinct.every((d) => !d.startsWith('answered by') && !errors.has(d))) got = distinct;
  else got = `MIXED ${distinct.map((d) => `${d || '"" (node)'} x${labels.filter((l) => l === d).length}`).join(', ')}`;

  const masqs = [...new Set(tries.flatMap((t) => (t.ok ? [t.saw === src ? false : where.nodeAddrs.has(t.saw) ? true : `source ${t.saw} is neither the client nor the node`] : [])))];
  const masq = masqs.length === 0 ? undefined : masqs.length === 1 ? masqs[0] : `MIXED ${masqs.join(', ')}`;
  return { got, masq };
}

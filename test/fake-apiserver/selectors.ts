// Label and field selectors as the API server parses them (the subset real clients send):
// labels: `k`, `!k`, `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`;
// fields: `f=v`, `f==v`, `f!=v` on the fields a type supports. A selector that does not
// parse is a 400, as on the real server, rather than a silent match-all.
export type Matcher = (obj: Record<string, unknown>) => boolean;

export class SelectorError extends Error {}

type LabelReq =
  | { op: 'exists' | 'notexists'; key: string }
  | { op: 'in' | 'notin'; key: string; values: readonly string[] };

const KEY = /^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?\/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$/;
const VALUE = /^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?)?$/;

/** Splits on commas that are not inside a `( … )` value set. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

function parseLabelReq(raw: string): LabelReq {
  const s = raw.trim();
  const set = /^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(s);
  if (set) {
    const values = set[3]!.split(',').map((v) => v.trim());
    checkKey(set[1]!);
    values.forEach(checkValue);
    return { op: set[2] as 'in' | 'notin', key: set[1]!, values };
  }
  const eq = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(s);
  if (eq) {
    checkKey(eq[1]!);
    checkValue(eq[3]!);
    return { op: eq[2] === '!=' ? 'notin' : 'in', key: eq[1]!, values: [eq[3]!] };
  }
  if (s.startsWith('!')) {
    checkKey(s.slice(1).trim());
    return { op: 'notexists', key: s.slice(1).trim() };
  }
  checkKey(s);
  return { op: 'exists', key: s };
}

function checkKey(k: string): void {
  if (!KEY.test(k)) throw new SelectorError(`invalid label key "${k}"`);
}
function checkValue(v: string): void {
  if (!VALUE.test(v)) throw new SelectorError(`invalid label value "${v}"`);
}

export function parseLabelSelector(sel: string | null): Matcher {
  if (sel === null || sel.trim() === '') return () => true;
  const reqs = splitTop(sel).map(parseLabelReq);
  return (obj) => {
    const labels = ((obj.metadata as { labels?: Record<string, string> } | undefined)?.labels ?? {});
    return reqs.every((r) => {
      const has = Object.prototype.hasOwnProperty.call(labels, r.key);
      switch (r.op) {
        case 'exists': return has;
        case 'notexists': return !has;
        case 'in': return has && r.values.includes(labels[r.key]!);
        case 'notin': return !has || !r.values.includes(labels[r.key]!);
      }
    });
  };
}

function fieldValue(obj: Record<string, unknown>, path: string): string {
  let cur: unknown = obj;
  for (const p of path.split('.')) cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[p] : undefined;
  // The server compares string forms; an unset boolean field reads as "false".
  if (cur === undefined || cur === null) return path === 'spec.unschedulable' ? 'false' : '';
  return String(cur);
}

export function parseFieldSelector(sel: string | null, supported: readonly string[]): Matcher {
  if (sel === null || sel.trim() === '') return () => true;
  const reqs = sel.split(',').map((raw) => {
    const m = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(raw);
    if (!m) throw new SelectorError(`invalid field selector: "${raw}"`);
    if (!supported.includes(m[1]!)) throw new SelectorError(`field label not supported: ${m[1]}`);
    return { field: m[1]!, negate: m[2] === '!=', value: m[3]! };
  });
  return (obj) => reqs.every((r) => (fieldValue(obj, r.field) === r.value) !== r.negate);
}

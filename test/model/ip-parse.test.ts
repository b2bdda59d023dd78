// parseIP's IPv4 path: one pass over the text, read "sloppily" as kube-proxy does (leading
// zeros are decimal). Rows are the edges; the property compares it with the definition it
// replaced (split on dots, 1-3 digits each, Number(), then node:net's isIPv4).
import { isIPv4 } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseIP } from '../../src/model/ip.js';

const byDefinition = (s: string): string | undefined => {
  const t = s.trim();
  const parts = t.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^[0-9]{1,3}$/.test(p))) return undefined;
  const v = parts.map((p) => String(Number(p))).join('.');
  return isIPv4(v) ? v : undefined;
};
const parsed = (s: string): string | undefined => {
  const r = parseIP(s);
  return r.ok ? r.value : undefined;
};

describe('parseIP, IPv4', () => {
  it.each([
    ['10.96.0.1', '10.96.0.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['000.000.000.000', '0.0.0.0'],
    ['172.30.0.041', '172.30.0.41'],
    [' 10.0.0.1 ', '10.0.0.1'],
    ['256.1.1.1', undefined],
    ['1.2.3', undefined],
    ['1.2.3.4.5', undefined],
    ['1.2.3.4.', undefined],
    ['.1.2.3.4', undefined],
    ['1..2.3', undefined],
    ['1.2.3.0400', undefined],
    ['1.2.3.a', undefined],
    ['1.2.3.-4', undefined],
    ['', undefined],
  ])('%j -> %j', (input, want) => {
    expect(parsed(input)).toBe(want);
  });

  it('agrees with the definition on dotted digit strings', () => {
    const octet = fc.oneof(fc.integer({ min: 0, max: 300 }).map(String), fc.stringMatching(/^[0-9]{0,4}$/));
    const dotted = fc.array(octet, { minLength: 2, maxLength: 6 }).map((a) => a.join('.'));
    fc.assert(fc.property(dotted, (s) => parsed(s) === byDefinition(s)), { numRuns: 2000 });
  });
});

// ../shared/reference-scenarios.md, row by row, through explain's tracer over the IR.
// (The same rows run with real packets in test/datapath/reference-scenarios.datapath.test.ts;
// the row data lives in test/support/reference-rows.ts.)
import { describe, expect, it } from 'vitest';
import { compileObjects, probe } from '../support/builders.js';
import { type Case, SECTIONS } from '../support/reference-rows.js';

function check({ objects, rows, env }: Case): void {
  const { ruleset, cfg, diagnostics } = compileObjects(objects, env);
  it('compiles without skipping anything', () => expect(diagnostics).toEqual([]));
  it.each(rows)('#$n $src -> $dst $proto => $want (masq $masq)', ({ src, dst, proto, want, masq }) => {
    const r = probe(ruleset, cfg, src, dst, proto ?? 'tcp');
    expect(r.got).toEqual(Array.isArray(want) ? [...want].sort() : want);
    if (masq !== undefined) expect(r.masq).toBe(masq);
  });
}

for (const section of SECTIONS) {
  describe(`${section.id} ${section.title}`, () => {
    for (const c of section.cases) {
      if (c.name) describe(c.name, () => check(c));
      else check(c);
    }
  });
}

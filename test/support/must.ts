// The value of a Result the test knows is ok (a literal address, CIDR, port), or a throw
// naming why not: a typo in a fixture fails loudly instead of testing less.
export function must<T>(r: { ok: true; value: T } | { ok: false; error: string }): T {
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

// A small, fast, seeded PRNG (mulberry32): the same seed gives the same sequence on every
// machine, so a random test or bench workload that fails can be replayed from its seed.
// Shared by the suite and the bench harness (bench/src/workload.ts), which is why it imports
// nothing: bench compiles it without pulling in any other test code.
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

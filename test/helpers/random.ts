/**
 * Seeded generators for the tests that draw cases at random, so a failing run replays from its seed.
 * Each returns numbers in [0, 1). Two algorithms because the fixed seeds written in the tests (and the
 * figures reported from them) were drawn with these two; both are exact in 32-bit integer arithmetic.
 */

/** xorshift32 (Marsaglia). A seed of 0 is taken as 1 (0 is its fixed point). */
export function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 0x100000000; };
}

/** mulberry32. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

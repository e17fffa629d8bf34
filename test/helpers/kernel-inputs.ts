/**
 * Inputs and comparisons for kernel tests: seeded random arrays (so a failure reproduces) and an
 * element-wise closeness check that reports the worst element.
 */
import assert from 'node:assert/strict';

/** A seeded generator of uniform numbers in [0, 1) (mulberry32). */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n uniform f32 values in [-scale, scale). */
export function randomF32(n: number, rand: () => number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rand() * 2 - 1) * scale;
  return a;
}

/** Tolerance of a comparison: |actual - expected| <= atol + rtol * |expected|. */
export interface Tolerance {
  readonly rtol: number;
  readonly atol: number;
}

/** Asserts every element is within tolerance; the message names the worst element. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance, label: string): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    if (a === e) continue;
    const excess = Math.abs(a - e) - (tol.atol + tol.rtol * Math.abs(e));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    assert.fail(`${label}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} (rtol ${tol.rtol}, atol ${tol.atol})`);
  }
}

/** Largest |x|. */
export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

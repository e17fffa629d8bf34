/**
 * The integer roundings ggml's quantizers use. They differ on ties, and which one a quantizer uses
 * decides bit-exactness, so each has its own name.
 */

/** C `roundf`: nearest integer, ties away from zero. */
export function roundHalfAway(v: number): number {
  const r = Math.floor(Math.abs(v) + 0.5);
  return v < 0 ? -r : r;
}

/** Nearest integer, ties to even (ggml's `nearest_int` and SIMD round-to-nearest). */
export function roundHalfEven(v: number): number {
  const r = Math.round(v); // ties toward +infinity
  return r - v === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

/** C conversion of a float to an integer type: truncation toward zero. */
export function truncate(v: number): number {
  return Math.trunc(v);
}

/** Clamps an integer to [lo, hi]. */
export function clampInt(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

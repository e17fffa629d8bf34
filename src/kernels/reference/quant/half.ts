/**
 * Conversions between f32 and the 16-bit float formats GGUF stores (IEEE half and bfloat16),
 * bit-exact with ggml: round to nearest, ties to even.
 */

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** The IEEE-754 bits of `v` rounded to f32. */
export function f32ToBits(v: number): number {
  f32Scratch[0] = v;
  return u32Scratch[0];
}

/** The f32 whose bits are `bits`. */
export function bitsToF32(bits: number): number {
  u32Scratch[0] = bits >>> 0;
  return f32Scratch[0];
}

// Every half decodes exactly to f32, so one table serves all lookups.
const HALF_TABLE: Float32Array = (() => {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    let v: number;
    if (exp === 0) v = mant * 2 ** -24;
    else if (exp === 31) v = mant ? NaN : Infinity;
    else v = (1 + mant / 1024) * 2 ** (exp - 15);
    table[h] = sign * v;
  }
  return table;
})();

/** Decodes IEEE half bits to a number (exact). */
export function fp16ToF32(h: number): number {
  return HALF_TABLE[h & 0xffff];
}

/** Rounds `v` (taken as f32) to the nearest IEEE half, ties to even; returns the 16 bits. */
export function f32ToFp16(v: number): number {
  const x = f32ToBits(v);
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): shift the 24-bit significand down, rounding the dropped bits.
    if (exp === 0) return sign; // f32 subnormals are far below half's range
    const shift = 14 - e;
    if (shift > 24) return sign;
    const sig = mant | 0x800000;
    return sign | roundShift(sig, shift);
  }
  // Rounding may carry into the exponent; a carry out of e = 30 correctly gives infinity.
  return sign | roundShift((e << 23) | mant, 13);
}

/** value >> shift, rounded to nearest with ties to even (value < 2^31). */
function roundShift(value: number, shift: number): number {
  const kept = value >>> shift;
  const rest = value - kept * 2 ** shift;
  const half = 2 ** (shift - 1);
  return rest > half || (rest === half && (kept & 1) === 1) ? kept + 1 : kept;
}

/** Decodes bfloat16 bits to a number (exact). */
export function bf16ToF32(h: number): number {
  return bitsToF32((h & 0xffff) << 16);
}

/** Rounds `v` (taken as f32) to bfloat16, ties to even, NaN kept quiet; returns the 16 bits. */
export function f32ToBf16(v: number): number {
  const u = f32ToBits(v);
  if ((u & 0x7fffffff) >>> 0 > 0x7f800000) return ((u >>> 16) | 64) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) / 65536) >>> 0 & 0xffff;
}

/** Reads a little-endian half at `off` of `bytes` as a number. */
export function readFp16(bytes: Uint8Array, off: number): number {
  return HALF_TABLE[bytes[off] | (bytes[off + 1] << 8)];
}

/** Writes half bits little-endian at `off` of `bytes`. */
export function writeHalfBits(bytes: Uint8Array, off: number, h: number): void {
  bytes[off] = h & 0xff;
  bytes[off + 1] = (h >> 8) & 0xff;
}

/**
 * MXFP4 (OCP microscaling FP4, ggml type 39), the expert weight format of gpt-oss: blocks of 32
 * E2M1 values sharing one E8M0 (power of two) scale. ggml stores the E2M1 values doubled, as the
 * integers in MXFP4_VALUES, and halves the scale to match; its dot product pairs the blocks with
 * Q8_0 activations. Dequantizer and ggml's reference quantizer here, bit-exact.
 */
import { bitsToF32 } from './half.js';
import { QK } from './layouts.js';

const f = Math.fround;

/** The 16 E2M1 codes as ggml's doubled integers (kvalues_mxfp4): code 8 is -0. */
export const MXFP4_VALUES: readonly number[] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/** Byte offsets inside a block (17 bytes: the exponent byte, then 16 bytes of nibbles). */
export const MXFP4 = { e: 0, qs: 1 } as const;

// Every E8M0 byte halved, as f32 (ggml_e8m0_to_fp32_half): 2^(e - 128), subnormal for e < 2.
const HALF_SCALES: Float32Array = (() => {
  const t = new Float32Array(256);
  for (let e = 0; e < 256; e++) t[e] = bitsToF32(e < 2 ? 0x00200000 << e : (e - 1) << 23);
  return t;
})();

/** Half the value of the E8M0 scale byte `e`, the factor of the doubled E2M1 integers. */
export function e8m0Half(e: number): number {
  return HALF_SCALES[e & 0xff];
}

/** Decodes one MXFP4 block: x[j] from the low nibble of qs[j], x[j + 16] from its high nibble. */
export function dequantizeMXFP4(src: Uint8Array, so: number, dst: Float32Array, dOff: number): void {
  const d = e8m0Half(src[so + MXFP4.e]);
  for (let j = 0; j < QK / 2; j++) {
    const b = src[so + MXFP4.qs + j];
    dst[dOff + j] = f(MXFP4_VALUES[b & 0xf] * d);
    dst[dOff + j + 16] = f(MXFP4_VALUES[b >> 4] * d);
  }
}

/** The code whose value times d is nearest x (the first on ties), as ggml's best_index_mxfp4. */
function nearestCode(x: number, d: number): number {
  let best = 0;
  let bestErr = Math.abs(f(f(MXFP4_VALUES[0] * d) - x));
  for (let i = 1; i < 16; i++) {
    const err = Math.abs(f(f(MXFP4_VALUES[i] * d) - x));
    if (err < bestErr) {
      best = i;
      bestErr = err;
    }
  }
  return best;
}

/**
 * Encodes one block the way ggml's quantize_row_mxfp4_ref does: the exponent is
 * floor(log2f(amax)) - 2 + 127 (so the largest magnitude lands near the top code 6), then each value
 * takes the nearest code. The exponent uses log2f's f32 result, which rounds up to the next integer
 * for values just below a power of two, as C does.
 */
export function quantizeMXFP4(x: Float32Array, xo: number, dst: Uint8Array, dOff: number): void {
  let amax = 0;
  for (let j = 0; j < QK; j++) {
    const a = Math.abs(x[xo + j]);
    if (amax < a) amax = a;
  }
  // C converts the float to uint8_t through a truncating int conversion.
  const e = amax > 0 ? Math.trunc(Math.floor(f(Math.log2(amax))) - 2 + 127) & 0xff : 0;
  const d = e8m0Half(e);
  dst[dOff + MXFP4.e] = e;
  for (let j = 0; j < QK / 2; j++) {
    dst[dOff + MXFP4.qs + j] = nearestCode(x[xo + j], d) | (nearestCode(x[xo + j + 16], d) << 4);
  }
}

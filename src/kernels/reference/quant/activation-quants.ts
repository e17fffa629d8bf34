/**
 * How llama.cpp's CPU backend (x86-64) converts f32 activations before a quantized dot product.
 *
 * Q8_0 and Q8_1 differ from ggml's reference quantizers in two details: the inverse scale is
 * 127 / amax (not 1 / (amax / 127)), and rounding is to nearest with ties to even (SIMD rounding),
 * not ties away from zero. Q8_K uses ggml's reference quantizer. Matching these exactly is what
 * makes our dot products equal llama.cpp's.
 */
import { f32ToFp16, writeHalfBits } from './half.js';
import { Q8K, QK, QK_K } from './layouts.js';
import { roundHalfEven } from './rounding.js';
import { signedAbsMax } from './simple-quants.js';

const f = Math.fround;

/** Quantizes 32 activations to a Q8_0 block (llama.cpp CPU backend rule). */
export function quantizeActivationQ8_0(x: Float32Array, xo: number, dst: Uint8Array, dOff: number): void {
  const { amax } = signedAbsMax(x, xo, QK);
  const id = amax !== 0 ? f(127 / amax) : 0;
  writeHalfBits(dst, dOff, f32ToFp16(f(amax / 127)));
  for (let j = 0; j < QK; j++) dst[dOff + 2 + j] = roundHalfEven(f(x[xo + j] * id)) & 0xff;
}

/** Quantizes 32 activations to a Q8_1 block (llama.cpp CPU backend rule). */
export function quantizeActivationQ8_1(x: Float32Array, xo: number, dst: Uint8Array, dOff: number): void {
  const { amax } = signedAbsMax(x, xo, QK);
  const d = f(amax / 127);
  const id = amax !== 0 ? f(127 / amax) : 0;
  let sum = 0;
  for (let j = 0; j < QK; j++) {
    const q = roundHalfEven(f(x[xo + j] * id));
    dst[dOff + 4 + j] = q & 0xff;
    sum += q;
  }
  writeHalfBits(dst, dOff, f32ToFp16(d));
  writeHalfBits(dst, dOff + 2, f32ToFp16(f(d * sum)));
}

/** Quantizes 256 values to a Q8_K block exactly as ggml's quantize_row_q8_K_ref does. */
export function quantizeQ8_K(x: Float32Array, xo: number, dst: Uint8Array, dOff: number): void {
  const view = new DataView(dst.buffer, dst.byteOffset + dOff, 292);
  const { amax, max } = signedAbsMax(x, xo, QK_K);
  if (amax === 0) {
    dst.fill(0, dOff, dOff + 292);
    return;
  }
  const iscale = f(-127 / max);
  for (let j = 0; j < QK_K; j++) {
    const v = roundHalfEven(f(iscale * x[xo + j]));
    dst[dOff + Q8K.qs + j] = Math.min(127, v) & 0xff;
  }
  for (let g = 0; g < QK_K / 16; g++) {
    let sum = 0;
    for (let i = 0; i < 16; i++) sum += (dst[dOff + Q8K.qs + g * 16 + i] << 24) >> 24;
    view.setInt16(Q8K.bsums + g * 2, sum, true);
  }
  view.setFloat32(Q8K.d, f(1 / iscale), true);
}

/** Decodes one Q8_K block. */
export function dequantizeQ8_K(src: Uint8Array, so: number, dst: Float32Array, dOff: number): void {
  const d = new DataView(src.buffer, src.byteOffset + so, 4).getFloat32(0, true);
  for (let j = 0; j < QK_K; j++) dst[dOff + j] = f(d * ((src[so + Q8K.qs + j] << 24) >> 24));
}

/**
 * The 32-element block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1): dequantizers and ggml's
 * reference quantizers, bit-exact. Every intermediate is rounded to f32 with Math.fround because
 * ggml computes in f32 and its results depend on those roundings.
 */
import { f32ToFp16, readFp16, writeHalfBits } from './half.js';
import { QK, readI8, readU32, writeU32 } from './layouts.js';
import { roundHalfAway, truncate } from './rounding.js';

const f = Math.fround;

/** Largest |x| of a block and the signed value that has it (the first one on ties). */
function signedAbsMax(x: Float32Array, off: number, n: number): { amax: number; max: number } {
  let amax = 0;
  let max = 0;
  for (let j = 0; j < n; j++) {
    const v = x[off + j];
    if (amax < Math.abs(v)) {
      amax = Math.abs(v);
      max = v;
    }
  }
  return { amax, max };
}

/** Smallest and largest value of a block. */
function minMax(x: Float32Array, off: number, n: number): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (let j = 0; j < n; j++) {
    const v = x[off + j];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}

/** Decodes one Q4_0 block. */
export function dequantizeQ4_0(src: Uint8Array, so: number, dst: Float32Array, dOff: number): void {
  const d = readFp16(src, so);
  for (let j = 0; j < QK / 2; j++) {
    const b = src[so + 2 + j];
    dst[dOff + j] = f(((b & 0xf) - 8) * d);
    dst[dOff + j + 16] = f(((b >> 4) - 8) * d);
  }
}

/** Encodes one Q4_0 block the way ggml's quantize_row_q4_0_ref does. */
export function quantizeQ4_0(x: Float32Array, xo: number, dst: Uint8Array, dOff: number): void {
  const { max } = signedAbsMax(x, xo, QK);
  const d = f(max / -8);
  const id = d ? f(1 / d) : 0;
  writeHalfBits(dst, dOff, f32ToFp16(d));
  for (let j = 0; j < QK / 2; j++) {
    const lo = Math.min(15, truncate(f(f(x[xo + j] * id) + 8.5)));
    const hi = Math.min(15, truncate(f(f(x[xo + j + 16] * id) + 8.5)));
    dst[dOff + 2 + j] = lo | (hi << 4);
  }
}

/** Decodes one Q4_1 block. */
export function dequantizeQ4_1(src: Uint8Array, so: number, dst: Float32Array, dOff: number): void {
  const d = readFp16(src, so);
  const m = readFp16(src, so + 2);
  for (let j = 0; j < QK / 2; j++) {
    const b = src[so + 4 + j];
    dst[dOff + j] = f(f((b & 0xf) * d) + m);
    dst[dOff + j + 16] = f(f((b >> 4) * d) + m);
  }
}

/** Encodes one Q4_1 block the way ggml's quantize_row_q4_1_ref does. */
export function quantizeQ4_1(x: Float32Array, xo: number, dst: Uint8Array, dOff: number): void {
  const { min, max } = minMax(x, xo, QK);
  const d = f(f(max - min) / 15);
  const id = d ? f(1 / d) : 0;
  writeHalfBits(dst, dOff, f32ToFp16(d));
  writeHalfBits(dst, dOff + 2, f32ToFp16(min));
  for (let j = 0; j < QK / 2; j++) {
    const lo = Math.min(15, truncate(f(f(f(x[xo + j] - min) * id) + 0.5)));
    const hi = Math.min(15, truncate(f(f(f(x[xo + j + 16] - min) * id) + 0.5)));
    dst[dOff + 4 + j] = lo | (hi << 4);
  }
}

/** The 5-bit quant j (0..31) of a Q5_0/Q5_1 block whose qh word and nibbles start at qhOff. */
function q5(src: Uint8Array, qhOff: number, qh: number, j: number): number {
  const b = src[qhOff + 4 + (j & 15)];
  const nibble = j < 16 ? b & 0xf : b >> 4;
  return nibble | (((qh >>> j) & 1) << 4);
}

/** Decodes one Q5_0 block. */
export function dequantizeQ5_0(src: Uint8Array, so: number, dst: Float32Array, dOff: number): void {
  const d = readFp16(src, so);
  const qh = readU32(src, so + 2);
  for (let j = 0; j < QK; j++) dst[dOff + j] = f((q5(src, so + 2, qh, j) - 16) * d);
}

/** Stores 32 5-bit quants as nibbles plus a word of fifth bits at `off`. */
function packQ5(q: ArrayLike<number>, dst: Uint8Array, off: number): void {
  let qh = 0;
  for (let j = 0; j < QK / 2; j++) {
    dst[off + 4 + j] = (q[j] & 0xf) | ((q[j + 16] & 0xf) << 4);
    qh |= ((q[j] >> 4) & 1) << j;
    qh |= ((q[j + 16] >> 4) & 1) << (j + 16);
  }
  writeU32(dst, off, qh >>> 0);
}

/** Encodes one Q5_0 block the way ggml's quantize_row_q5_0_ref does. */
export function quantizeQ5_0(x: Float32Array, xo: number, dst: Uint8Array, dOff: number): void {
  const { max } = signedAbsMax(x, xo, QK);
  const d = f(max / -16);
  const id = d ? f(1 / d) : 0;
  writeHalfBits(dst, dOff, f32ToFp16(d));
  const q = new Array<number>(QK);
  for (let j = 0; j < QK; j++) q[j] = Math.min(31, truncate(f(f(x[xo + j] * id) + 16.5)));
  packQ5(q, dst, dOff + 2);
}

/** Decodes one Q5_1 block. */
export function dequantizeQ5_1(src: Uint8Array, so: number, dst: Float32Array, dOff: number): void {
  const d = readFp16(src, so);
  const m = readFp16(src, so + 2);
  const qh = readU32(src, so + 4);
  for (let j = 0; j < QK; j++) dst[dOff + j] = f(f(q5(src, so + 4, qh, j) * d) + m);
}

/** Encodes one Q5_1 block the way ggml's quantize_row_q5_1_ref does. */
export function quantizeQ5_1(x: Float32Array, xo: number, dst: Uint8Array, dOff: number): void {
  const { min, max } = minMax(x, xo, QK);
  const d = f(f(max - min) / 31);
  const id = d ? f(1 / d) : 0;
  writeHalfBits(dst, dOff, f32ToFp16(d));
  writeHalfBits(dst, dOff + 2, f32ToFp16(min));
  const q = new Array<number>(QK);
  // ggml stores the truncated value in a byte without clamping (it never exceeds 31 in practice).
  for (let j = 0; j < QK; j++) q[j] = truncate(f(f(f(x[xo + j] - min) * id) + 0.5)) & 0xff;
  packQ5(q, dst, dOff + 4);
}

/** Decodes one Q8_0 block. */
export function dequantizeQ8_0(src: Uint8Array, so: number, dst: Float32Array, dOff: number): void {
  const d = readFp16(src, so);
  for (let j = 0; j < QK; j++) dst[dOff + j] = f(readI8(src, so + 2 + j) * d);
}

/** Encodes one Q8_0 block the way ggml's quantize_row_q8_0_ref does (ties away from zero). */
export function quantizeQ8_0(x: Float32Array, xo: number, dst: Uint8Array, dOff: number): void {
  const { amax } = signedAbsMax(x, xo, QK);
  const d = f(amax / 127);
  const id = d ? f(1 / d) : 0;
  writeHalfBits(dst, dOff, f32ToFp16(d));
  for (let j = 0; j < QK; j++) dst[dOff + 2 + j] = roundHalfAway(f(x[xo + j] * id)) & 0xff;
}

/** Decodes one Q8_1 block (its stored sum is not needed). */
export function dequantizeQ8_1(src: Uint8Array, so: number, dst: Float32Array, dOff: number): void {
  const d = readFp16(src, so);
  for (let j = 0; j < QK; j++) dst[dOff + j] = f(readI8(src, so + 4 + j) * d);
}

/** Encodes one Q8_1 block the way ggml's quantize_row_q8_1_ref does. */
export function quantizeQ8_1(x: Float32Array, xo: number, dst: Uint8Array, dOff: number): void {
  const { amax } = signedAbsMax(x, xo, QK);
  const d = f(amax / 127);
  const id = d ? f(1 / d) : 0;
  let sum = 0;
  for (let j = 0; j < QK; j++) {
    const q = roundHalfAway(f(x[xo + j] * id));
    dst[dOff + 4 + j] = q & 0xff;
    sum += q;
  }
  writeHalfBits(dst, dOff, f32ToFp16(d));
  writeHalfBits(dst, dOff + 2, f32ToFp16(f(sum * d)));
}

export { signedAbsMax };

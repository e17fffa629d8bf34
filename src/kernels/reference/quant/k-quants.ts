/** Dequantizers of the K formats (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), bit-exact with ggml's. */
import { readFp16 } from './half.js';
import { IQ4_VALUES, IQ4XS, iq4xsScale, kLow2, kScaleMin, Q2K, Q3K, q3KHigh, q3KScale, Q4K, Q5K, Q6K, QK_K, readI8 } from './layouts.js';

const f = Math.fround;

/** Decodes one Q2_K super-block: x = (d * scale_j) * q - dmin * min_j per 16-element group j. */
export function dequantizeQ2_K(src: Uint8Array, so: number, dst: Float32Array, dOff: number): void {
  const d = readFp16(src, so + Q2K.d);
  const dmin = readFp16(src, so + Q2K.dmin);
  for (let e = 0; e < QK_K; e++) {
    const sc = src[so + Q2K.scales + (e >> 4)];
    dst[dOff + e] = f(f(f(d * (sc & 0xf)) * kLow2(src, so + Q2K.qs, e)) - f(dmin * (sc >> 4)));
  }
}

/** Decodes one Q3_K super-block: x = (d * scale_j) * (q - 4) per 16-element group j. */
export function dequantizeQ3_K(src: Uint8Array, so: number, dst: Float32Array, dOff: number): void {
  const d = readFp16(src, so + Q3K.d);
  for (let e = 0; e < QK_K; e++) {
    const q = kLow2(src, so + Q3K.qs, e) + 4 * q3KHigh(src, so, e) - 4;
    dst[dOff + e] = f(f(d * q3KScale(src, so + Q3K.scales, e >> 4)) * q);
  }
}

/** Decodes one Q4_K super-block: x = d * scale_j * q - dmin * min_j per 32-element sub-block j. */
export function dequantizeQ4_K(src: Uint8Array, so: number, dst: Float32Array, dOff: number): void {
  const d = readFp16(src, so + Q4K.d);
  const dmin = readFp16(src, so + Q4K.dmin);
  for (let g = 0; g < 4; g++) {
    const [sc1, m1] = kScaleMin(src, so + Q4K.scales, 2 * g);
    const [sc2, m2] = kScaleMin(src, so + Q4K.scales, 2 * g + 1);
    const d1 = f(d * sc1);
    const min1 = f(dmin * m1);
    const d2 = f(d * sc2);
    const min2 = f(dmin * m2);
    const q = so + Q4K.qs + 32 * g;
    const out = dOff + 64 * g;
    for (let l = 0; l < 32; l++) {
      dst[out + l] = f(f(d1 * (src[q + l] & 0xf)) - min1);
      dst[out + 32 + l] = f(f(d2 * (src[q + l] >> 4)) - min2);
    }
  }
}

/** Decodes one Q5_K super-block: like Q4_K with a fifth bit per quant from qh. */
export function dequantizeQ5_K(src: Uint8Array, so: number, dst: Float32Array, dOff: number): void {
  const d = readFp16(src, so + Q5K.d);
  const dmin = readFp16(src, so + Q5K.dmin);
  for (let g = 0; g < 4; g++) {
    const [sc1, m1] = kScaleMin(src, so + Q5K.scales, 2 * g);
    const [sc2, m2] = kScaleMin(src, so + Q5K.scales, 2 * g + 1);
    const d1 = f(d * sc1);
    const min1 = f(dmin * m1);
    const d2 = f(d * sc2);
    const min2 = f(dmin * m2);
    const q = so + Q5K.qs + 32 * g;
    const out = dOff + 64 * g;
    for (let l = 0; l < 32; l++) {
      const h = src[so + Q5K.qh + l];
      const lo = (src[q + l] & 0xf) + ((h >> (2 * g)) & 1) * 16;
      const hi = (src[q + l] >> 4) + ((h >> (2 * g + 1)) & 1) * 16;
      dst[out + l] = f(f(d1 * lo) - min1);
      dst[out + 32 + l] = f(f(d2 * hi) - min2);
    }
  }
}

/** The 6-bit quant (0..63) of element i (0..255) of a Q6_K block at `so`. */
export function q6Quant(src: Uint8Array, so: number, i: number): number {
  const half = i >> 7; // which 128-element half
  const k = i & 127;
  const quarter = k >> 5; // 0..3 within the half
  const l = k & 31;
  const ql = src[so + Q6K.ql + 64 * half + l + (quarter & 1) * 32];
  const low = quarter < 2 ? ql & 0xf : ql >> 4;
  const high = (src[so + Q6K.qh + 32 * half + l] >> (2 * quarter)) & 3;
  return low | (high << 4);
}

/** Decodes one Q6_K super-block: x = d * scale_k * (q - 32) per 16-element group k. */
export function dequantizeQ6_K(src: Uint8Array, so: number, dst: Float32Array, dOff: number): void {
  const d = readFp16(src, so + Q6K.d);
  for (let i = 0; i < QK_K; i++) {
    const sc = readI8(src, so + Q6K.scales + (i >> 4));
    dst[dOff + i] = f(f(d * sc) * (q6Quant(src, so, i) - 32));
  }
}

/** Decodes one IQ4_XS super-block: x = (d * (scale - 32)) * value(code) per 32-element sub-block. */
export function dequantizeIQ4_XS(src: Uint8Array, so: number, dst: Float32Array, dOff: number): void {
  const d = readFp16(src, so + IQ4XS.d);
  for (let ib = 0; ib < 8; ib++) {
    const dl = f(d * (iq4xsScale(src, so, ib) - 32));
    for (let j = 0; j < 16; j++) {
      const q = src[so + IQ4XS.qs + 16 * ib + j];
      dst[dOff + 32 * ib + j] = f(dl * IQ4_VALUES[q & 0xf]);
      dst[dOff + 32 * ib + 16 + j] = f(dl * IQ4_VALUES[q >> 4]);
    }
  }
}

/** Decodes one IQ4_NL block: x = d * value(code). */
export function dequantizeIQ4_NL(src: Uint8Array, so: number, dst: Float32Array, dOff: number): void {
  const d = readFp16(src, so);
  for (let j = 0; j < 16; j++) {
    const q = src[so + 2 + j];
    dst[dOff + j] = f(d * IQ4_VALUES[q & 0xf]);
    dst[dOff + 16 + j] = f(d * IQ4_VALUES[q >> 4]);
  }
}

/**
 * Reference dot products of one weight row with one converted activation row, with llama.cpp's
 * semantics: within each block an exact integer dot of the quants, then one f32 term per block
 * scaled by the weight and activation scales (and, for formats with a minimum, a term for it).
 */
import { GgmlType, ggmlTypeInfo } from '../../../gguf/ggml-types.js';
import type { ActivationRow } from './activations.js';
import { readF32 } from './float-formats.js';
import { bf16ToF32, readFp16 } from './half.js';
import { q6Quant } from './k-quants.js';
import { BLOCK_BYTES, IQ4_VALUES, IQ4XS, iq4xsScale, kLow2, kScaleMin, Q2K, Q3K, q3KHigh, q3KScale, Q4K, Q5K, Q6K, Q8K, QK, QK_K, readI8, readU32 } from './layouts.js';
import { isIqGrid, unpackIqGrid } from './iq-quants.js';
import { e8m0Half, MXFP4, MXFP4_VALUES } from './mxfp4.js';

const f = Math.fround;

/** Reads Q8_K's f32 scale. */
function q8kScale(a: Uint8Array, off: number): number {
  return readF32(a, off + Q8K.d);
}

/** Q8_K's stored sum of its 16-element group k. */
function q8kGroupSum(a: Uint8Array, off: number, k: number): number {
  return ((a[off + Q8K.bsums + 2 * k] | (a[off + Q8K.bsums + 2 * k + 1] << 8)) << 16) >> 16;
}

/** Sum of Q8_K's stored 16-element sums 2j and 2j+1 (the sums under one 32-element sub-block). */
function q8kPairSum(a: Uint8Array, off: number, j: number): number {
  return q8kGroupSum(a, off, 2 * j) + q8kGroupSum(a, off, 2 * j + 1);
}

/** The 32 signed quants of a 32-element block, given a decoder of quant j. */
function blockDot32(quant: (j: number) => number, a: Uint8Array, aq: number): number {
  let sumi = 0;
  for (let j = 0; j < QK; j++) sumi += quant(j) * readI8(a, aq + j);
  return sumi;
}

function dotQ4_0(w: Uint8Array, wo: number, a: Uint8Array, nb: number): number {
  let sum = 0;
  for (let b = 0; b < nb; b++) {
    const wb = wo + b * BLOCK_BYTES.Q4_0;
    const ab = b * BLOCK_BYTES.Q8_0;
    const sumi = blockDot32((j) => (j < 16 ? w[wb + 2 + j] & 0xf : w[wb + 2 + j - 16] >> 4) - 8, a, ab + 2);
    sum = f(sum + f(f(sumi * readFp16(w, wb)) * readFp16(a, ab)));
  }
  return sum;
}

/** IQ4_NL: the integer dot of the code values, times d · da. */
function dotIQ4_NL(w: Uint8Array, wo: number, a: Uint8Array, nb: number): number {
  let sum = 0;
  for (let b = 0; b < nb; b++) {
    const wb = wo + b * BLOCK_BYTES.IQ4_NL;
    const ab = b * BLOCK_BYTES.Q8_0;
    const sumi = blockDot32((j) => IQ4_VALUES[j < 16 ? w[wb + 2 + j] & 0xf : w[wb + 2 + j - 16] >> 4], a, ab + 2);
    sum = f(sum + f(f(readFp16(w, wb) * readFp16(a, ab)) * sumi));
  }
  return sum;
}

function dotQ4_1(w: Uint8Array, wo: number, a: Uint8Array, nb: number): number {
  let sum = 0;
  for (let b = 0; b < nb; b++) {
    const wb = wo + b * BLOCK_BYTES.Q4_1;
    const ab = b * BLOCK_BYTES.Q8_1;
    const sumi = blockDot32((j) => (j < 16 ? w[wb + 4 + j] & 0xf : w[wb + 4 + j - 16] >> 4), a, ab + 4);
    const scaled = f(f(readFp16(w, wb) * readFp16(a, ab)) * sumi);
    sum = f(sum + f(scaled + f(readFp16(w, wb + 2) * readFp16(a, ab + 2))));
  }
  return sum;
}

/** Quant j of a Q5 block whose 4-byte qh starts at `qhOff` (nibbles follow it). */
function q5At(w: Uint8Array, qhOff: number, j: number): number {
  const qh = readU32(w, qhOff);
  const b = w[qhOff + 4 + (j & 15)];
  return (j < 16 ? b & 0xf : b >> 4) | (((qh >>> j) & 1) << 4);
}

function dotQ5_0(w: Uint8Array, wo: number, a: Uint8Array, nb: number): number {
  let sum = 0;
  for (let b = 0; b < nb; b++) {
    const wb = wo + b * BLOCK_BYTES.Q5_0;
    const ab = b * BLOCK_BYTES.Q8_0;
    const sumi = blockDot32((j) => q5At(w, wb + 2, j) - 16, a, ab + 2);
    sum = f(sum + f(f(sumi * readFp16(w, wb)) * readFp16(a, ab)));
  }
  return sum;
}

function dotQ5_1(w: Uint8Array, wo: number, a: Uint8Array, nb: number): number {
  let sum = 0;
  for (let b = 0; b < nb; b++) {
    const wb = wo + b * BLOCK_BYTES.Q5_1;
    const ab = b * BLOCK_BYTES.Q8_1;
    const sumi = blockDot32((j) => q5At(w, wb + 4, j), a, ab + 4);
    const scaled = f(f(readFp16(w, wb) * readFp16(a, ab)) * sumi);
    sum = f(sum + f(scaled + f(readFp16(w, wb + 2) * readFp16(a, ab + 2))));
  }
  return sum;
}

function dotQ8_0(w: Uint8Array, wo: number, a: Uint8Array, nb: number): number {
  let sum = 0;
  for (let b = 0; b < nb; b++) {
    const wb = wo + b * BLOCK_BYTES.Q8_0;
    const ab = b * BLOCK_BYTES.Q8_0;
    const sumi = blockDot32((j) => readI8(w, wb + 2 + j), a, ab + 2);
    sum = f(sum + f(f(sumi * readFp16(w, wb)) * readFp16(a, ab)));
  }
  return sum;
}

/** MXFP4 with Q8_0 activations: the block scale is d_a * e8m0/2 (ggml's order), times the integer dot. */
function dotMXFP4(w: Uint8Array, wo: number, a: Uint8Array, nb: number): number {
  let sum = 0;
  for (let b = 0; b < nb; b++) {
    const wb = wo + b * BLOCK_BYTES.MXFP4;
    const ab = b * BLOCK_BYTES.Q8_0;
    const sumi = blockDot32((j) => MXFP4_VALUES[j < 16 ? w[wb + MXFP4.qs + j] & 0xf : w[wb + MXFP4.qs + j - 16] >> 4], a, ab + 2);
    sum = f(sum + f(f(readFp16(a, ab) * e8m0Half(w[wb + MXFP4.e])) * sumi));
  }
  return sum;
}

/** Q4_K and Q5_K: Σ_j scale_j · (quants · activations of sub-block j), minus the mins term. */
function dotScaleMinK(w: Uint8Array, wo: number, a: Uint8Array, nb: number, five: boolean): number {
  const blockBytes = five ? BLOCK_BYTES.Q5_K : BLOCK_BYTES.Q4_K;
  const L = five ? Q5K : Q4K;
  let sum = 0;
  for (let b = 0; b < nb; b++) {
    const wb = wo + b * blockBytes;
    const ab = b * BLOCK_BYTES.Q8_K;
    let scaled = 0;
    let mins = 0;
    for (let j = 0; j < 8; j++) {
      const [sc, m] = kScaleMin(w, wb + L.scales, j);
      const g = j >> 1;
      const high = j & 1;
      let sumi = 0;
      for (let l = 0; l < 32; l++) {
        const byte = w[wb + L.qs + 32 * g + l];
        let q = high ? byte >> 4 : byte & 0xf;
        if (five) q |= ((w[wb + Q5K.qh + l] >> j) & 1) << 4;
        sumi += q * readI8(a, ab + Q8K.qs + 32 * j + l);
      }
      scaled += sc * sumi;
      mins += m * q8kPairSum(a, ab, j);
    }
    const da = q8kScale(a, ab);
    const term = f(f(f(readFp16(w, wb + L.d) * da) * scaled) - f(f(readFp16(w, wb + L.dmin) * da) * mins));
    sum = f(sum + term);
  }
  return sum;
}

/** Q2_K: Σ_j scale_j · (quants · activations of 16-element group j), minus the mins term (as Q4_K). */
function dotQ2_K(w: Uint8Array, wo: number, a: Uint8Array, nb: number): number {
  let sum = 0;
  for (let b = 0; b < nb; b++) {
    const wb = wo + b * BLOCK_BYTES.Q2_K;
    const ab = b * BLOCK_BYTES.Q8_K;
    let scaled = 0;
    let mins = 0;
    for (let j = 0; j < 16; j++) {
      let sumi = 0;
      for (let e = 16 * j; e < 16 * j + 16; e++) sumi += kLow2(w, wb + Q2K.qs, e) * readI8(a, ab + Q8K.qs + e);
      const sc = w[wb + Q2K.scales + j];
      scaled += (sc & 0xf) * sumi;
      mins += (sc >> 4) * q8kGroupSum(a, ab, j);
    }
    const da = q8kScale(a, ab);
    sum = f(sum + f(f(f(readFp16(w, wb + Q2K.d) * da) * scaled) - f(f(readFp16(w, wb + Q2K.dmin) * da) * mins)));
  }
  return sum;
}

/** Q3_K: Σ_j scale_j · ((quants - 4) · activations of 16-element group j), times d · da. */
function dotQ3_K(w: Uint8Array, wo: number, a: Uint8Array, nb: number): number {
  let sum = 0;
  for (let b = 0; b < nb; b++) {
    const wb = wo + b * BLOCK_BYTES.Q3_K;
    const ab = b * BLOCK_BYTES.Q8_K;
    let scaled = 0;
    for (let j = 0; j < 16; j++) {
      let sumi = 0;
      for (let e = 16 * j; e < 16 * j + 16; e++) sumi += (kLow2(w, wb + Q3K.qs, e) + 4 * q3KHigh(w, wb, e) - 4) * readI8(a, ab + Q8K.qs + e);
      scaled += q3KScale(w, wb + Q3K.scales, j) * sumi;
    }
    sum = f(sum + f(f(readFp16(w, wb + Q3K.d) * q8kScale(a, ab)) * scaled));
  }
  return sum;
}

/** IQ4_XS: Σ_ib (scale_ib - 32) · (code values · activations of sub-block ib), times d · da. */
function dotIQ4_XS(w: Uint8Array, wo: number, a: Uint8Array, nb: number): number {
  let sum = 0;
  for (let b = 0; b < nb; b++) {
    const wb = wo + b * BLOCK_BYTES.IQ4_XS;
    const ab = b * BLOCK_BYTES.Q8_K;
    let scaled = 0;
    for (let ib = 0; ib < 8; ib++) {
      let sumi = 0;
      for (let j = 0; j < 16; j++) {
        const q = w[wb + IQ4XS.qs + 16 * ib + j];
        sumi += IQ4_VALUES[q & 0xf] * readI8(a, ab + Q8K.qs + 32 * ib + j) + IQ4_VALUES[q >> 4] * readI8(a, ab + Q8K.qs + 32 * ib + 16 + j);
      }
      scaled += (iq4xsScale(w, wb, ib) - 32) * sumi;
    }
    // The integer as an f32 first, as the native kernels convert it.
    sum = f(sum + f(f(readFp16(w, wb + IQ4XS.d) * q8kScale(a, ab)) * f(scaled)));
  }
  return sum;
}

const iqQ = new Int8Array(QK_K);
const iqScales = new Int16Array(16);

/** The IQ grid formats: Σ_g scale_g · (q · activations of group g), times factor · da. */
function dotIqGrid(type: GgmlType, w: Uint8Array, wo: number, a: Uint8Array, nb: number): number {
  const bytes = ggmlTypeInfo(type)!.typeSize;
  let sum = 0;
  for (let b = 0; b < nb; b++) {
    const factor = unpackIqGrid(type, w, wo + b * bytes, iqQ, iqScales);
    const ab = b * BLOCK_BYTES.Q8_K;
    let scaled = 0;
    for (let g = 0; g < 16; g++) {
      let sumi = 0;
      for (let j = 0; j < 16; j++) sumi += iqQ[16 * g + j] * readI8(a, ab + Q8K.qs + 16 * g + j);
      scaled += iqScales[g] * sumi;
    }
    sum = f(sum + f(f(factor * q8kScale(a, ab)) * f(scaled)));
  }
  return sum;
}

function dotQ6_K(w: Uint8Array, wo: number, a: Uint8Array, nb: number): number {
  let sum = 0;
  for (let b = 0; b < nb; b++) {
    const wb = wo + b * BLOCK_BYTES.Q6_K;
    const ab = b * BLOCK_BYTES.Q8_K;
    let scaled = 0;
    for (let k = 0; k < 16; k++) {
      let sumi = 0;
      for (let i = 16 * k; i < 16 * k + 16; i++) sumi += (q6Quant(w, wb, i) - 32) * readI8(a, ab + Q8K.qs + i);
      scaled += readI8(w, wb + Q6K.scales + k) * sumi;
    }
    sum = f(sum + f(f(readFp16(w, wb + Q6K.d) * q8kScale(a, ab)) * scaled));
  }
  return sum;
}

/** Float formats: products of exactly representable values, summed in double. */
function dotFloat(wtype: GgmlType, w: Uint8Array, wo: number, x: Float32Array, cols: number): number {
  let sum = 0;
  for (let i = 0; i < cols; i++) {
    let wi: number;
    if (wtype === GgmlType.F32) wi = readF32(w, wo + 4 * i);
    else if (wtype === GgmlType.F16) wi = readFp16(w, wo + 2 * i);
    else wi = bf16ToF32(w[wo + 2 * i] | (w[wo + 2 * i + 1] << 8));
    sum += wi * x[i];
  }
  return f(sum);
}

/** Dot of the weight row at byte `wo` of `w` (type `wtype`, `cols` elements) with a converted activation row. */
export function vecDot(wtype: GgmlType, w: Uint8Array, wo: number, act: ActivationRow, cols: number): number {
  if (act.kind === 'float') return dotFloat(wtype, w, wo, act.values, cols);
  const a = act.bytes;
  if (isIqGrid(wtype)) return dotIqGrid(wtype, w, wo, a, cols / QK_K);
  switch (wtype) {
    case GgmlType.Q4_0:
      return dotQ4_0(w, wo, a, cols / QK);
    case GgmlType.Q4_1:
      return dotQ4_1(w, wo, a, cols / QK);
    case GgmlType.Q5_0:
      return dotQ5_0(w, wo, a, cols / QK);
    case GgmlType.Q5_1:
      return dotQ5_1(w, wo, a, cols / QK);
    case GgmlType.Q8_0:
      return dotQ8_0(w, wo, a, cols / QK);
    case GgmlType.MXFP4:
      return dotMXFP4(w, wo, a, cols / QK);
    case GgmlType.IQ4_NL:
      return dotIQ4_NL(w, wo, a, cols / QK);
    case GgmlType.Q2_K:
      return dotQ2_K(w, wo, a, cols / QK_K);
    case GgmlType.Q3_K:
      return dotQ3_K(w, wo, a, cols / QK_K);
    case GgmlType.Q4_K:
      return dotScaleMinK(w, wo, a, cols / QK_K, false);
    case GgmlType.Q5_K:
      return dotScaleMinK(w, wo, a, cols / QK_K, true);
    case GgmlType.Q6_K:
      return dotQ6_K(w, wo, a, cols / QK_K);
    case GgmlType.IQ4_XS:
      return dotIQ4_XS(w, wo, a, cols / QK_K);
    default:
      throw new RangeError(`no quantized dot product for weight type ${wtype}`);
  }
}

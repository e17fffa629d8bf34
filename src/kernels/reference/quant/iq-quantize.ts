/**
 * Quantizers of the IQ grid formats, twin of native/src/quant_iq_encode.c (the same f32 operations
 * in the same order, so both write identical bytes): per 16 or 32 elements the odd scale that brings
 * the largest |x| nearest the codebook's largest value, the scales as codes against one f16 d, then
 * each group of 8 elements' nearest codebook entry (squared distance, ties to the first; signs from
 * the elements, the parity formats flipping the smallest one's sign when their count is odd; IQ1's
 * delta the better of +1 and -1). Not ggml's search, but any valid encoding reads the same everywhere.
 */
import { GgmlType, ggmlTypeInfo } from '../../../gguf/ggml-types.js';
import { f32ToFp16, fp16ToF32, writeHalfBits } from './half.js';
import { iqGrid } from './iq-quants.js';
import { clampInt, roundHalfEven } from './rounding.js';

const f = Math.fround;

interface IqShape {
  perScale: number;
  smax: number;
  factor: number;
  qmax: number;
  signs: 0 | 7 | 8;
}

function shapeOf(type: GgmlType): IqShape {
  switch (type) {
    case GgmlType.IQ2_XXS:
      return { perScale: 32, smax: 15, factor: 0.125, qmax: 43, signs: 7 };
    case GgmlType.IQ2_XS:
      return { perScale: 16, smax: 15, factor: 0.125, qmax: 43, signs: 7 };
    case GgmlType.IQ2_S:
      return { perScale: 16, smax: 15, factor: 0.125, qmax: 43, signs: 8 };
    case GgmlType.IQ3_XXS:
      return { perScale: 32, smax: 15, factor: 0.25, qmax: 62, signs: 7 };
    case GgmlType.IQ3_S:
      return { perScale: 32, smax: 15, factor: 1, qmax: 15, signs: 8 };
    case GgmlType.IQ1_S:
      return { perScale: 32, smax: 7, factor: 0.125, qmax: 9, signs: 0 };
    default:
      return { perScale: 16, smax: 7, factor: 0.125, qmax: 9, signs: 0 };
  }
}

/** The nearest row (and its distance) of `width` elements to t[to..]; IQ1 rows compare as 8 g + delta. */
function nearest(t: Float32Array, to: number, grid: Int8Array, width: number, iq1: boolean, delta: number): [number, number] {
  let best = 0;
  let bestErr = Infinity;
  const entries = grid.length / width;
  for (let i = 0; i < entries; i++) {
    let e = 0;
    for (let j = 0; j < width && e < bestErr; j++) {
      const g = grid[i * width + j];
      const dj = f(t[to + j] - (iq1 ? 8 * g + delta : g));
      e = f(e + f(dj * dj));
    }
    if (e < bestErr) {
      bestErr = e;
      best = i;
    }
  }
  return [best, bestErr];
}

function signsOf(t: Float32Array, parity: boolean): number {
  let neg = 0;
  let count = 0;
  for (let j = 0; j < 8; j++) {
    if (t[j] < 0) {
      neg |= 1 << j;
      t[j] = -t[j];
      count++;
    }
  }
  if (parity && count % 2) {
    let k = 0;
    for (let j = 1; j < 8; j++) if (t[j] < t[k]) k = j;
    neg ^= 1 << k;
  }
  return neg;
}

/** Encodes 256 floats at xo as one super-block of an IQ grid format at dOff. */
export function quantizeIqGrid(type: GgmlType, x: Float32Array, xo: number, dst: Uint8Array, dOff: number): void {
  const sh = shapeOf(type);
  const { grid, width } = iqGrid(type);
  const groups = 256 / sh.perScale;
  const want = new Float32Array(16);
  let most = 0;
  for (let g = 0; g < groups; g++) {
    let amax = 0;
    for (let j = 0; j < sh.perScale; j++) amax = Math.max(amax, Math.abs(x[xo + g * sh.perScale + j]));
    want[g] = f(amax / sh.qmax);
    most = Math.max(most, want[g]);
  }
  dst.fill(0, dOff, dOff + ggmlTypeInfo(type)!.typeSize);
  const d = f32ToFp16(f(f(most / (2 * sh.smax + 1)) / sh.factor));
  const deff = f(fp16ToF32(d) * sh.factor);
  if (!(deff > 0)) return;
  const scale = new Int32Array(16);
  for (let g = 0; g < groups; g++) scale[g] = clampInt(roundHalfEven(f(f(f(want[g] / deff) - 1) * 0.5)), 0, sh.smax);
  const idx = new Int32Array(32);
  const neg = new Int32Array(32);
  const del = new Int32Array(32).fill(1);
  const t = new Float32Array(8);
  const targets = (k: number): void => {
    const inv = f(1 / f(deff * (2 * scale[Math.floor((8 * k) / sh.perScale)] + 1)));
    for (let j = 0; j < 8; j++) t[j] = f(x[xo + 8 * k + j] * inv);
  };
  for (let k = 0; k < 32 && type !== GgmlType.IQ1_S; k++) {
    targets(k);
    if (sh.signs === 0) {
      const [iPlus, ePlus] = nearest(t, 0, grid, 8, true, 1);
      const [iMinus, eMinus] = nearest(t, 0, grid, 8, true, -1);
      idx[k] = eMinus < ePlus ? iMinus : iPlus;
      del[k] = eMinus < ePlus ? -1 : 1;
      continue;
    }
    neg[k] = signsOf(t, sh.signs === 7);
    if (width === 8) idx[k] = nearest(t, 0, grid, 8, false, 0)[0];
    else idx[k] = nearest(t, 0, grid, 4, false, 0)[0] | (nearest(t, 4, grid, 4, false, 0)[0] << 16);
  }
  if (type === GgmlType.IQ1_S) {
    for (let ib = 0; ib < 8; ib++) {
      let ePlus = 0;
      let eMinus = 0;
      const iPlus: number[] = [];
      const iMinus: number[] = [];
      for (let l = 0; l < 4; l++) {
        targets(4 * ib + l);
        const [ip, ep] = nearest(t, 0, grid, 8, true, 1);
        ePlus = f(ePlus + ep);
        const [im, em] = nearest(t, 0, grid, 8, true, -1);
        eMinus = f(eMinus + em);
        iPlus.push(ip);
        iMinus.push(im);
      }
      for (let l = 0; l < 4; l++) {
        idx[4 * ib + l] = eMinus < ePlus ? iMinus[l] : iPlus[l];
        del[4 * ib + l] = eMinus < ePlus ? -1 : 1;
      }
    }
  }
  pack(type, d, scale, idx, neg, del, dst, dOff);
}

const putU16 = (b: Uint8Array, o: number, v: number): void => {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
};
const putU32 = (b: Uint8Array, o: number, v: number): void => {
  putU16(b, o, v & 0xffff);
  putU16(b, o + 2, v >>> 16);
};

function pack(type: GgmlType, d: number, scale: Int32Array, idx: Int32Array, neg: Int32Array, del: Int32Array, b: Uint8Array, o: number): void {
  if (type !== GgmlType.IQ1_M) writeHalfBits(b, o, d);
  switch (type) {
    case GgmlType.IQ2_XXS:
      for (let ib = 0; ib < 8; ib++) {
        let a0 = 0;
        let a1 = scale[ib] * 2 ** 28;
        for (let l = 0; l < 4; l++) {
          a0 += idx[4 * ib + l] * 2 ** (8 * l);
          a1 += (neg[4 * ib + l] & 127) * 2 ** (7 * l);
        }
        putU32(b, o + 2 + 8 * ib, a0);
        putU32(b, o + 6 + 8 * ib, a1);
      }
      return;
    case GgmlType.IQ2_XS:
      for (let k = 0; k < 32; k++) putU16(b, o + 2 + 2 * k, idx[k] | ((neg[k] & 127) << 9));
      for (let ib = 0; ib < 8; ib++) b[o + 66 + ib] = scale[2 * ib] | (scale[2 * ib + 1] << 4);
      return;
    case GgmlType.IQ2_S:
      for (let k = 0; k < 32; k++) {
        b[o + 2 + k] = idx[k] & 255;
        b[o + 34 + k] = neg[k];
        b[o + 66 + (k >> 2)] |= (idx[k] >> 8) << (2 * (k & 3));
      }
      for (let ib = 0; ib < 8; ib++) b[o + 74 + ib] = scale[2 * ib] | (scale[2 * ib + 1] << 4);
      return;
    case GgmlType.IQ3_XXS:
      for (let ib = 0; ib < 8; ib++) {
        let aux = scale[ib] * 2 ** 28;
        for (let l = 0; l < 4; l++) {
          const k = 4 * ib + l;
          b[o + 2 + 2 * k] = idx[k] & 0xff;
          b[o + 3 + 2 * k] = idx[k] >>> 16;
          aux += (neg[k] & 127) * 2 ** (7 * l);
        }
        putU32(b, o + 66 + 4 * ib, aux);
      }
      return;
    case GgmlType.IQ3_S:
      for (let k = 0; k < 32; k++) {
        const i1 = idx[k] & 0xffff;
        const i2 = idx[k] >>> 16;
        const l = k & 3;
        b[o + 2 + 2 * k] = i1 & 255;
        b[o + 3 + 2 * k] = i2 & 255;
        b[o + 66 + (k >> 2)] |= ((i1 >> 8) << (2 * l)) | ((i2 >> 8) << (2 * l + 1));
        b[o + 74 + k] = neg[k];
      }
      for (let ib = 0; ib < 8; ib++) b[o + 106 + (ib >> 1)] |= scale[ib] << (4 * (ib & 1));
      return;
    case GgmlType.IQ1_S:
      for (let ib = 0; ib < 8; ib++) {
        let qh = (scale[ib] << 12) | (del[4 * ib] < 0 ? 0x8000 : 0);
        for (let l = 0; l < 4; l++) {
          b[o + 2 + 4 * ib + l] = idx[4 * ib + l] & 255;
          qh |= (idx[4 * ib + l] >> 8) << (3 * l);
        }
        putU16(b, o + 34 + 2 * ib, qh);
      }
      return;
    default: {
      const s = [0, 0, 0, 0];
      for (let ib = 0; ib < 8; ib++) s[ib >> 1] |= (scale[2 * ib] | (scale[2 * ib + 1] << 3)) << (6 * (ib & 1));
      for (let n = 0; n < 4; n++) putU16(b, o + 48 + 2 * n, s[n] | (((d >> (4 * n)) & 0xf) << 12));
      for (let k = 0; k < 32; k++) {
        b[o + k] = idx[k] & 255;
        b[o + 32 + (k >> 1)] |= (((idx[k] >> 8) & 7) | (del[k] < 0 ? 8 : 0)) << (4 * (k & 1));
      }
    }
  }
}

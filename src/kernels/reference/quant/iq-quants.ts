/**
 * The IQ grid formats (IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S), twin of
 * native/src/quant_iq.c: a super-block of 256 elements as integers q (codebook entries with their
 * signs; IQ1's 8 x (-1, 0, 1) +- 1 for its delta), an odd scale 2s + 1 per 16 elements and one f32
 * factor (the f16 d times 1/8, 1/4 or 1): element j = factor x scale[j / 16] x q[j]. Layouts:
 * - IQ2_XXS (66 B): f16 d; per 32 elements two u32: four 8-bit indices into a 256-entry grid of 8,
 *   then four 7-bit sign sets (the eighth sign makes their count even) and a 4-bit scale (bits 28-31).
 * - IQ2_XS (74 B): f16 d; u16 qs[32] (9-bit index into 512 entries, 7 sign bits); u8 scales[8] (4 bits per 16).
 * - IQ2_S (82 B): f16 d; u8 qs[32] (index low bits), u8 signs[32], u8 qh[8] (2 high bits per index), u8 scales[8].
 * - IQ3_XXS (98 B): f16 d; u8 qs[64] (indices of 4-element entries); per 32 a u32 of signs and scale.
 * - IQ3_S (110 B): f16 d; u8 qs[64], u8 qh[8] (9th index bits), u8 signs[32], u8 scales[4] (4 bits per 32).
 * - IQ1_S (50 B): f16 d; u8 qs[32]; u16 qh[8]: 3 high index bits per 8, a 3-bit scale, the delta's sign.
 * - IQ1_M (56 B): u8 qs[32]; u8 qh[16] (3 index bits and a delta sign per 8); u8 scales[8] (3 bits per
 *   16, the f16 d in the top nibbles of the four u16 words).
 */
import { GgmlType } from '../../../gguf/ggml-types.js';
import { fp16ToF32, readFp16 } from './half.js';
import { IQ1S_CODES, IQ2S_CODES, IQ2XS_CODES, IQ2XXS_CODES, IQ3S_CODES, IQ3XXS_CODES } from './iq-grids.js';
import { QK_K, readU32 } from './layouts.js';

const f = Math.fround;

/** The IQ grid formats (their block sizes and bytes: ggmlTypeInfo). */
export const IQ_GRID_TYPES: readonly GgmlType[] = [
  GgmlType.IQ2_XXS,
  GgmlType.IQ2_XS,
  GgmlType.IQ2_S,
  GgmlType.IQ3_XXS,
  GgmlType.IQ3_S,
  GgmlType.IQ1_S,
  GgmlType.IQ1_M,
];

/** True for the IQ grid formats. */
export function isIqGrid(type: GgmlType): boolean {
  return IQ_GRID_TYPES.includes(type);
}

function expand(codes: readonly number[], width: number, values: readonly number[]): Int8Array {
  const bits = width === 8 ? 2 : 3;
  const out = new Int8Array(codes.length * width);
  for (let i = 0; i < codes.length; i++) for (let j = 0; j < width; j++) out[i * width + j] = values[(codes[i] >> (bits * j)) & ((1 << bits) - 1)];
  return out;
}

const V2 = [8, 25, 43];
/** The codebooks as rows of elements (IQ1: -1, 0, 1). */
export const IQ_GRIDS = {
  iq2xxs: expand(IQ2XXS_CODES, 8, V2),
  iq2xs: expand(IQ2XS_CODES, 8, V2),
  iq2s: expand(IQ2S_CODES, 8, V2),
  iq3xxs: expand(IQ3XXS_CODES, 4, [4, 12, 20, 28, 36, 44, 52, 62]),
  iq3s: expand(IQ3S_CODES, 4, [1, 3, 5, 7, 9, 11, 13, 15]),
  iq1s: expand(IQ1S_CODES, 8, [-1, 0, 1]),
} as const;

/** The codebook of a format with its row width. */
export function iqGrid(type: GgmlType): { grid: Int8Array; width: number } {
  switch (type) {
    case GgmlType.IQ2_XXS:
      return { grid: IQ_GRIDS.iq2xxs, width: 8 };
    case GgmlType.IQ2_XS:
      return { grid: IQ_GRIDS.iq2xs, width: 8 };
    case GgmlType.IQ2_S:
      return { grid: IQ_GRIDS.iq2s, width: 8 };
    case GgmlType.IQ3_XXS:
      return { grid: IQ_GRIDS.iq3xxs, width: 4 };
    case GgmlType.IQ3_S:
      return { grid: IQ_GRIDS.iq3s, width: 4 };
    default:
      return { grid: IQ_GRIDS.iq1s, width: 8 };
  }
}

const u16 = (b: Uint8Array, o: number): number => b[o] | (b[o + 1] << 8);
/** The 7 stored sign bits with the eighth that makes their count even. */
const evenSigns = (s7: number): number => {
  let n = 0;
  for (let v = s7; v; v &= v - 1) n++;
  return s7 | ((n & 1) << 7);
};

function put8(grid: Int8Array, row: number, signs: number, q: Int8Array, qo: number): void {
  for (let j = 0; j < 8; j++) q[qo + j] = (signs >> j) & 1 ? -grid[8 * row + j] : grid[8 * row + j];
}

function put4x2(grid: Int8Array, r1: number, r2: number, signs: number, q: Int8Array, qo: number): void {
  for (let j = 0; j < 4; j++) {
    q[qo + j] = (signs >> j) & 1 ? -grid[4 * r1 + j] : grid[4 * r1 + j];
    q[qo + 4 + j] = (signs >> (j + 4)) & 1 ? -grid[4 * r2 + j] : grid[4 * r2 + j];
  }
}

function putIq1(row: number, delta: number, q: Int8Array, qo: number): void {
  for (let j = 0; j < 8; j++) q[qo + j] = 8 * IQ_GRIDS.iq1s[8 * row + j] + delta;
}

/**
 * One super-block at `so` as integers: q[256], scales[16] (odd, per 16 elements); returns the factor
 * (element j = factor x scales[j / 16] x q[j]).
 */
export function unpackIqGrid(type: GgmlType, src: Uint8Array, so: number, q: Int8Array, sc: Int16Array): number {
  switch (type) {
    case GgmlType.IQ2_XXS:
      for (let ib = 0; ib < 8; ib++) {
        const idx = readU32(src, so + 2 + 8 * ib);
        const aux = readU32(src, so + 6 + 8 * ib);
        sc[2 * ib] = sc[2 * ib + 1] = 2 * (aux >>> 28) + 1;
        for (let l = 0; l < 4; l++) put8(IQ_GRIDS.iq2xxs, (idx >>> (8 * l)) & 0xff, evenSigns((aux >>> (7 * l)) & 127), q, 32 * ib + 8 * l);
      }
      return f(readFp16(src, so) * 0.125);
    case GgmlType.IQ2_XS:
      for (let ib = 0; ib < 8; ib++) {
        const s = src[so + 66 + ib];
        sc[2 * ib] = 2 * (s & 0xf) + 1;
        sc[2 * ib + 1] = 2 * (s >> 4) + 1;
        for (let l = 0; l < 4; l++) {
          const v = u16(src, so + 2 + 2 * (4 * ib + l));
          put8(IQ_GRIDS.iq2xs, v & 511, evenSigns(v >> 9), q, 32 * ib + 8 * l);
        }
      }
      return f(readFp16(src, so) * 0.125);
    case GgmlType.IQ2_S:
      for (let ib = 0; ib < 8; ib++) {
        const s = src[so + 74 + ib];
        const qh = src[so + 66 + ib];
        sc[2 * ib] = 2 * (s & 0xf) + 1;
        sc[2 * ib + 1] = 2 * (s >> 4) + 1;
        for (let l = 0; l < 4; l++) {
          const idx = src[so + 2 + 4 * ib + l] | ((qh << (8 - 2 * l)) & 0x300);
          put8(IQ_GRIDS.iq2s, idx, src[so + 34 + 4 * ib + l], q, 32 * ib + 8 * l);
        }
      }
      return f(readFp16(src, so) * 0.125);
    case GgmlType.IQ3_XXS:
      for (let ib = 0; ib < 8; ib++) {
        const aux = readU32(src, so + 66 + 4 * ib);
        sc[2 * ib] = sc[2 * ib + 1] = 2 * (aux >>> 28) + 1;
        for (let l = 0; l < 4; l++) {
          const at = so + 2 + 8 * ib + 2 * l;
          put4x2(IQ_GRIDS.iq3xxs, src[at], src[at + 1], evenSigns((aux >>> (7 * l)) & 127), q, 32 * ib + 8 * l);
        }
      }
      return f(readFp16(src, so) * 0.25);
    case GgmlType.IQ3_S:
      for (let ib = 0; ib < 8; ib++) {
        sc[2 * ib] = sc[2 * ib + 1] = 2 * ((src[so + 106 + (ib >> 1)] >> (4 * (ib & 1))) & 0xf) + 1;
        const qh = src[so + 66 + ib];
        for (let l = 0; l < 4; l++) {
          const at = so + 2 + 8 * ib + 2 * l;
          const i1 = src[at] | ((qh << (8 - 2 * l)) & 256);
          const i2 = src[at + 1] | ((qh << (7 - 2 * l)) & 256);
          put4x2(IQ_GRIDS.iq3s, i1, i2, src[so + 74 + 4 * ib + l], q, 32 * ib + 8 * l);
        }
      }
      return readFp16(src, so);
    case GgmlType.IQ1_S:
      for (let ib = 0; ib < 8; ib++) {
        const qh = u16(src, so + 34 + 2 * ib);
        sc[2 * ib] = sc[2 * ib + 1] = 2 * ((qh >> 12) & 7) + 1;
        const delta = qh & 0x8000 ? -1 : 1;
        for (let l = 0; l < 4; l++) putIq1(src[so + 2 + 4 * ib + l] | (((qh >> (3 * l)) & 7) << 8), delta, q, 32 * ib + 8 * l);
      }
      return f(readFp16(src, so) * 0.125);
    case GgmlType.IQ1_M: {
      const s = [0, 1, 2, 3].map((n) => u16(src, so + 48 + 2 * n));
      const d = (s[0] >> 12) | ((s[1] >> 8) & 0x00f0) | ((s[2] >> 4) & 0x0f00) | (s[3] & 0xf000);
      for (let ib = 0; ib < 8; ib++) {
        sc[2 * ib] = 2 * ((s[ib >> 1] >> (6 * (ib & 1))) & 7) + 1;
        sc[2 * ib + 1] = 2 * ((s[ib >> 1] >> (6 * (ib & 1) + 3)) & 7) + 1;
        const h0 = src[so + 32 + 2 * ib];
        const h1 = src[so + 33 + 2 * ib];
        const qs = so + 4 * ib;
        putIq1(src[qs] | ((h0 << 8) & 0x700), h0 & 0x08 ? -1 : 1, q, 32 * ib);
        putIq1(src[qs + 1] | ((h0 << 4) & 0x700), h0 & 0x80 ? -1 : 1, q, 32 * ib + 8);
        putIq1(src[qs + 2] | ((h1 << 8) & 0x700), h1 & 0x08 ? -1 : 1, q, 32 * ib + 16);
        putIq1(src[qs + 3] | ((h1 << 4) & 0x700), h1 & 0x80 ? -1 : 1, q, 32 * ib + 24);
      }
      return f(fp16ToF32(d) * 0.125);
    }
    default:
      throw new RangeError(`not an IQ grid format: ${type}`);
  }
}

/** A block decoder for one IQ grid format: (factor x scale) x q in f32. */
export function iqGridDecoder(type: GgmlType): (src: Uint8Array, so: number, dst: Float32Array, dOff: number) => void {
  const q = new Int8Array(QK_K);
  const sc = new Int16Array(16);
  return (src, so, dst, dOff) => {
    const factor = unpackIqGrid(type, src, so, q, sc);
    for (let j = 0; j < QK_K; j++) dst[dOff + j] = f(f(factor * sc[j >> 4]) * q[j]);
  };
}

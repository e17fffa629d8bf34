/**
 * Byte layouts of the quantized blocks, as ggml defines them (little-endian, packed):
 *
 * - Q4_0  (32 el, 18 B): f16 d; u8 qs[16]. x[j] = (lo nibble of qs[j] - 8) * d, x[j+16] from the hi nibble.
 * - Q4_1  (32 el, 20 B): f16 d, f16 m; u8 qs[16]. x = q * d + m.
 * - Q5_0  (32 el, 22 B): f16 d; u32 qh; u8 qs[16]. Bit j of qh is bit 4 of x[j]'s quant; x = (q - 16) * d.
 * - Q5_1  (32 el, 24 B): f16 d, f16 m; u32 qh; u8 qs[16]. x = q * d + m.
 * - Q8_0  (32 el, 34 B): f16 d; i8 qs[32]. x = q * d.
 * - Q8_1  (32 el, 36 B): f16 d, f16 s (= d * sum of qs); i8 qs[32].
 * - Q2_K  (256 el, 84 B): u8 scales[16] (per 16 elements a 4-bit scale, high nibble a 4-bit min); u8 qs[64]; f16 d, f16 dmin.
 *   Element e's 2-bit quant is bits 2 (e % 128 / 32) of qs[32 (e / 128) + e % 32]; x = d * scale * q - dmin * min.
 * - Q3_K  (256 el, 110 B): u8 hmask[32] (the quants' third bit: e's is bit e / 32 of hmask[e % 32]); u8 qs[64] (low
 *   2 bits, as Q2_K); u8 scales[12] (sixteen 6-bit scales, offset 32); f16 d. x = d * (scale - 32) * (q - 4).
 * - Q4_K  (256 el, 144 B): f16 d, f16 dmin; u8 scales[12] (eight 6-bit scales and mins); u8 qs[128].
 * - Q5_K  (256 el, 176 B): f16 d, f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128].
 * - Q6_K  (256 el, 210 B): u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d.
 * - Q8_K  (256 el, 292 B): f32 d; i8 qs[256]; i16 bsums[16] (sums of each 16 quants).
 * - IQ4_XS (256 el, 136 B): f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128]. Sub-block ib (32 el) has the
 *   6-bit scale ls = (scales_l[ib/2] nibble ib%2) | (bits 2ib..2ib+1 of scales_h) << 4; x[32ib + j] =
 *   d * (ls - 32) * IQ4_VALUES[low nibble of qs[16ib + j]], x[32ib + 16 + j] from the high nibble.
 * - IQ4_NL (32 el, 18 B): f16 d; u8 qs[16]: x[j] = d * IQ4_VALUES[low nibble of qs[j]], x[j + 16] from the high nibble.
 * - MXFP4 (32 el, 17 B): u8 e (E8M0 scale); u8 qs[16] (E2M1 codes: x[j] low nibble, x[j+16] high).
 */

/** Elements per block of the 32-element formats. */
export const QK = 32;
/** Elements per super-block of the K formats. */
export const QK_K = 256;

/** Bytes per block of each quantized format. */
export const BLOCK_BYTES = {
  Q4_0: 18,
  Q4_1: 20,
  Q5_0: 22,
  Q5_1: 24,
  Q8_0: 34,
  Q8_1: 36,
  Q2_K: 84,
  Q3_K: 110,
  Q4_K: 144,
  Q5_K: 176,
  Q6_K: 210,
  Q8_K: 292,
  MXFP4: 17,
  IQ4_XS: 136,
  IQ4_NL: 18,
} as const;

/** Offsets inside a Q2_K block. */
export const Q2K = { scales: 0, qs: 16, d: 80, dmin: 82 } as const;
/** Offsets inside a Q3_K block. */
export const Q3K = { hmask: 0, qs: 32, scales: 96, d: 108 } as const;
/** Offsets inside a Q6_K block (its f16 scale comes last). */
export const Q6K = { ql: 0, qh: 128, scales: 192, d: 208 } as const;
/** Offsets inside a Q5_K block. */
export const Q5K = { d: 0, dmin: 2, scales: 4, qh: 16, qs: 48 } as const;
/** Offsets inside a Q4_K block. */
export const Q4K = { d: 0, dmin: 2, scales: 4, qs: 16 } as const;
/** Offsets inside a Q8_K block. */
export const Q8K = { d: 0, qs: 4, bsums: 260 } as const;

/** Reads a signed byte. */
export function readI8(bytes: Uint8Array, off: number): number {
  return (bytes[off] << 24) >> 24;
}

/** Reads a little-endian u32. */
export function readU32(bytes: Uint8Array, off: number): number {
  return (bytes[off] | (bytes[off + 1] << 8) | (bytes[off + 2] << 16) | (bytes[off + 3] << 24)) >>> 0;
}

/** Writes a little-endian u32. */
export function writeU32(bytes: Uint8Array, off: number, v: number): void {
  bytes[off] = v & 0xff;
  bytes[off + 1] = (v >>> 8) & 0xff;
  bytes[off + 2] = (v >>> 16) & 0xff;
  bytes[off + 3] = (v >>> 24) & 0xff;
}

/**
 * The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block, packed in its 12 scale bytes:
 * sub-blocks 0-3 keep their low 6 bits in bytes j (scale) and j+4 (min); sub-blocks 4-7 keep their
 * low 4 bits in byte j+4 and their top 2 bits in the spare top bits of bytes j-4 and j.
 */
export function kScaleMin(bytes: Uint8Array, scalesOff: number, j: number): [number, number] {
  const q = (i: number): number => bytes[scalesOff + i];
  if (j < 4) return [q(j) & 63, q(j + 4) & 63];
  return [(q(j + 4) & 0xf) | ((q(j - 4) >> 6) << 4), (q(j + 4) >> 4) | ((q(j) >> 6) << 4)];
}

/** Packs eight 6-bit scales and mins into 12 bytes at `off` (the inverse of kScaleMin). */
export function packKScaleMin(bytes: Uint8Array, off: number, scales: ArrayLike<number>, mins: ArrayLike<number>): void {
  for (let j = 0; j < 12; j++) bytes[off + j] = 0;
  for (let j = 0; j < 8; j++) {
    const ls = scales[j];
    const lm = mins[j];
    if (j < 4) {
      bytes[off + j] |= ls;
      bytes[off + j + 4] |= lm;
    } else {
      bytes[off + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
      bytes[off + j - 4] |= (ls >> 4) << 6;
      bytes[off + j] |= (lm >> 4) << 6;
    }
  }
}

/** The 2-bit low quant of element e (0..255) of a Q2_K/Q3_K block whose qs start at `qsOff`. */
export function kLow2(bytes: Uint8Array, qsOff: number, e: number): number {
  return (bytes[qsOff + 32 * (e >> 7) + (e & 31)] >> (2 * ((e >> 5) & 3))) & 3;
}

/** The signed scale (-32..31) of 16-element group j of a Q3_K block: 6 bits packed in 12 bytes at `scalesOff`. */
export function q3KScale(bytes: Uint8Array, scalesOff: number, j: number): number {
  const low = j < 8 ? bytes[scalesOff + j] & 0xf : bytes[scalesOff + j - 8] >> 4;
  const high = (bytes[scalesOff + 8 + (j & 3)] >> (2 * (j >> 2))) & 3;
  return (low | (high << 4)) - 32;
}

/** The third bit of element e's quant in a Q3_K block at `so`. */
export function q3KHigh(bytes: Uint8Array, so: number, e: number): number {
  return (bytes[so + Q3K.hmask + (e & 31)] >> (e >> 5)) & 1;
}

/** Offsets inside an IQ4_XS block. */
export const IQ4XS = { d: 0, scalesH: 2, scalesL: 4, qs: 8 } as const;

/** The values of IQ4_NL's and IQ4_XS's 4-bit codes (ggml's kvalues_iq4nl). */
export const IQ4_VALUES: readonly number[] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/** The 6-bit scale (0..63, offset 32) of sub-block ib of an IQ4_XS block at `so`. */
export function iq4xsScale(bytes: Uint8Array, so: number, ib: number): number {
  const h = bytes[so + IQ4XS.scalesH] | (bytes[so + IQ4XS.scalesH + 1] << 8);
  return ((bytes[so + IQ4XS.scalesL + (ib >> 1)] >> (4 * (ib & 1))) & 0xf) | (((h >> (2 * ib)) & 3) << 4);
}

/**
 * Quantizers of the K formats (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K). They produce valid blocks with low error using a
 * small search for each sub-block's scale (weighted least squares over a few candidate grids), not
 * ggml's exact search, so their bytes may differ from llama-quantize's. All arithmetic is f32 in a
 * fixed order, so the native quantizers can reproduce these bytes exactly.
 */
import { f32ToFp16, fp16ToF32, writeHalfBits } from './half.js';
import { IQ4_VALUES, IQ4XS, packKScaleMin, Q2K, Q3K, Q4K, Q5K, Q6K, QK_K } from './layouts.js';
import { clampInt, roundHalfEven } from './rounding.js';

const f = Math.fround;

/** Candidate grids tried per sub-block: inverse scales (nmax + FIRST + STEP * k) / range, k <= STEPS. */
const ASYM_FIRST = -1;
const ASYM_STEP = Math.fround(0.1);
const ASYM_STEPS = 20;

/**
 * Fits x ≈ scale * q - min with integer q in [0, nmax] and min >= 0 over n values, minimizing the
 * error weighted by w. Writes q into `q` at qOff and returns [scale, min].
 */
export function fitScaleMin(
  x: Float32Array,
  xo: number,
  n: number,
  nmax: number,
  w: Float32Array,
  q: Uint8Array,
  qOff: number,
): [number, number] {
  let xmin = x[xo];
  let xmax = x[xo];
  for (let i = 1; i < n; i++) {
    xmin = Math.min(xmin, x[xo + i]);
    xmax = Math.max(xmax, x[xo + i]);
  }
  if (xmin > 0) xmin = 0;
  if (xmax === xmin) {
    q.fill(0, qOff, qOff + n);
    return [0, f(-xmin)];
  }
  const range = f(xmax - xmin);
  let bestErr = Infinity;
  let bestScale = 0;
  let bestMin = 0;
  const trial = new Uint8Array(n);
  for (let k = 0; k <= ASYM_STEPS; k++) {
    const iscale = f(f(f(ASYM_STEP * k) + f(nmax + ASYM_FIRST)) / range);
    let sw = 0;
    let sq = 0;
    let sx = 0;
    let sqq = 0;
    let sqx = 0;
    for (let i = 0; i < n; i++) {
      const l = clampInt(roundHalfEven(f(iscale * f(x[xo + i] - xmin))), 0, nmax);
      trial[i] = l;
      const wi = w[i];
      sw = f(sw + wi);
      sq = f(sq + f(wi * l));
      sx = f(sx + f(wi * x[xo + i]));
      sqq = f(sqq + f(f(wi * l) * l));
      sqx = f(sqx + f(f(wi * l) * x[xo + i]));
    }
    const det = f(f(sw * sqq) - f(sq * sq));
    let scale: number;
    let offset: number; // x ≈ scale * q + offset, offset <= 0
    if (det > 0) {
      scale = f(f(f(sw * sqx) - f(sq * sx)) / det);
      offset = f(f(f(sqq * sx) - f(sq * sqx)) / det);
      if (offset > 0) {
        offset = 0;
        scale = sqq > 0 ? f(sqx / sqq) : 0;
      }
    } else {
      scale = f(1 / iscale);
      offset = xmin;
    }
    if (scale < 0) continue;
    let err = 0;
    for (let i = 0; i < n; i++) {
      const diff = f(f(f(scale * trial[i]) + offset) - x[xo + i]);
      err = f(err + f(f(w[i] * diff) * diff));
    }
    if (err < bestErr) {
      bestErr = err;
      bestScale = scale;
      bestMin = f(-offset);
      q.set(trial, qOff);
    }
  }
  return [bestScale, bestMin];
}

/** Per-element weights of a sub-block: |x| plus the block's RMS, so small values still count. */
function subBlockWeights(x: Float32Array, xo: number, n: number, out: Float32Array): void {
  let sumSq = 0;
  for (let i = 0; i < n; i++) sumSq = f(sumSq + f(x[xo + i] * x[xo + i]));
  const rms = f(Math.sqrt(f(sumSq / n)));
  for (let i = 0; i < n; i++) out[i] = f(rms + Math.abs(x[xo + i]));
}

/**
 * Shared body of Q4_K and Q5_K: fits eight 32-element sub-blocks, quantizes their scales and mins
 * to 6 bits against f16 super-scales, and returns the final quants (0..nmax) of all 256 values.
 */
function quantizeScaleMinSuperBlock(x: Float32Array, xo: number, nmax: number, dst: Uint8Array, dOff: number, scalesOff: number): Uint8Array {
  const q = new Uint8Array(QK_K);
  const w = new Float32Array(32);
  const scales = new Float32Array(8);
  const mins = new Float32Array(8);
  let maxScale = 0;
  let maxMin = 0;
  for (let j = 0; j < 8; j++) {
    subBlockWeights(x, xo + 32 * j, 32, w);
    [scales[j], mins[j]] = fitScaleMin(x, xo + 32 * j, 32, nmax, w, q, 32 * j);
    maxScale = Math.max(maxScale, scales[j]);
    maxMin = Math.max(maxMin, mins[j]);
  }
  const invScale = maxScale > 0 ? f(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? f(63 / maxMin) : 0;
  const ls = new Uint8Array(8);
  const lm = new Uint8Array(8);
  for (let j = 0; j < 8; j++) {
    ls[j] = Math.min(63, roundHalfEven(f(invScale * scales[j])));
    lm[j] = Math.min(63, roundHalfEven(f(invMin * mins[j])));
  }
  const dBits = f32ToFp16(f(maxScale / 63));
  const dminBits = f32ToFp16(f(maxMin / 63));
  writeHalfBits(dst, dOff, dBits);
  writeHalfBits(dst, dOff + 2, dminBits);
  packKScaleMin(dst, dOff + scalesOff, ls, lm);
  // Requantize against the scales as stored, so rounding of d, dmin and the 6-bit codes is absorbed.
  const d = fp16ToF32(dBits);
  const dmin = fp16ToF32(dminBits);
  for (let j = 0; j < 8; j++) {
    const dd = f(d * ls[j]);
    const dm = f(dmin * lm[j]);
    for (let i = 0; i < 32; i++) {
      const v = x[xo + 32 * j + i];
      q[32 * j + i] = dd === 0 ? 0 : clampInt(roundHalfEven(f(f(v + dm) / dd)), 0, nmax);
    }
  }
  return q;
}

/** Encodes one Q4_K super-block. */
export function quantizeQ4_K(x: Float32Array, xo: number, dst: Uint8Array, dOff: number): void {
  const q = quantizeScaleMinSuperBlock(x, xo, 15, dst, dOff, Q4K.scales);
  for (let g = 0; g < 4; g++) {
    for (let l = 0; l < 32; l++) dst[dOff + Q4K.qs + 32 * g + l] = q[64 * g + l] | (q[64 * g + 32 + l] << 4);
  }
}

/** Encodes one Q5_K super-block. */
export function quantizeQ5_K(x: Float32Array, xo: number, dst: Uint8Array, dOff: number): void {
  const q = quantizeScaleMinSuperBlock(x, xo, 31, dst, dOff, Q5K.scales);
  dst.fill(0, dOff + Q5K.qh, dOff + Q5K.qh + 32);
  for (let g = 0; g < 4; g++) {
    for (let l = 0; l < 32; l++) {
      const lo = q[64 * g + l];
      const hi = q[64 * g + 32 + l];
      dst[dOff + Q5K.qs + 32 * g + l] = (lo & 0xf) | ((hi & 0xf) << 4);
      dst[dOff + Q5K.qh + l] |= ((lo >> 4) << (2 * g)) | ((hi >> 4) << (2 * g + 1));
    }
  }
}

/** Candidate grids for the symmetric fit: inverse scales -(nmax + STEP * k) / max, |k| <= STEPS. */
const SYM_STEP = Math.fround(0.1);
const SYM_STEPS = 9;

/**
 * Fits x ≈ scale * l with integer l in [-nmax, nmax - 1] over n values (weights x^2), writing
 * l + nmax into `q` at qOff. Returns scale (signed: it carries the sign of the largest value).
 */
export function fitSymmetric(x: Float32Array, xo: number, n: number, nmax: number, q: Uint8Array, qOff: number): number {
  let amax = 0;
  let max = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[xo + i]);
    if (ax > amax) {
      amax = ax;
      max = x[xo + i];
    }
  }
  if (amax < Math.fround(1e-15)) {
    q.fill(nmax, qOff, qOff + n);
    return 0;
  }
  let bestScore = -1;
  let bestScale = 0;
  const trial = new Uint8Array(n);
  for (let k = -SYM_STEPS; k <= SYM_STEPS; k++) {
    const iscale = f(-f(nmax + f(SYM_STEP * k)) / max);
    let sumlx = 0;
    let suml2 = 0;
    for (let i = 0; i < n; i++) {
      const v = x[xo + i];
      const l = clampInt(roundHalfEven(f(iscale * v)), -nmax, nmax - 1);
      trial[i] = l + nmax;
      const w = f(v * v);
      sumlx = f(sumlx + f(f(w * v) * l));
      suml2 = f(suml2 + f(f(w * l) * l));
    }
    // With the least-squares scale sumlx/suml2 the weighted error is Σwx² - sumlx²/suml2.
    if (suml2 > 0) {
      const score = f(f(sumlx * sumlx) / suml2);
      if (score > bestScore) {
        bestScore = score;
        bestScale = f(sumlx / suml2);
        q.set(trial, qOff);
      }
    }
  }
  return bestScale;
}

/** Encodes one Q6_K super-block. */
export function quantizeQ6_K(x: Float32Array, xo: number, dst: Uint8Array, dOff: number): void {
  const q = new Uint8Array(QK_K);
  const scales = new Float32Array(16);
  let maxScale = 0;
  let maxAbs = 0;
  for (let k = 0; k < 16; k++) {
    scales[k] = fitSymmetric(x, xo + 16 * k, 16, 32, q, 16 * k);
    if (Math.abs(scales[k]) > maxAbs) {
      maxAbs = Math.abs(scales[k]);
      maxScale = scales[k];
    }
  }
  const view = new DataView(dst.buffer, dst.byteOffset + dOff, 210);
  if (maxAbs === 0) {
    dst.fill(0, dOff, dOff + 210);
    // All quants at the offset 32 decode to zero; scales and d stay zero.
    for (let i = 0; i < QK_K; i++) q[i] = 32;
  } else {
    const iscale = f(-128 / maxScale);
    const dBits = f32ToFp16(f(1 / iscale));
    writeHalfBits(dst, dOff + Q6K.d, dBits);
    const d = fp16ToF32(dBits);
    for (let k = 0; k < 16; k++) {
      const sc = Math.min(127, roundHalfEven(f(iscale * scales[k])));
      view.setInt8(Q6K.scales + k, sc);
      const dd = f(d * sc);
      for (let i = 0; i < 16; i++) {
        const v = x[xo + 16 * k + i];
        q[16 * k + i] = dd === 0 ? 32 : clampInt(roundHalfEven(f(v / dd)), -32, 31) + 32;
      }
    }
  }
  for (let h = 0; h < 2; h++) {
    for (let l = 0; l < 32; l++) {
      const base = 128 * h + l;
      const [q1, q2, q3, q4] = [q[base], q[base + 32], q[base + 64], q[base + 96]];
      dst[dOff + Q6K.ql + 64 * h + l] = (q1 & 0xf) | ((q3 & 0xf) << 4);
      dst[dOff + Q6K.ql + 64 * h + 32 + l] = (q2 & 0xf) | ((q4 & 0xf) << 4);
      dst[dOff + Q6K.qh + 32 * h + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
    }
  }
}

/** Packs 256 quants (their low 2 bits) as Q2_K/Q3_K's qs at `off`: elements 32 apart share a byte. */
function packLow2(q: Uint8Array, dst: Uint8Array, off: number): void {
  for (let h = 0; h < 2; h++) {
    for (let l = 0; l < 32; l++) {
      const e = 128 * h + l;
      dst[off + 32 * h + l] = (q[e] & 3) | ((q[e + 32] & 3) << 2) | ((q[e + 64] & 3) << 4) | ((q[e + 96] & 3) << 6);
    }
  }
}

/** Encodes one Q2_K super-block: Q4_K's fit per 16 elements (quants 0..3), 4-bit scale and min codes. */
export function quantizeQ2_K(x: Float32Array, xo: number, dst: Uint8Array, dOff: number): void {
  const q = new Uint8Array(QK_K);
  const w = new Float32Array(16);
  const scales = new Float32Array(16);
  const mins = new Float32Array(16);
  let maxScale = 0;
  let maxMin = 0;
  for (let j = 0; j < 16; j++) {
    subBlockWeights(x, xo + 16 * j, 16, w);
    [scales[j], mins[j]] = fitScaleMin(x, xo + 16 * j, 16, 3, w, q, 16 * j);
    maxScale = Math.max(maxScale, scales[j]);
    maxMin = Math.max(maxMin, mins[j]);
  }
  const invScale = maxScale > 0 ? f(15 / maxScale) : 0;
  const invMin = maxMin > 0 ? f(15 / maxMin) : 0;
  const dBits = f32ToFp16(f(maxScale / 15));
  const dminBits = f32ToFp16(f(maxMin / 15));
  writeHalfBits(dst, dOff + Q2K.d, dBits);
  writeHalfBits(dst, dOff + Q2K.dmin, dminBits);
  const d = fp16ToF32(dBits);
  const dmin = fp16ToF32(dminBits);
  for (let j = 0; j < 16; j++) {
    const ls = clampInt(roundHalfEven(f(invScale * scales[j])), 0, 15);
    const lm = clampInt(roundHalfEven(f(invMin * mins[j])), 0, 15);
    dst[dOff + Q2K.scales + j] = ls | (lm << 4);
    const dd = f(d * ls);
    const dm = f(dmin * lm);
    for (let i = 0; i < 16; i++) {
      const v = x[xo + 16 * j + i];
      q[16 * j + i] = dd === 0 ? 0 : clampInt(roundHalfEven(f(f(v + dm) / dd)), 0, 3);
    }
  }
  packLow2(q, dst, dOff + Q2K.qs);
}

/** Encodes one Q3_K super-block: Q6_K's symmetric fit per 16 elements (quants -4..3), 6-bit scale codes. */
export function quantizeQ3_K(x: Float32Array, xo: number, dst: Uint8Array, dOff: number): void {
  const q = new Uint8Array(QK_K);
  const scales = new Float32Array(16);
  let maxScale = 0;
  let maxAbs = 0;
  for (let k = 0; k < 16; k++) {
    scales[k] = fitSymmetric(x, xo + 16 * k, 16, 4, q, 16 * k);
    if (Math.abs(scales[k]) > maxAbs) {
      maxAbs = Math.abs(scales[k]);
      maxScale = scales[k];
    }
  }
  dst.fill(0, dOff, dOff + 110);
  const ls = new Uint8Array(16);
  if (maxAbs === 0) {
    q.fill(4);
    ls.fill(32);
  } else {
    const iscale = f(-32 / maxScale);
    const dBits = f32ToFp16(f(1 / iscale));
    writeHalfBits(dst, dOff + Q3K.d, dBits);
    const d = fp16ToF32(dBits);
    for (let k = 0; k < 16; k++) {
      const l = clampInt(roundHalfEven(f(iscale * scales[k])), -32, 31);
      ls[k] = l + 32;
      const dd = f(d * l);
      for (let i = 0; i < 16; i++) {
        const v = x[xo + 16 * k + i];
        q[16 * k + i] = dd === 0 ? 4 : clampInt(roundHalfEven(f(v / dd)), -4, 3) + 4;
      }
    }
  }
  for (let j = 0; j < 16; j++) {
    if (j < 8) dst[dOff + Q3K.scales + j] = ls[j] & 0xf;
    else dst[dOff + Q3K.scales + j - 8] |= (ls[j] & 0xf) << 4;
    dst[dOff + Q3K.scales + 8 + (j & 3)] |= (ls[j] >> 4) << (2 * (j >> 2));
  }
  for (let e = 0; e < QK_K; e++) if (q[e] > 3) dst[dOff + Q3K.hmask + (e & 31)] |= 1 << (e >> 5);
  packLow2(q, dst, dOff + Q3K.qs);
}

/** The code whose IQ4 value is nearest v (the first on ties). */
function nearestIq4(v: number): number {
  let best = 0;
  let err = Math.abs(f(v - IQ4_VALUES[0]));
  for (let k = 1; k < 16; k++) {
    const e = Math.abs(f(v - IQ4_VALUES[k]));
    if (e < err) {
      err = e;
      best = k;
    }
  }
  return best;
}

/**
 * Encodes one IQ4_XS super-block: per 32 elements the scale mapping the largest |x| onto the code
 * value -127, the eight scales as 6-bit codes against d (as Q3_K's), each element's nearest value.
 */
export function quantizeIQ4_XS(x: Float32Array, xo: number, dst: Uint8Array, dOff: number): void {
  const scales = new Float32Array(8);
  let maxScale = 0;
  let maxAbs = 0;
  for (let ib = 0; ib < 8; ib++) {
    let amax = 0;
    let m = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[xo + 32 * ib + j];
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        m = v;
      }
    }
    scales[ib] = f(m / -127);
    if (Math.abs(scales[ib]) > maxAbs) {
      maxAbs = Math.abs(scales[ib]);
      maxScale = scales[ib];
    }
  }
  dst.fill(0, dOff, dOff + 136);
  let h = 0;
  if (maxAbs === 0) {
    h = 0xaaaa; // every scale 32 (the value 0): high bits 2, low nibbles 0
    dst.fill(8 | (8 << 4), dOff + IQ4XS.qs, dOff + IQ4XS.qs + 128);
  } else {
    const iscale = f(-32 / maxScale);
    const dBits = f32ToFp16(f(1 / iscale));
    writeHalfBits(dst, dOff + IQ4XS.d, dBits);
    const d = fp16ToF32(dBits);
    for (let ib = 0; ib < 8; ib++) {
      const l = clampInt(roundHalfEven(f(iscale * scales[ib])), -32, 31);
      const ls = l + 32;
      dst[dOff + IQ4XS.scalesL + (ib >> 1)] |= (ls & 0xf) << (4 * (ib & 1));
      h |= (ls >> 4) << (2 * ib);
      const dl = f(d * l);
      const id = dl === 0 ? 0 : f(1 / dl);
      for (let j = 0; j < 16; j++) {
        const lo = nearestIq4(f(id * x[xo + 32 * ib + j]));
        const hi = nearestIq4(f(id * x[xo + 32 * ib + 16 + j]));
        dst[dOff + IQ4XS.qs + 16 * ib + j] = lo | (hi << 4);
      }
    }
  }
  dst[dOff + IQ4XS.scalesH] = h & 0xff;
  dst[dOff + IQ4XS.scalesH + 1] = h >> 8;
}

/** Encodes one IQ4_NL block: the scale maps the largest |x| onto the code value -127, then each element's nearest value. */
export function quantizeIQ4_NL(x: Float32Array, xo: number, dst: Uint8Array, dOff: number): void {
  let amax = 0;
  let m = 0;
  for (let j = 0; j < 32; j++) {
    const v = x[xo + j];
    if (Math.abs(v) > amax) {
      amax = Math.abs(v);
      m = v;
    }
  }
  const dBits = f32ToFp16(f(m / -127));
  writeHalfBits(dst, dOff, dBits);
  const d = fp16ToF32(dBits);
  const id = d === 0 ? 0 : f(1 / d);
  for (let j = 0; j < 16; j++) dst[dOff + 2 + j] = nearestIq4(f(id * x[xo + j])) | (nearestIq4(f(id * x[xo + 16 + j])) << 4);
}

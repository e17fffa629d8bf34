/**
 * Reference twins of the Mixture-of-Experts kernels: expert products over a 3-D expert tensor and
 * the weighted combination of the experts' outputs. The reference computes pair by pair in the
 * order the pairs were given; the native library groups them by expert, which changes nothing in
 * the results (each output is one dot product, computed the same way in either order).
 */
import { GgmlType, ggmlTypeName } from '../../gguf/ggml-types.js';
import { CairnError } from '../../util/errors.js';
import type { ExpertBatch, ExpertInput } from '../api.js';
import { needInt, needLength } from './checks.js';
import { convertActivationRow, vecDotType, vecDot, type ActivationRow } from './quant/index.js';
import { formatBytes, formatCodec } from './quant/codecs.js';

const f = Math.fround;

/** Most experts a layer may have, and most experts a token may use (the native library's bounds). */
export const MAX_EXPERTS = 65536;
export const MAX_EXPERTS_USED = 256;

/** True when weights of `wtype` take their activations as floats (F32, F16, BF16), not 8-bit blocks. */
export function takesFloatActivations(wtype: GgmlType): boolean {
  const t = vecDotType(wtype);
  return t === GgmlType.F32 || t === GgmlType.F16 || t === GgmlType.BF16;
}

/** Checks the shape of a new expert batch (shared by both implementations). */
export function checkExpertBatchShape(wtype: GgmlType, nExperts: number, nUsed: number, cols: number, maxTokens: number): void {
  vecDotTypeOf(wtype);
  needInt('nExperts', nExperts, 1);
  needInt('nUsed', nUsed, 1);
  needInt('cols', cols, 1);
  needInt('maxTokens', maxTokens, 1);
  if (nExperts > MAX_EXPERTS) throw new CairnError('BAD_ARGUMENT', `nExperts must be at most ${MAX_EXPERTS}, got ${nExperts}`);
  if (nUsed > MAX_EXPERTS_USED) throw new CairnError('BAD_ARGUMENT', `nUsed must be at most ${MAX_EXPERTS_USED}, got ${nUsed}`);
  const bs = formatCodec(wtype).blockSize;
  if (cols % bs !== 0) throw new CairnError('BAD_ARGUMENT', `${ggmlTypeName(wtype)} needs a multiple of ${bs} columns, got cols = ${cols}`);
}

/** The activation form of a weight type, as a CairnError for types without a dot product. */
function vecDotTypeOf(wtype: GgmlType): GgmlType {
  try {
    return vecDotType(wtype);
  } catch {
    throw new CairnError('BAD_ARGUMENT', `expert products do not support weights of type ${ggmlTypeName(wtype)} (${wtype})`);
  }
}

/** Checks expert ids against the layer's expert count; the first bad one is named. */
export function checkExpertIds(ids: Int32Array, pairs: number, nExperts: number): void {
  needLength('ids', ids, pairs);
  for (let p = 0; p < pairs; p++) {
    const e = ids[p];
    if (e < 0 || e >= nExperts)
      throw new CairnError('BAD_ARGUMENT', `expert id ${e} at index ${p} is outside the ${nExperts} experts of the layer`);
  }
}

/** The reference's expert batch: the converted rows and a copy of the routing. */
export class ReferenceExpertBatch implements ExpertBatch {
  nTokens = 0;
  /** Activation form of the current preparation, or -1 before the first. */
  vecType = -1;
  input: ExpertInput = 'token';
  rows: ActivationRow[] = [];
  readonly ids: Int32Array;
  /** Sized for float activation rows (any weight type), or only for 8-bit blocks. */
  private readonly floatRows: boolean;

  constructor(
    wtype: GgmlType,
    readonly nExperts: number,
    readonly nUsed: number,
    readonly cols: number,
    readonly maxTokens: number,
  ) {
    checkExpertBatchShape(wtype, nExperts, nUsed, cols, maxTokens);
    this.ids = new Int32Array(maxTokens * nUsed);
    this.floatRows = takesFloatActivations(wtype);
  }

  /** Reference twin of Kernels.prepareExperts. */
  prepare(wtype: GgmlType, x: Float32Array, nTokens: number, ids: Int32Array, input: ExpertInput): void {
    vecDotTypeOf(wtype);
    if (takesFloatActivations(wtype) && !this.floatRows) {
      throw new CairnError(
        'BAD_ARGUMENT',
        `this expert batch was made for quantized weights; ${ggmlTypeName(wtype)} weights need one made for a float type`,
      );
    }
    const bs = formatCodec(wtype).blockSize;
    if (this.cols % bs !== 0)
      throw new CairnError('BAD_ARGUMENT', `${ggmlTypeName(wtype)} needs a multiple of ${bs} columns, the batch has ${this.cols}`);
    if (input !== 'token' && input !== 'slot')
      throw new CairnError('BAD_ARGUMENT', `input must be 'token' or 'slot', got '${String(input)}'`);
    needInt('nTokens', nTokens, 0);
    if (nTokens > this.maxTokens)
      throw new CairnError('BAD_ARGUMENT', `nTokens ${nTokens} is more than the batch's maxTokens ${this.maxTokens}`);
    const pairs = nTokens * this.nUsed;
    const nRows = input === 'token' ? nTokens : pairs;
    needLength('x', x, nRows * this.cols);
    checkExpertIds(ids, pairs, this.nExperts);
    this.ids.set(ids.subarray(0, pairs));
    this.rows = [];
    for (let i = 0; i < nRows; i++) this.rows.push(convertActivationRow(wtype, x, i * this.cols, this.cols));
    this.nTokens = nTokens;
    this.vecType = vecDotType(wtype);
    this.input = input;
  }

  /** Reference twin of Kernels.expertMatmul. */
  matmul(w: Uint8Array, wtype: GgmlType, rows: number, y: Float32Array, bias?: Float32Array): void {
    if (this.vecType < 0) throw new CairnError('BAD_ARGUMENT', 'the expert batch has not been prepared');
    if (vecDotTypeOf(wtype) !== this.vecType) {
      throw new CairnError(
        'BAD_ARGUMENT',
        `the expert batch was prepared for ${ggmlTypeName(this.vecType)} activations, ${ggmlTypeName(wtype)} weights need ${ggmlTypeName(vecDotType(wtype))}`,
      );
    }
    needInt('rows', rows, 0);
    const rowBytes = formatBytes(formatCodec(wtype), this.cols);
    needLength('w', w, this.nExperts * rows * rowBytes);
    const pairs = this.nTokens * this.nUsed;
    needLength('y', y, pairs * rows);
    if (bias) needLength('bias', bias, this.nExperts * rows);
    for (let p = 0; p < pairs; p++) {
      const e = this.ids[p];
      const act = this.rows[this.input === 'token' ? Math.floor(p / this.nUsed) : p];
      for (let r = 0; r < rows; r++) {
        const v = vecDot(wtype, w, (e * rows + r) * rowBytes, act, this.cols);
        y[p * rows + r] = bias ? f(v + bias[e * rows + r]) : v;
      }
    }
  }
}

/** Reference twin of Kernels.moeCombine: products rounded, then summed in slot order. */
export function refMoeCombine(
  y: Float32Array,
  weights: Float32Array,
  nTokens: number,
  nUsed: number,
  dim: number,
  out: Float32Array,
): void {
  needInt('nTokens', nTokens, 0);
  needInt('nUsed', nUsed, 1);
  needInt('dim', dim, 1);
  needLength('y', y, nTokens * nUsed * dim);
  needLength('weights', weights, nTokens * nUsed);
  needLength('out', out, nTokens * dim);
  for (let t = 0; t < nTokens; t++) {
    for (let i = 0; i < dim; i++) {
      let acc = f(weights[t * nUsed] * y[t * nUsed * dim + i]);
      for (let s = 1; s < nUsed; s++) acc = f(acc + f(weights[t * nUsed + s] * y[(t * nUsed + s) * dim + i]));
      out[t * dim + i] = acc;
    }
  }
}

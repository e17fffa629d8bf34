/**
 * `ReferenceKernels`: the Kernels interface on the TypeScript twins. Slow and single-threaded;
 * it is the oracle the native kernels are tested against, and a fallback for tests of other
 * modules where the native library is not built.
 */
import type { GgmlType } from '../gguf/ggml-types.js';
import { CairnError } from '../util/errors.js';
import { KV_TILE_ROWS, kvCapacity, kvElementBytes, type AttentionParams, type AttentionSpan, type ExpertBatch, type ExpertInput, type Kernels, type KvType, type RopeParams } from './api.js';
import { needFinite, needInt, needKvType, needLength } from './reference/checks.js';
import { ReferenceExpertBatch, refMoeCombine } from './reference/experts.js';
import {
  refAdd,
  refAttention,
  refGeglu,
  refRmsNorm,
  refRope,
  refSoftmax,
  refStoreKv,
  refSwiglu,
  refSwigluOai,
} from './reference/ops.js';
import { refDequantize, refGetRows, refMatmul, refQuantize } from './reference/quant/index.js';

/** The reference implementation of every kernel. */
export class ReferenceKernels implements Kernels {
  readonly name = 'reference';

  matmul(w: Uint8Array, wtype: GgmlType, rows: number, cols: number, x: Float32Array, n: number, y: Float32Array): void {
    refMatmul(w, wtype, rows, cols, x, n, y);
  }

  createExpertBatch(wtype: GgmlType, nExperts: number, nUsed: number, cols: number, maxTokens: number): ExpertBatch {
    return new ReferenceExpertBatch(wtype, nExperts, nUsed, cols, maxTokens);
  }

  prepareExperts(batch: ExpertBatch, wtype: GgmlType, x: Float32Array, nTokens: number, ids: Int32Array, input: ExpertInput): void {
    ownBatch(batch).prepare(wtype, x, nTokens, ids, input);
  }

  expertMatmul(batch: ExpertBatch, w: Uint8Array, wtype: GgmlType, rows: number, y: Float32Array, bias?: Float32Array): void {
    ownBatch(batch).matmul(w, wtype, rows, y, bias);
  }

  moeCombine(y: Float32Array, weights: Float32Array, nTokens: number, nUsed: number, dim: number, out: Float32Array): void {
    refMoeCombine(y, weights, nTokens, nUsed, dim, out);
  }

  getRows(w: Uint8Array, wtype: GgmlType, cols: number, ids: Int32Array, out: Float32Array): void {
    refGetRows(w, wtype, cols, ids, out);
  }

  dequantize(type: GgmlType, src: Uint8Array, dst: Float32Array, n: number): void {
    refDequantize(type, src, dst, n);
  }

  quantize(type: GgmlType, src: Float32Array, dst: Uint8Array, n: number): void {
    refQuantize(type, src, dst, n);
  }

  rmsNorm(x: Float32Array, weight: Float32Array, rows: number, dim: number, eps: number, out: Float32Array): void {
    needInt('rows', rows, 0);
    needInt('dim', dim, 1);
    needFinite('eps', eps);
    needLength('x', x, rows * dim);
    needLength('weight', weight, dim);
    needLength('out', out, rows * dim);
    refRmsNorm(x, weight, rows, dim, eps, out);
  }

  rope(x: Float32Array, nTokens: number, nHeads: number, headDim: number, positions: Int32Array, p: RopeParams): void {
    needInt('nTokens', nTokens, 0);
    needInt('nHeads', nHeads, 1);
    needInt('headDim', headDim, 1);
    needLength('x', x, nTokens * nHeads * headDim);
    needLength('positions', positions, nTokens);
    needInt('params.nRot', p.nRot, 2);
    if (p.nRot % 2 !== 0 || p.nRot > headDim) {
      throw new CairnError('BAD_ARGUMENT', `params.nRot must be even and at most headDim (${headDim}), got ${p.nRot}`);
    }
    if (!(p.freqBase > 0)) throw new CairnError('BAD_ARGUMENT', 'params.freqBase must be positive');
    needFinite('params.freqScale', p.freqScale);
    if (p.mode !== 'normal' && p.mode !== 'neox')
      throw new CairnError('BAD_ARGUMENT', `params.mode must be 'normal' or 'neox', got '${String(p.mode)}'`);
    if (p.freqFactors) needLength('params.freqFactors', p.freqFactors, p.nRot / 2);
    refRope(x, nTokens, nHeads, headDim, positions, p);
  }

  softmax(x: Float32Array, rows: number, cols: number): void {
    needInt('rows', rows, 0);
    needInt('cols', cols, 1);
    needLength('x', x, rows * cols);
    refSoftmax(x, rows, cols);
  }

  swiglu(gate: Float32Array, up: Float32Array, n: number, out: Float32Array): void {
    checkBinary('gate', gate, 'up', up, n, out);
    refSwiglu(gate, up, n, out);
  }

  geglu(gate: Float32Array, up: Float32Array, n: number, out: Float32Array): void {
    checkBinary('gate', gate, 'up', up, n, out);
    refGeglu(gate, up, n, out);
  }

  swigluOai(gate: Float32Array, up: Float32Array, n: number, alpha: number, limit: number, out: Float32Array): void {
    checkBinary('gate', gate, 'up', up, n, out);
    needFinite('alpha', alpha);
    needFinite('limit', limit);
    refSwigluOai(gate, up, n, alpha, limit, out);
  }

  add(a: Float32Array, b: Float32Array, n: number, out: Float32Array): void {
    checkBinary('a', a, 'b', b, n, out);
    refAdd(a, b, n, out);
  }

  storeKv(
    k: Float32Array,
    v: Float32Array,
    kCache: Uint8Array,
    vCache: Uint8Array,
    kvType: KvType,
    rowElems: number,
    pos0: number,
    nTokens: number,
    nKvHead: number,
    kvTiles?: boolean,
  ): void {
    needKvType('kvType', kvType);
    needTiles('kvTiles', kvTiles, kvType);
    needInt('rowElems', rowElems, 1);
    needInt('pos0', pos0, 0);
    needInt('nTokens', nTokens, 0);
    needInt('nKvHead', nKvHead, 1);
    needLength('k', k, nTokens * rowElems);
    needLength('v', v, nTokens * rowElems);
    if (rowElems % nKvHead !== 0) throw new CairnError('BAD_ARGUMENT', `rowElems (${rowElems}) must be a multiple of nKvHead (${nKvHead})`);
    if (kvType === 8 && (rowElems / nKvHead) % 32 !== 0) {
      throw new CairnError('BAD_ARGUMENT', `a Q8_0 cache needs heads of a multiple of 32 elements (rowElems ${rowElems}, nKvHead ${nKvHead})`);
    }
    const bytes = (pos0 + nTokens) * rowElems * kvElementBytes(kvType);
    needLength('kCache', kCache, bytes);
    needLength('vCache', vCache, bytes);
    if (kvTiles) needTileCapacity(kCache, vCache, rowElems);
    refStoreKv(k, v, kCache, vCache, kvType, rowElems, pos0, nTokens, nKvHead, kvTiles);
  }

  attention(q: Float32Array, kCache: Uint8Array, vCache: Uint8Array, p: AttentionParams, out: Float32Array): void {
    needInt('params.nTokens', p.nTokens, 0);
    needInt('params.nHead', p.nHead, 1);
    needInt('params.nKvHead', p.nKvHead, 1);
    needInt('params.headDim', p.headDim, 1);
    needInt('params.pos0', p.pos0, 0);
    needFinite('params.scale', p.scale);
    needKvType('params.kvType', p.kvType);
    needTiles('params.kvTiles', p.kvTiles, p.kvType);
    if (p.kvType === 8 && p.headDim % 32 !== 0) throw new CairnError('BAD_ARGUMENT', `a Q8_0 cache needs params.headDim (${p.headDim}) to be a multiple of 32`);
    if (p.window !== undefined) needInt('params.window', p.window, 0);
    if (p.sinks !== undefined) needLength('params.sinks', p.sinks, p.nHead);
    if (p.nHead % p.nKvHead !== 0) {
      throw new CairnError('BAD_ARGUMENT', `params.nHead (${p.nHead}) must be a multiple of params.nKvHead (${p.nKvHead})`);
    }
    const qElems = p.nTokens * p.nHead * p.headDim;
    needLength('q', q, qElems);
    needLength('out', out, qElems);
    const bytes = (p.pos0 + p.nTokens) * p.nKvHead * p.headDim * kvElementBytes(p.kvType);
    needLength('kCache', kCache, bytes);
    needLength('vCache', vCache, bytes);
    if (p.kvTiles) needTileCapacity(kCache, vCache, p.nKvHead * p.headDim);
    refAttention(q, kCache, vCache, p, out);
  }

  attentionSpans(q: Float32Array, k: Float32Array, v: Float32Array, spans: readonly AttentionSpan[], p: AttentionParams, out: Float32Array): void {
    const qRow = p.nHead * p.headDim;
    const kvRow = p.nKvHead * p.headDim;
    checkSpans(spans);
    for (const s of spans) {
      needInt('span.start', s.start, 0);
      needInt('span.nTokens', s.nTokens, 0);
      const rows = (a: Float32Array, row: number, name: string) => {
        needLength(name, a, (s.start + s.nTokens) * row);
        return a.subarray(s.start * row, (s.start + s.nTokens) * row);
      };
      this.storeKv(rows(k, kvRow, 'k'), rows(v, kvRow, 'v'), s.kCache, s.vCache, p.kvType, kvRow, s.pos0, s.nTokens, p.nKvHead, p.kvTiles);
      this.attention(rows(q, qRow, 'q'), s.kCache, s.vCache, { ...p, nTokens: s.nTokens, pos0: s.pos0 }, rows(out, qRow, 'out'));
    }
  }

  setThreads(n: number): void {
    needInt('threads', n, 1);
  }
}

/** kvTiles: a boolean (or absent), and only for a Q8_0 cache. */
function needTiles(name: string, tiles: unknown, kvType: KvType): void {
  if (tiles === undefined || tiles === null || tiles === false) return;
  if (tiles !== true) throw new CairnError('BAD_ARGUMENT', `${name} must be a boolean`);
  if (kvType !== 8) throw new CairnError('BAD_ARGUMENT', `${name}: only a Q8_0 cache (kvType 8) is kept in tiles`);
}

/** A tiled cache holds whole tiles of positions. */
function needTileCapacity(kCache: Uint8Array, vCache: Uint8Array, rowElems: number): void {
  for (const [name, c] of [
    ['kCache', kCache],
    ['vCache', vCache],
  ] as const) {
    const capacity = kvCapacity(c.byteLength, rowElems, 8);
    if (capacity % KV_TILE_ROWS !== 0) {
      throw new CairnError('BAD_ARGUMENT', `${name} holds ${capacity} positions, and a tiled Q8_0 cache holds a multiple of ${KV_TILE_ROWS}`);
    }
  }
}

/** attentionSpans' rules: rows that do not overlap, and every cache its own memory. */
function checkSpans(spans: readonly AttentionSpan[]): void {
  const rows = spans.filter((s) => s.nTokens > 0).sort((a, b) => a.start - b.start);
  for (let i = 1; i < rows.length; i++) {
    if (rows[i].start < rows[i - 1].start + rows[i - 1].nTokens) throw new CairnError('BAD_ARGUMENT', "the spans' rows must not overlap");
  }
  const caches = spans.filter((s) => s.nTokens > 0).flatMap((s) => [s.kCache, s.vCache]);
  const at = (c: Uint8Array) => [c.buffer, c.byteOffset, c.byteOffset + c.byteLength] as const;
  for (let i = 0; i < caches.length; i++) {
    for (let j = i + 1; j < caches.length; j++) {
      const [ba, a0, a1] = at(caches[i]);
      const [bb, b0, b1] = at(caches[j]);
      if (ba === bb && a0 < b1 && b0 < a1) {
        throw new CairnError('BAD_ARGUMENT', "the spans' caches must be distinct, non-overlapping memory (one sequence per span)");
      }
    }
  }
}

function ownBatch(batch: ExpertBatch): ReferenceExpertBatch {
  if (!(batch instanceof ReferenceExpertBatch)) throw new CairnError('BAD_ARGUMENT', 'the expert batch was made by other kernels than these');
  return batch;
}

function checkBinary(aName: string, a: Float32Array, bName: string, b: Float32Array, n: number, out: Float32Array): void {
  needInt('n', n, 0);
  needLength(aName, a, n);
  needLength(bName, b, n);
  needLength('out', out, n);
}

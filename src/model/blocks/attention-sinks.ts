/**
 * Attention sinks (gpt-oss): one learned logit per query head (`attn_sinks.weight`) that joins
 * every softmax of that head as one more entry without a value, so a head can give part of its
 * weight to nothing. As ggml's soft_max_ext with sinks: the row maximum includes the sink, the sink
 * adds expf(sink - max) to the f64 sum, and the weights of the real positions are e_j * f32(1/sum);
 * the sink is not scaled by the score scale.
 *
 * `SinkAttention` computes grouped-query attention over a KV cache with sinks and a sliding window
 * in TypeScript, exactly in the order and precision of the attention kernel (and of llama.cpp
 * without flash attention): scores f32(q.k) * scale with q rounded to f16 for an F16 cache, the
 * window masking positions it does not cover, weights rounded to f16 before the product with an
 * F16 V. It is the twin the attention kernels (native and reference, which take sinks and a
 * window in their parameters) are checked against.
 */
import { CairnError } from '../../util/errors.js';
import { GgmlType } from '../../gguf/ggml-types.js';
import { kvCapacity, type AttentionParams } from '../../kernels/api.js';
import { f32ToFp16, fp16ToF32 } from '../../kernels/reference/quant/index.js';
import type { TensorSource } from '../tensor-source.js';
import type { SyntheticTensors } from '../synthetic-tensors.js';
import { firstVisible } from './sliding-window.js';

/** llama.cpp's name of a layer's sinks, under the layer prefix. */
export const ATTN_SINKS = 'attn_sinks.weight';

/** Declares a layer's sinks: one f32 logit per query head. */
export function declareAttentionSinks(src: TensorSource, prefix: string, nHead: number): Float32Array {
  return src.vector(prefix + ATTN_SINKS, nHead);
}

/** Writes a layer's sinks into a synthetic model: logits around the largest scores (a few units), so they take a real share. */
export function synthesizeAttentionSinks(out: SyntheticTensors, prefix: string, nHead: number): void {
  out.f32(prefix + ATTN_SINKS, [nHead], 1, 3);
}

const f = Math.fround;

/** x rounded to the nearest IEEE half (ties to even), as llama.cpp rounds f32 operands of an F16 product. */
function toF16(x: number): number {
  return fp16ToF32(f32ToFp16(x));
}

/** Every f16 bit pattern's value, so that the loops below read an F16 cache with one lookup per element. */
const F16_VALUES: Float32Array = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = fp16ToF32(h);
  return t;
})();

/** Attention with sinks and a sliding window over one sequence's cache; holds its scratch between calls. */
export class SinkAttention {
  private scores = new Float32Array(0);
  private q = new Float32Array(0);
  private acc = new Float64Array(0);

  /**
   * As Kernels.attention (q: nTokens x nHead x headDim at cache positions pos0 + t; caches as
   * storeKv wrote them; out like q), with one sink logit per query head (undefined: none) and a
   * window of `window` positions (0: the whole context up to the query).
   */
  attend(
    q: Float32Array,
    kCache: Uint8Array,
    vCache: Uint8Array,
    p: AttentionParams,
    sinks: Float32Array | undefined,
    window: number,
    out: Float32Array,
  ): void {
    const { nTokens, nHead, nKvHead, headDim: d, pos0 } = p;
    const half = p.kvType === GgmlType.F16;
    const row = nKvHead * d;
    const nPos = pos0 + nTokens;
    if (q.length < nTokens * nHead * d || out.length < nTokens * nHead * d)
      throw new CairnError('BAD_ARGUMENT', 'attention: q or out too short');
    if (nHead % nKvHead !== 0) throw new CairnError('BAD_ARGUMENT', `attention: ${nHead} heads are not a multiple of ${nKvHead} KV heads`);
    if (sinks && sinks.length !== nHead) throw new CairnError('BAD_ARGUMENT', `attention: ${sinks.length} sinks for ${nHead} heads`);
    // Each cache head by head (Kernels.storeKv): a head's rows are contiguous, d apart.
    const kCap = kvCapacity(kCache.byteLength, row, p.kvType);
    const vCap = kvCapacity(vCache.byteLength, row, p.kvType);
    if (kCap < nPos || vCap < nPos) throw new CairnError('BAD_ARGUMENT', `attention: a cache holds fewer than ${nPos} positions`);
    const k = cacheArray(kCache, half, kCap * row);
    const v = cacheArray(vCache, half, vCap * row);
    if (this.scores.length < nPos) this.scores = new Float32Array(nPos);
    if (this.q.length < d) {
      this.q = new Float32Array(d);
      this.acc = new Float64Array(d);
    }
    const { scores, q: qh, acc } = this;
    const group = nHead / nKvHead;
    const scale = f(p.scale);
    for (let t = 0; t < nTokens; t++) {
      const pos = pos0 + t;
      const first = firstVisible(pos, window);
      for (let h = 0; h < nHead; h++) {
        const kvHead = Math.floor(h / group);
        const qOff = (t * nHead + h) * d;
        for (let i = 0; i < d; i++) qh[i] = half ? toF16(q[qOff + i]) : q[qOff + i];
        const max0 = half
          ? scoresF16(k as Uint16Array, qh, d, d, kvHead * kCap * d, first, pos, scale, scores)
          : scoresF32(k as Float32Array, qh, d, d, kvHead * kCap * d, first, pos, scale, scores);
        const sink = sinks ? sinks[h] : -Infinity;
        const max = sink > max0 ? sink : max0;
        let sum = 0;
        for (let j = first; j <= pos; j++) {
          const e = f(Math.exp(f(scores[j] - max)));
          scores[j] = e;
          sum += e;
        }
        if (sinks) sum += f(Math.exp(f(sink - max)));
        const inv = f(1 / sum);
        acc.fill(0, 0, d);
        if (half) weighF16(v as Uint16Array, scores, inv, d, d, kvHead * vCap * d, first, pos, acc);
        else weighF32(v as Float32Array, scores, inv, d, d, kvHead * vCap * d, first, pos, acc);
        for (let i = 0; i < d; i++) out[qOff + i] = acc[i];
      }
    }
  }
}

/** Scores f32(q.k) * scale of positions [first, pos] into scores; returns their maximum. */
function scoresF16(
  k: Uint16Array,
  qh: Float32Array,
  d: number,
  row: number,
  kvOff: number,
  first: number,
  pos: number,
  scale: number,
  scores: Float32Array,
): number {
  let max = -Infinity;
  for (let j = first; j <= pos; j++) {
    let dot = 0;
    const o = j * row + kvOff;
    for (let i = 0; i < d; i++) dot += F16_VALUES[k[o + i]] * qh[i];
    const s = f(f(dot) * scale);
    scores[j] = s;
    if (s > max) max = s;
  }
  return max;
}

function scoresF32(
  k: Float32Array,
  qh: Float32Array,
  d: number,
  row: number,
  kvOff: number,
  first: number,
  pos: number,
  scale: number,
  scores: Float32Array,
): number {
  let max = -Infinity;
  for (let j = first; j <= pos; j++) {
    let dot = 0;
    const o = j * row + kvOff;
    for (let i = 0; i < d; i++) dot += k[o + i] * qh[i];
    const s = f(f(dot) * scale);
    scores[j] = s;
    if (s > max) max = s;
  }
  return max;
}

/** acc += w_j * v_j over positions [first, pos], w_j = f16(e_j * inv) as llama.cpp rounds the weights for an F16 V. */
function weighF16(
  v: Uint16Array,
  e: Float32Array,
  inv: number,
  d: number,
  row: number,
  kvOff: number,
  first: number,
  pos: number,
  acc: Float64Array,
): void {
  for (let j = first; j <= pos; j++) {
    const w = toF16(f(e[j] * inv));
    const o = j * row + kvOff;
    for (let i = 0; i < d; i++) acc[i] += w * F16_VALUES[v[o + i]];
  }
}

function weighF32(
  v: Float32Array,
  e: Float32Array,
  inv: number,
  d: number,
  row: number,
  kvOff: number,
  first: number,
  pos: number,
  acc: Float64Array,
): void {
  for (let j = first; j <= pos; j++) {
    const w = f(e[j] * inv);
    const o = j * row + kvOff;
    for (let i = 0; i < d; i++) acc[i] += w * v[o + i];
  }
}

/** A cache of `elems` elements as a typed array (f16 bits or f32), copied where its bytes are not aligned. */
function cacheArray(cache: Uint8Array, half: boolean, elems: number): Uint16Array | Float32Array {
  const size = half ? 2 : 4;
  const bytes = cache.byteOffset % size === 0 ? cache : cache.slice(0, elems * size);
  return half ? new Uint16Array(bytes.buffer, bytes.byteOffset, elems) : new Float32Array(bytes.buffer, bytes.byteOffset, elems);
}

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
 * F16 V. It stands in for the kernel, which knows neither sinks nor windows.
 */
import { CairnError } from '../../util/errors.js';
import { GgmlType } from '../../gguf/ggml-types.js';
import type { AttentionParams } from '../../kernels/api.js';
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

/** Writes a layer's sinks into a synthetic model: logits around the size of the scores, so they matter. */
export function synthesizeAttentionSinks(out: SyntheticTensors, prefix: string, nHead: number): void {
  out.f32(prefix + ATTN_SINKS, [nHead], 1);
}

const f = Math.fround;

/** x rounded to the nearest IEEE half (ties to even), as llama.cpp rounds f32 operands of an F16 product. */
function toF16(x: number): number {
  return fp16ToF32(f32ToFp16(x));
}

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
    const k = cacheView(kCache, half, nPos * row, 'kCache');
    const v = cacheView(vCache, half, nPos * row, 'vCache');
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
        const kvOff = Math.floor(h / group) * d;
        const qOff = (t * nHead + h) * d;
        for (let i = 0; i < d; i++) qh[i] = half ? toF16(q[qOff + i]) : q[qOff + i];
        let max = -Infinity;
        for (let j = first; j <= pos; j++) {
          let dot = 0;
          const kOff = j * row + kvOff;
          for (let i = 0; i < d; i++) dot += k(kOff + i) * qh[i];
          const s = f(f(dot) * scale);
          scores[j] = s;
          if (s > max) max = s;
        }
        const sink = sinks ? sinks[h] : -Infinity;
        if (sink > max) max = sink;
        let sum = 0;
        for (let j = first; j <= pos; j++) {
          const e = f(Math.exp(f(scores[j] - max)));
          scores[j] = e;
          sum += e;
        }
        if (sinks) sum += f(Math.exp(f(sink - max)));
        const inv = f(1 / sum);
        acc.fill(0, 0, d);
        for (let j = first; j <= pos; j++) {
          const w = f(scores[j] * inv);
          const wj = half ? toF16(w) : w;
          const vOff = j * row + kvOff;
          for (let i = 0; i < d; i++) acc[i] += wj * v(vOff + i);
        }
        for (let i = 0; i < d; i++) out[qOff + i] = acc[i];
      }
    }
  }
}

/** Element reader of a cache of `elems` elements (f16 or f32, little-endian as storeKv writes them). */
function cacheView(cache: Uint8Array, half: boolean, elems: number, name: string): (i: number) => number {
  const size = half ? 2 : 4;
  if (cache.byteLength < elems * size) throw new CairnError('BAD_ARGUMENT', `attention: ${name} holds fewer than ${elems} elements`);
  if (cache.byteOffset % size === 0) {
    if (half) {
      const a = new Uint16Array(cache.buffer, cache.byteOffset, elems);
      return (i) => fp16ToF32(a[i]);
    }
    const a = new Float32Array(cache.buffer, cache.byteOffset, elems);
    return (i) => a[i];
  }
  const dv = new DataView(cache.buffer, cache.byteOffset, cache.byteLength);
  return half ? (i) => fp16ToF32(dv.getUint16(2 * i, true)) : (i) => dv.getFloat32(4 * i, true);
}

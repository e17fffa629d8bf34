/**
 * Attention over one whole sequence at once, without a KV cache: an encoder reads its input in a
 * single pass and keeps nothing, so its keys and values are this pass's own rows. Every token
 * sees every other (bidirectional) unless the model asks for causal attention. Computed as
 * llama.cpp computes it without flash attention, all in f32: per head, scores = K Q^T (the matrix
 * kernel over f32 rows), scaled, softmax, then V^T times the weights. Queries go in chunks so the
 * score matrix stays small for long inputs.
 */
import { GgmlType } from '../../gguf/ggml-types.js';
import type { Kernels } from '../../kernels/api.js';

/** Heads of an attention block. */
export interface FullAttentionShape {
  readonly nHead: number;
  readonly nKvHead: number;
  readonly headDim: number;
}

/** Query rows whose scores are computed at once: bounds the score buffer to this many rows of the sequence. */
const QUERY_CHUNK = 256;

/** Bytes of an f32 array, for the matrix kernel's weight argument. */
function asBytes(a: Float32Array, n: number): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, n * 4);
}

/** Attention of one sequence of up to `maxTokens` over itself; buffers are allocated once here. */
export class FullAttention {
  private readonly q: Float32Array;
  private readonly k: Float32Array;
  private readonly vt: Float32Array;
  private readonly scores: Float32Array;
  private readonly o: Float32Array;

  constructor(
    readonly shape: FullAttentionShape,
    readonly maxTokens: number,
    readonly causal: boolean,
  ) {
    const hd = shape.headDim;
    if (!(shape.nHead > 0 && shape.nKvHead > 0 && shape.nHead % shape.nKvHead === 0 && hd > 0)) {
      throw new RangeError(`attention of ${shape.nHead} heads over ${shape.nKvHead} KV heads of ${hd}`);
    }
    this.q = new Float32Array(maxTokens * hd);
    this.k = new Float32Array(maxTokens * hd);
    this.vt = new Float32Array(maxTokens * hd);
    this.scores = new Float32Array(Math.min(QUERY_CHUNK, maxTokens) * maxTokens);
    this.o = new Float32Array(Math.min(QUERY_CHUNK, maxTokens) * hd);
  }

  /**
   * out (n x nHead*headDim) = attention of q (n x nHead*headDim) over k and v (n x nKvHead*headDim),
   * all rows of one sequence in order; `scale` multiplies each score before the softmax.
   */
  forward(kernels: Kernels, q: Float32Array, k: Float32Array, v: Float32Array, n: number, scale: number, out: Float32Array): void {
    const { nHead, nKvHead, headDim: hd } = this.shape;
    if (!(Number.isInteger(n) && n >= 1 && n <= this.maxTokens)) throw new RangeError(`a sequence of ${n} tokens (1 to ${this.maxTokens})`);
    const qw = nHead * hd;
    const kw = nKvHead * hd;
    if (q.length < n * qw || out.length < n * qw || k.length < n * kw || v.length < n * kw) throw new RangeError('attention buffers too small');
    const group = nHead / nKvHead;
    const { q: qh, k: kh, vt, scores, o } = this;
    for (let kvh = 0; kvh < nKvHead; kvh++) {
      // This KV head's keys as rows and its values transposed (one row per dimension): the two
      // products below are then plain matrix-times-rows calls.
      for (let s = 0; s < n; s++) {
        const src = s * kw + kvh * hd;
        for (let d = 0; d < hd; d++) {
          kh[s * hd + d] = k[src + d];
          vt[d * n + s] = v[src + d];
        }
      }
      const kBytes = asBytes(kh, n * hd);
      const vBytes = asBytes(vt, n * hd);
      for (let h = kvh * group; h < (kvh + 1) * group; h++) {
        for (let t = 0; t < n; t++) qh.set(q.subarray(t * qw + h * hd, t * qw + (h + 1) * hd), t * hd);
        for (let t0 = 0; t0 < n; t0 += QUERY_CHUNK) {
          const m = Math.min(QUERY_CHUNK, n - t0);
          const sc = scores.subarray(0, m * n);
          kernels.matmul(kBytes, GgmlType.F32, n, hd, qh.subarray(t0 * hd, (t0 + m) * hd), m, sc);
          for (let i = 0; i < m; i++) {
            const row = i * n;
            for (let s = 0; s < n; s++) sc[row + s] = this.causal && s > t0 + i ? -Infinity : sc[row + s] * scale;
          }
          kernels.softmax(sc, m, n);
          const oh = o.subarray(0, m * hd);
          kernels.matmul(vBytes, GgmlType.F32, hd, n, sc, m, oh);
          for (let i = 0; i < m; i++) out.set(oh.subarray(i * hd, (i + 1) * hd), (t0 + i) * qw + h * hd);
        }
      }
    }
  }
}

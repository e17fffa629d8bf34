/**
 * Attention with sinks and a sliding window (attention-sinks.ts) through the kernels' matrix
 * products, as llama.cpp computes attention without flash attention: per KV head, the scores are
 * one product of the cached keys (F16 or F32, the cache's type) with the group's queries, which the
 * product converts as llama.cpp converts them (to f16 for an F16 cache); the softmax with the sink
 * and the window mask runs here; the output is one product of the cached values, transposed (as
 * llama.cpp keeps V), with the weights, converted the same way. The products run natively on the
 * thread pool, so a long prompt costs what a matrix product costs rather than a TypeScript loop.
 *
 * The keys of one KV head are strided in the cache (positions x KV heads x head size), so each
 * chunk of tokens first gathers them, and transposes the values, over the positions it can see.
 */
import { CairnError } from '../../util/errors.js';
import { GgmlType } from '../../gguf/ggml-types.js';
import type { AttentionParams, Kernels } from '../../kernels/api.js';
import { firstVisible } from './sliding-window.js';

const f = Math.fround;

/**
 * Tokens whose attention one pair of products computes: a chunk sees only the positions up to its
 * last token (and, on a windowed layer, from its first token's window), so chunks of a long
 * prompt skip most of the masked part of the scores.
 */
const CHUNK = 64;

/** Most scores (f32) one chunk holds: far into a long context a chunk has fewer tokens, so its scratch stays within 16 MiB. */
const SCORE_BUDGET = 1 << 22;

/**
 * The gathered keys, transposed values, queries, scores and outputs of one chunk. One set serves
 * every layer of every shard in the process: attention calls are synchronous and never nest, and
 * a set per layer would hold tens of megabytes each on long contexts.
 */
class ProductScratch {
  keys = new Uint8Array(0);
  valuesT = new Uint8Array(0);
  x = new Float32Array(0);
  scores = new Float32Array(0);
  o = new Float32Array(0);

  reserve(cacheBytes: number, xLen: number, scoreLen: number): void {
    // Whole elements of either width; 4-byte aligned for the f32 views.
    if (this.keys.byteLength < cacheBytes) {
      const bytes = Math.ceil(cacheBytes / 4) * 4;
      this.keys = new Uint8Array(bytes);
      this.valuesT = new Uint8Array(bytes);
    }
    if (this.x.length < xLen) {
      this.x = new Float32Array(xLen);
      this.o = new Float32Array(xLen);
    }
    if (this.scores.length < scoreLen) this.scores = new Float32Array(scoreLen);
  }
}

const scratch = new ProductScratch();

/** Grouped-query attention with sinks and a window over one sequence's cache. */
export class SinkAttentionProducts {
  /** @param scoreBudget most scores one chunk of tokens holds (tests make it small to exercise the split). */
  constructor(private readonly scoreBudget = SCORE_BUDGET) {}

  /**
   * As SinkAttention.attend (q: nTokens x nHead x headDim at positions pos0 + t; caches as storeKv
   * wrote them; out like q; one sink logit per query head or none; a window of `window`
   * positions, 0 for none), with the products on `kernels`.
   */
  attend(
    kernels: Kernels,
    q: Float32Array,
    kCache: Uint8Array,
    vCache: Uint8Array,
    p: AttentionParams,
    sinks: Float32Array | undefined,
    window: number,
    out: Float32Array,
  ): void {
    const { nTokens: n, nHead, nKvHead, headDim: d, pos0 } = p;
    const half = p.kvType === GgmlType.F16;
    const row = nKvHead * d;
    const end = pos0 + n;
    if (q.length < n * nHead * d || out.length < n * nHead * d) throw new CairnError('BAD_ARGUMENT', 'attention: q or out too short');
    if (nHead % nKvHead !== 0) throw new CairnError('BAD_ARGUMENT', `attention: ${nHead} heads are not a multiple of ${nKvHead} KV heads`);
    if (sinks && sinks.length !== nHead) throw new CairnError('BAD_ARGUMENT', `attention: ${sinks.length} sinks for ${nHead} heads`);
    const kc = elements(kCache, half, end * row, 'kCache');
    const vc = elements(vCache, half, end * row, 'vCache');
    const group = nHead / nKvHead;
    for (let c = 0; c < n;) {
      let count = Math.min(CHUNK, n - c);
      const lo = firstVisible(pos0 + c, window);
      while (count > 1 && count * group * (pos0 + c + count - lo) > this.scoreBudget) count = Math.ceil(count / 2);
      this.chunk(kernels, q, kc, vc, p, sinks, window, out, c, count);
      c += count;
    }
  }

  /** Tokens [t0, t0 + count) of the span, over the positions they can see. */
  private chunk(
    kernels: Kernels,
    q: Float32Array,
    kc: Uint16Array | Float32Array,
    vc: Uint16Array | Float32Array,
    p: AttentionParams,
    sinks: Float32Array | undefined,
    window: number,
    out: Float32Array,
    t0: number,
    count: number,
  ): void {
    const { nHead, nKvHead, headDim: d, pos0 } = p;
    const half = p.kvType === GgmlType.F16;
    const type = half ? GgmlType.F16 : GgmlType.F32;
    const size = half ? 2 : 4;
    const row = nKvHead * d;
    // Positions any token of the chunk sees: from its first token's window start to its last token.
    const lo = firstVisible(pos0 + t0, window);
    const m = pos0 + t0 + count - lo;
    const group = nHead / nKvHead;
    const rows = count * group;
    scratch.reserve(m * d * size, rows * d, rows * m);
    const keys = half ? new Uint16Array(scratch.keys.buffer, 0, m * d) : new Float32Array(scratch.keys.buffer, 0, m * d);
    const valuesT = half ? new Uint16Array(scratch.valuesT.buffer, 0, m * d) : new Float32Array(scratch.valuesT.buffer, 0, m * d);
    const keyBytes = scratch.keys.subarray(0, m * d * size);
    const valueBytes = scratch.valuesT.subarray(0, m * d * size);
    const { x, scores, o } = scratch;
    const scale = f(p.scale);

    for (let g = 0; g < nKvHead; g++) {
      for (let j = 0; j < m; j++) {
        const at = (lo + j) * row + g * d;
        // Element loops rather than subarray copies: a view per row would be garbage by the thousand.
        for (let i = 0; i < d; i++) {
          keys[j * d + i] = kc[at + i];
          valuesT[i * m + j] = vc[at + i];
        }
      }
      // The group's query heads are adjacent within each token.
      for (let t = 0; t < count; t++) {
        const at = ((t0 + t) * nHead + g * group) * d;
        x.set(q.subarray(at, at + group * d), t * group * d);
      }
      kernels.matmul(keyBytes, type, m, d, x, rows, scores);
      for (let t = 0; t < count; t++) {
        const pos = pos0 + t0 + t;
        const first = firstVisible(pos, window) - lo;
        const last = pos - lo;
        for (let hh = 0; hh < group; hh++) {
          const r = (t * group + hh) * m;
          softmaxWithSink(scores, r, m, first, last, scale, sinks ? sinks[g * group + hh] : undefined);
        }
      }
      kernels.matmul(valueBytes, type, d, m, scores, rows, o);
      for (let t = 0; t < count; t++) {
        out.set(o.subarray(t * group * d, (t + 1) * group * d), ((t0 + t) * nHead + g * group) * d);
      }
    }
  }
}

/**
 * ggml's soft_max_ext on one row of m scores at s[r..r+m): positions [first, last] visible (the
 * rest masked to weight 0), scores scaled in f32, the sink (unscaled) in the maximum and the f64
 * sum, weights e * f32(1 / sum).
 */
function softmaxWithSink(
  s: Float32Array,
  r: number,
  m: number,
  first: number,
  last: number,
  scale: number,
  sink: number | undefined,
): void {
  let max = sink ?? -Infinity;
  for (let j = first; j <= last; j++) {
    const v = f(s[r + j] * scale);
    s[r + j] = v;
    if (v > max) max = v;
  }
  let sum = 0;
  for (let j = first; j <= last; j++) {
    const e = f(Math.exp(f(s[r + j] - max)));
    s[r + j] = e;
    sum += e;
  }
  if (sink !== undefined) sum += f(Math.exp(f(sink - max)));
  const inv = f(1 / sum);
  for (let j = first; j <= last; j++) s[r + j] = f(s[r + j] * inv);
  s.fill(0, r, r + first);
  s.fill(0, r + last + 1, r + m);
}

/** A cache's first `elems` elements as f16 bits or f32 values, copied where its bytes are not aligned. */
function elements(cache: Uint8Array, half: boolean, elems: number, name: string): Uint16Array | Float32Array {
  const size = half ? 2 : 4;
  if (cache.byteLength < elems * size) throw new CairnError('BAD_ARGUMENT', `attention: ${name} holds fewer than ${elems} elements`);
  const bytes = cache.byteOffset % size === 0 ? cache : cache.slice(0, elems * size);
  return half ? new Uint16Array(bytes.buffer, bytes.byteOffset, elems) : new Float32Array(bytes.buffer, bytes.byteOffset, elems);
}

/**
 * The kernel API the model code is written against. Two implementations exist: the native library
 * (fast, the default) and a TypeScript reference twin (the oracle in tests). Both compute the same
 * function up to float rounding; tests compare them on random inputs of awkward sizes.
 *
 * Conventions: matrices are row-major; a weight matrix W of `rows` x `cols` is stored as GGUF does
 * (ne0 = cols is contiguous), in its file type, passed as the raw bytes. Activations are f32.
 * Output buffers may not alias inputs unless a method says so. Nothing allocates per call on the
 * native side beyond grow-only scratch.
 */
import type { GgmlType } from '../gguf/ggml-types.js';

/**
 * Element type of a KV cache: f32, f16 (llama.cpp's default) or Q8_0 (blocks of 32 int8 values and
 * an f16 scale: 34 bytes per 32 elements, about half of f16; head dimensions a multiple of 32).
 */
export type KvType = GgmlType.F32 | GgmlType.F16 | GgmlType.Q8_0;

/** Bytes per cache element of a KV type (Q8_0: 34/32, exact for whole blocks). */
export function kvElementBytes(type: KvType): number {
  return type === 8 ? 34 / 32 : type === 1 ? 2 : 4;
}

/**
 * Positions a cache of `bytes` holds for rows of `rowElems` elements: the stride of its heads. A KV
 * cache stores its rows head by head (each KV head's rows of every position in one stretch: head h's
 * row of position i at element (h x capacity + i) x headDim), so the rows one head's attention reads
 * are contiguous; with one head (latent attention's rows) that is plain rows.
 */
export function kvCapacity(bytes: number, rowElems: number, type: KvType): number {
  return Math.floor(bytes / (rowElems * kvElementBytes(type)));
}

/**
 * Positions per tile of a tiled Q8_0 cache (kv-layout.ts): such a cache holds a multiple of this
 * many positions, and each tile takes the bytes (and the place) of its positions' rows.
 */
export const KV_TILE_ROWS = 16;

/** Rotary embedding layout: `normal` rotates adjacent pairs (llama), `neox` rotates halves (qwen). */
export type RopeMode = 'normal' | 'neox';

/** Parameters of one rotary embedding application. */
export interface RopeParams {
  /** Dimensions rotated per head (<= headDim; the rest pass through). */
  nRot: number;
  freqBase: number;
  /** Linear position scale (1 / rope scaling factor); 1 for none. */
  freqScale: number;
  mode: RopeMode;
  /** Optional per-frequency divisors of length nRot/2 (llama3 rope scaling's `rope_freqs`). */
  freqFactors?: Float32Array;
}

/**
 * Cache rows per chunk of the fused attention: its online softmax merges chunks that start at
 * multiples of this position (native/src/attention.c ATTN_CHUNK says the same).
 */
export const ATTENTION_CHUNK = 512;

/** One sequence's attention over its KV cache. */
export interface AttentionParams {
  nTokens: number;
  nHead: number;
  nKvHead: number;
  headDim: number;
  /** Cache position of the first query token; token t sees cache positions [0, pos0 + t]. */
  pos0: number;
  /** Score scale, usually 1/sqrt(headDim). */
  scale: number;
  kvType: KvType;
  /** A Q8_0 cache kept in tiles of KV_TILE_ROWS positions (kv-layout.ts), as storeKv wrote it with kvTiles. */
  kvTiles?: boolean;
  /**
   * One sink logit per query head (gpt-oss): it joins each softmax of its head as one more entry
   * without a value (the maximum includes it; it adds expf(sink - max) to the sum, unscaled).
   */
  sinks?: Float32Array;
  /** A sliding window: each token sees only the last `window` positions, itself included (0 or absent: all). */
  window?: number;
  /** Scores squashed to softcap * tanh(score / softcap) before the softmax (Gemma 2's attention logit softcapping); 0 or absent: none. */
  softcap?: number;
}

/** One sequence's rows of a batch for attentionSpans, and its caches. */
export interface AttentionSpan {
  /** First row of the batch (of q, k, v and out) that is this sequence's. */
  start: number;
  nTokens: number;
  /** Cache position of the span's first token. */
  pos0: number;
  kCache: Uint8Array;
  vCache: Uint8Array;
}

/**
 * Which activation row each (token, expert slot) pair of an expert product reads: `token` - one row
 * per token, shared by all the experts it was routed to (the gate and up products of a MoE layer);
 * `slot` - one row per pair (the down product, whose input is each expert's own output).
 */
export type ExpertInput = 'token' | 'slot';

/**
 * Activations of the expert products of one Mixture-of-Experts layer, converted once for the weight
 * type's dot products and grouped by expert. Made once per shard by `Kernels.createExpertBatch` (its
 * memory is reused every step), filled by `prepareExperts`, read by any number of `expertMatmul`
 * calls: the gate and up products of the same input share one preparation. A batch belongs to the
 * Kernels object that made it.
 */
export interface ExpertBatch {
  /** Experts of the layer (the outermost dimension of its 3-D expert tensors). */
  readonly nExperts: number;
  /** Experts each token is routed to. */
  readonly nUsed: number;
  /** Elements per activation row (the weights' `cols`). */
  readonly cols: number;
  /** Most tokens one preparation may hold. */
  readonly maxTokens: number;
  /** Tokens of the current preparation (0 before the first). */
  readonly nTokens: number;
}

/** A weight matrix of `rows` x `cols` of `type` in the file's layout (model/tensor-source.ts's Matrix fits). */
export interface WeightMatrix {
  readonly data: Uint8Array;
  readonly type: GgmlType;
  readonly rows: number;
  readonly cols: number;
}

/** The kernels used by model code. Every method is synchronous and runs on the kernel thread pool. */
export interface Kernels {
  /** Implementation name, e.g. `native-avx512` or `reference`. */
  readonly name: string;

  /**
   * y[t, r] = dot(W[r, :], x[t, :]) for t < n, r < rows, with activations converted the way
   * llama.cpp does for the weight type (F16 -> f16, BF16 -> bf16, Q4_0/Q5_0/Q8_0/MXFP4 -> Q8_0,
   * Q4_1/Q5_1 -> Q8_1, K-quants -> Q8_K).
   */
  matmul(w: Uint8Array, wtype: GgmlType, rows: number, cols: number, x: Float32Array, n: number, y: Float32Array): void;

  /**
   * Copies weight matrices into a layout of the kernels' own (one allocation for the call), which
   * matmul, getRows and expertMatmul (an expert bank packed as one matrix of its experts' rows)
   * then read for each `data` (that view object) with the same results bit for bit, faster. For
   * weights that never change (a model's): the kernels would go on reading a copy after its view's
   * bytes changed. Returns each copy's bytes, 0 where these kernels keep no such copy (the type,
   * the CPU, fewer than 16 rows, or the view already packed); the views stay readable and are
   * still read where a copy cannot serve (another CPU level forced).
   */
  packWeights?(matrices: readonly WeightMatrix[]): number[];

  /**
   * A reusable holder of expert-product activations: up to `maxTokens` tokens of `cols` routed to
   * `nUsed` of `nExperts` experts each, sized for weights of `wtype`: a batch made for a float type
   * (F32, F16, BF16) holds activations for any weight type, one made for a quantized type (4x
   * smaller) for any quantized type.
   */
  createExpertBatch(wtype: GgmlType, nExperts: number, nUsed: number, cols: number, maxTokens: number): ExpertBatch;

  /**
   * Converts the activations once for weights of `wtype` (as matmul does) and groups the (token,
   * slot) pairs by expert. `ids` holds nTokens x nUsed expert ids in [0, nExperts) (the router's
   * choice, slot s of token t at t * nUsed + s); `x` holds nTokens rows of cols (input `token`) or
   * nTokens * nUsed rows in pair order (input `slot`). Every id is checked before any work.
   */
  prepareExperts(batch: ExpertBatch, wtype: GgmlType, x: Float32Array, nTokens: number, ids: Int32Array, input: ExpertInput): void;

  /**
   * The expert products of a prepared batch: y[(t * nUsed + s) * rows + r] = dot(W[e][r, :], the
   * activation row of (t, s)) (+ bias[e * rows + r]) with e = ids[t * nUsed + s]. `w` is the 3-D
   * expert tensor as stored in GGUF (nExperts x rows x cols of wtype, experts outermost), used in
   * place; wtype must pair with the activation form the batch was prepared for. Each expert's
   * weights are read once for all the tokens routed to it; experts and their rows are split over
   * the thread pool. y must not overlap w, bias or the batch.
   */
  expertMatmul(batch: ExpertBatch, w: Uint8Array, wtype: GgmlType, rows: number, y: Float32Array, bias?: Float32Array): void;

  /**
   * The weighted sum of a MoE layer's expert outputs: out[t, :] = Σ_s weights[t * nUsed + s] *
   * y[(t * nUsed + s), :] for rows of `dim`, each product rounded, then added in slot order (as
   * llama.cpp does). out must not overlap y.
   */
  moeCombine(y: Float32Array, weights: Float32Array, nTokens: number, nUsed: number, dim: number, out: Float32Array): void;

  /** out[i, :] = dequantized row ids[i] of W (rows x cols of wtype). */
  getRows(w: Uint8Array, wtype: GgmlType, cols: number, ids: Int32Array, out: Float32Array): void;

  /** Dequantizes n elements of `type` into dst. */
  dequantize(type: GgmlType, src: Uint8Array, dst: Float32Array, n: number): void;

  /** Quantizes n f32 elements (a multiple of the block size) into dst in `type`'s layout. */
  quantize(type: GgmlType, src: Float32Array, dst: Uint8Array, n: number): void;

  /** out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight, for `rows` rows of `dim`. out may alias x. */
  rmsNorm(x: Float32Array, weight: Float32Array, rows: number, dim: number, eps: number, out: Float32Array): void;

  /**
   * Rotates, in place, x = nTokens x nHeads x headDim at the given positions.
   * positions has nTokens entries.
   */
  rope(x: Float32Array, nTokens: number, nHeads: number, headDim: number, positions: Int32Array, p: RopeParams): void;

  /** Softmax of each of `rows` rows of `cols`, in place. */
  softmax(x: Float32Array, rows: number, cols: number): void;

  /** out[i] = silu(gate[i]) * up[i] for i < n. out may alias gate or up. */
  swiglu(gate: Float32Array, up: Float32Array, n: number, out: Float32Array): void;

  /**
   * gpt-oss's gated unit (ggml's swiglu_oai): with g = min(gate[i], limit) and u = clamp(up[i],
   * -limit, limit), out[i] = g / (1 + exp(-alpha * g)) * (u + 1) for i < n. out may alias.
   */
  swigluOai(gate: Float32Array, up: Float32Array, n: number, alpha: number, limit: number, out: Float32Array): void;

  /** out[i] = gelu(gate[i]) * up[i] (tanh approximation, as llama.cpp) for i < n. out may alias. */
  geglu(gate: Float32Array, up: Float32Array, n: number, out: Float32Array): void;

  /** out[i] = a[i] + b[i] for i < n. out may alias a or b. */
  add(a: Float32Array, b: Float32Array, n: number, out: Float32Array): void;

  /**
   * Writes nTokens rows of rowElems = nKvHead*headDim f32 values (k and v) into the caches at
   * positions [pos0, pos0 + nTokens), converting to the cache type. Each cache is a Uint8Array of
   * kvCapacity(bytes, rowElems, kvType) positions, laid out head by head (see kvCapacity); with
   * `kvTiles`, a Q8_0 cache in tiles (kv-layout.ts; its capacity a multiple of KV_TILE_ROWS).
   */
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
  ): void;

  /**
   * Causal grouped-query attention for one sequence: q is nTokens x nHead x headDim (f32),
   * caches hold positions [0, pos0 + nTokens) as stored by storeKv (each cache's head stride its
   * kvCapacity); out is nTokens x nHead x headDim.
   * Fused (online softmax over chunks of ATTENTION_CHUNK cache rows at fixed positions, merged in
   * order), so a token's result never depends on its batch or the thread count. With an F16 cache
   * q is rounded to f16 before its products (as llama.cpp does), with f32 accumulation.
   */
  attention(q: Float32Array, kCache: Uint8Array, vCache: Uint8Array, p: AttentionParams, out: Float32Array): void;

  /**
   * storeKv then attention for each span of a batch of several sequences, in one call: q and out
   * are rows x nHead x headDim, k and v rows x nKvHead x headDim, span i's rows [start, start +
   * nTokens) of each. p gives the heads, scale, cache type, sinks and window (its nTokens and pos0
   * are the spans'). Spans' rows must not overlap, and every cache must be its own memory (one span
   * per sequence). Each span's result is what storeKv and attention give it alone; the native
   * library runs many small spans side by side, each on one thread.
   */
  attentionSpans(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    spans: readonly AttentionSpan[],
    p: AttentionParams,
    out: Float32Array,
  ): void;

  /** Sets the kernel thread count (native; the reference ignores it). */
  setThreads(n: number): void;

  /**
   * Whether these kernels read a Q8_0 cache faster in tiles (kv-layout.ts) than in rows, so that a
   * new one should be tiled; absent: false. Every implementation reads both.
   */
  kvTilesPreferred?(): boolean;

  /**
   * Zeroed memory for a large buffer the kernels stream (a KV cache's arena), on huge pages where
   * the OS gives them; undefined where an ordinary ArrayBuffer serves as well (small sizes, no such
   * memory here). Absent: always an ordinary ArrayBuffer.
   */
  allocateZeroed?(bytes: number): ArrayBuffer | undefined;

  /**
   * Faults a fresh buffer's pages in, writable, before a copy fills it: on a virtual machine a
   * copy that faulted a gigabyte of huge pages in one at a time ran 10x slower than populating it
   * first. False where the OS cannot (the pages then fault in on use). Absent: nothing done.
   */
  populateWrite?(bytes: ArrayBuffer): boolean;
}

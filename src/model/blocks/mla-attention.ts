/**
 * Multi-head latent attention (DeepSeek V2/V3/R1, Kimi K2) in the absorbed form llama.cpp runs for
 * prefill and decode alike (src/models/deepseek2.cpp): each token's keys and values are one
 * compressed latent c (kv_lora_rank, RMS-normed) plus one roped key part k_pe shared by all heads,
 * and that row of kvLora + rope elements is all the KV cache holds. Queries come from the hidden
 * state directly (`attn_q`, V2-Lite) or through their own low-rank bottleneck (`attn_q_a`, norm,
 * `attn_q_b`); each head's non-rotated query part is absorbed into latent space by that head's
 * `attn_k_b` (W_UK^T), so attention is multi-query attention with one "head" of kvLora + rope whose
 * values are the latent itself; each head's latent output is decompressed by `attn_v_b` (W_UV) to
 * the value head size before the output projection. The score scale is DeepSeek's: YaRN's
 * magnitude correction squared over sqrt(key head size), the key head size being nope + rope.
 * Older converters' files hold W_UK and W_UV unsplit (`attn_kv_b`); they are split at load and run
 * the same way (mlaSplitKvB).
 *
 * A tensor-parallel rank (tensor-split.ts) holds a range of the heads (latentHeadRange): their rows
 * of the query projection, their k_b and v_b slices (or attn_kv_b rows), their columns of the output
 * projection, whose product is then a partial sum. The latent and its rope part do not depend on
 * the heads: every rank computes them (kv_a, its norm and the query bottleneck are replicated) and
 * caches the whole row, so the cache is the same on every rank.
 */
import { CairnError } from '../../util/errors.js';
import { GgmlType, ggmlRowBytes } from '../../gguf/ggml-types.js';
import { refDequantize } from '../../kernels/reference/quant/index.js';
import { kvElementBytes, type AttentionParams, type ExpertBatch, type Kernels, type KvType } from '../../kernels/api.js';
import { expertBatchBytes, takesFloatActivations } from '../../kernels/expert-batch-bytes.js';
import type { RopeConfig } from '../config.js';
import type { KvRowShape, MlaAttentionPlan } from '../family.js';
import type { ExpertBank, Matrix, TensorSource } from '../tensor-source.js';
import { latentHeadRange, type Range } from '../tensor-split.js';
import { applyLinear } from './linear.js';
import type { AttentionBlock, StepContext } from './types.js';
import { YarnRope } from './yarn-rope.js';
import { rowRange, type Scratch, type Workspace } from './workspace.js';

/** The sizes of an MLA block. */
export interface MlaShape {
  readonly nEmbd: number;
  readonly nHead: number;
  /** Rank of the query bottleneck; 0 where queries are projected directly (V2-Lite). */
  readonly qLora: number;
  /** Rank of the key/value latent (kv_lora_rank): the cached part every head shares. */
  readonly kvLora: number;
  /** Per-head query/key dims without rotation (qk_nope_head_dim). */
  readonly nope: number;
  /** Rotated dims, per query head and of the one shared key part (qk_rope_head_dim). */
  readonly ropeDim: number;
  /** Per-head value size (v_head_dim). */
  readonly vDim: number;
  /** Epsilon of the query and latent norms. */
  readonly rmsEps: number;
  readonly rope: RopeConfig;
  /** The attention score scale (mlaKqScale). */
  readonly kqScale: number;
  /**
   * The file has older converters' unsplit `attn_kv_b` (per head, W_UK's nope rows then W_UV's vDim
   * rows) instead of `attn_k_b` / `attn_v_b`; the block splits it at load (mlaSplitKvB).
   */
  readonly unsplit?: boolean;
}

const f = Math.fround;
const logf = (x: number): number => f(Math.log(f(x)));

/**
 * DeepSeek's attention score scale as llama.cpp computes it (deepseek2.cpp graph): the rope ops'
 * attention factor with the context's YaRN cancellation undone, times 1 + 0.1 x mscale_all_dim x
 * ln(factor), squared, over sqrt(key head size). `logMul` is mscale_all_dim (the file's
 * `rope.scaling.yarn_log_multiplier` / 0.1; 0 without it).
 */
export function mlaKqScale(rope: RopeConfig, keyHeadSize: number, logMul: number): number {
  const lnScale = logf(f(1 / f(rope.freqScale)));
  const attnFactor = f(rope.yarn?.attnFactor ?? 1);
  const attnFactorOrg = f(attnFactor * f(1 + f(f(0.1) * lnScale)));
  const mscale = f(attnFactorOrg * f(1 + f(f(f(0.1) * f(logMul)) * lnScale)));
  return f(f(mscale * mscale) / f(Math.sqrt(keyHeadSize)));
}

/** The layer plan's view of an MLA block. */
export function mlaAttentionPlan(s: MlaShape): MlaAttentionPlan {
  return { kind: 'mla', heads: s.nHead, qLora: s.qLora, kvLora: s.kvLora, nope: s.nope, ropeDim: s.ropeDim, vDim: s.vDim };
}

/** One cached position: the latent and the roped key part, and no separate values. */
export function mlaKvRow(s: Pick<MlaShape, 'kvLora' | 'ropeDim'>): KvRowShape {
  return { k: s.kvLora + s.ropeDim, v: 0, heads: 1 };
}

/** llama.cpp's tensor names of an MLA block, under the layer prefix. */
export const MLA_TENSORS = {
  q: 'attn_q.weight',
  qA: 'attn_q_a.weight',
  qANorm: 'attn_q_a_norm.weight',
  qB: 'attn_q_b.weight',
  kvA: 'attn_kv_a_mqa.weight',
  kvANorm: 'attn_kv_a_norm.weight',
  kB: 'attn_k_b.weight',
  vB: 'attn_v_b.weight',
  /** Older converters' unsplit W_UK/W_UV, used by llama.cpp without absorption. */
  kvB: 'attn_kv_b.weight',
  o: 'attn_output.weight',
} as const;

/** The weights of one MLA block. */
export interface MlaWeights {
  /** nHead x (nope + rope) queries straight from the hidden state (no query bottleneck). */
  readonly q?: Matrix;
  /** The query bottleneck: down (qLora x nEmbd), its norm, up (nHead x (nope + rope) x qLora). */
  readonly qA?: Matrix;
  readonly qANorm?: Float32Array;
  readonly qB?: Matrix;
  /** (kvLora + rope) x nEmbd: the latent, then the key's rotated part. */
  readonly kvA: Matrix;
  readonly kvANorm: Float32Array;
  /** Per head, kvLora x nope: W_UK transposed, absorbing the query's nope part into latent space. */
  readonly kB?: ExpertBank;
  /** Per head, vDim x kvLora: W_UV, decompressing the latent output into the value head. */
  readonly vB?: ExpertBank;
  /** Instead of kB and vB (older files): nHead x (nope + vDim) rows of kvLora, each head's W_UK then W_UV. */
  readonly kvB?: Matrix;
  /** nEmbd x (nHead x vDim). */
  readonly o: Matrix;
  /**
   * The heads [start, end) a tensor-parallel rank holds: q / q_b, k_b, v_b (or kv_b) are those
   * heads' parts, o those heads' columns. Absent: all heads.
   */
  readonly heads?: Range;
}

/** Throws MODEL_UNSUPPORTED for a shape this block cannot run, naming the file. */
export function checkMlaShape(s: MlaShape, path: string): void {
  const bad = (msg: string) => new CairnError('MODEL_UNSUPPORTED', `${path}: multi-head latent attention ${msg}`);
  for (const [name, v] of [
    ['heads', s.nHead],
    ['kv_lora_rank', s.kvLora],
    ['rope dims', s.ropeDim],
    ['value head size', s.vDim],
  ] as const) {
    if (!(Number.isInteger(v) && v >= 1)) throw bad(`with ${v} ${name}`);
  }
  if (!(Number.isInteger(s.nope) && s.nope >= 1))
    throw bad(`with a key head of ${s.nope + s.ropeDim} not longer than its ${s.ropeDim} rope dims`);
  if (!(Number.isInteger(s.qLora) && s.qLora >= 0)) throw bad(`with q_lora_rank ${s.qLora}`);
  if (s.ropeDim % 2 !== 0) throw bad(`with an odd number of rope dims (${s.ropeDim})`);
}

/**
 * Declares an MLA block's tensors under `prefix` (llama.cpp's order): `attn_k_b` and `attn_v_b`, or
 * for older converters' files (`s.unsplit`) `attn_kv_b`; an MLA file with `attn_kv_b` in their
 * place (which llama.cpp refuses too) is refused by name.
 */
export function declareMla(src: TensorSource, prefix: string, s: MlaShape): MlaWeights {
  const qk = s.nope + s.ropeDim;
  const heads = src.split ? latentHeadRange(s.nHead, s.vDim, src.split) : undefined;
  // Rows of `per` elements per head: a rank's heads' rows (a view), or all of them.
  const headRows = (name: string, per: number, cols: number) =>
    heads ? src.matrixRows(name, s.nHead * per, cols, [heads[0] * per, heads[1] * per]) : src.matrix(name, s.nHead * per, cols);
  const o = () =>
    heads
      ? src.matrixColumns(prefix + MLA_TENSORS.o, s.nEmbd, s.nHead * s.vDim, [heads[0] * s.vDim, heads[1] * s.vDim])
      : src.matrix(prefix + MLA_TENSORS.o, s.nEmbd, s.nHead * s.vDim);
  if (!s.unsplit && src.has(prefix + MLA_TENSORS.kvB) && !src.has(prefix + MLA_TENSORS.kB)) {
    throw new CairnError(
      'MODEL_UNSUPPORTED',
      `${src.path}: "${prefix + MLA_TENSORS.kvB}" without "${prefix + MLA_TENSORS.kB}" in a file with latent attention keys (older converters' files have none)`,
    );
  }
  const qANorm = s.qLora > 0 ? src.vector(prefix + MLA_TENSORS.qANorm, s.qLora) : undefined;
  const kvANorm = src.vector(prefix + MLA_TENSORS.kvANorm, s.kvLora);
  const qA = s.qLora > 0 ? src.matrix(prefix + MLA_TENSORS.qA, s.qLora, s.nEmbd) : undefined;
  const qB = s.qLora > 0 ? headRows(prefix + MLA_TENSORS.qB, qk, s.qLora) : undefined;
  const q = s.qLora > 0 ? undefined : headRows(prefix + MLA_TENSORS.q, qk, s.nEmbd);
  const kvA = src.matrix(prefix + MLA_TENSORS.kvA, s.kvLora + s.ropeDim, s.nEmbd);
  if (s.unsplit) {
    const kvB = headRows(prefix + MLA_TENSORS.kvB, s.nope + s.vDim, s.kvLora);
    return { q, qA, qANorm, qB, kvA, kvANorm, kvB, o: o(), heads };
  }
  // Every head's slice of k_b and v_b is read by every token.
  const bank = (name: string, rows: number, cols: number) =>
    heads ? src.expertsRange(name, s.nHead, rows, cols, s.nHead, heads) : src.experts(name, s.nHead, rows, cols, s.nHead);
  const kB = bank(prefix + MLA_TENSORS.kB, s.kvLora, s.nope);
  const vB = bank(prefix + MLA_TENSORS.vB, s.vDim, s.kvLora);
  return { q, qA, qANorm, qB, kvA, kvANorm, kB, vB, o: o(), heads };
}

/**
 * W_UK and W_UV as k_b and v_b from older converters' unsplit `attn_kv_b`: each head's W_UV rows
 * are copied as they are (a bank of vDim x kvLora in the file's type); its W_UK (nope x kvLora) is
 * dequantized and transposed into an f32 bank of kvLora x nope, which no quantized layout can hold
 * without requantizing. A dry build (no data) gets empty banks. llama.cpp runs these files without
 * absorption, caching every head's keys and values; the absorbed form computes the same attention
 * (up to rounding) from the latent cache.
 */
export function mlaSplitKvB(kvB: Matrix, s: Pick<MlaShape, 'nHead' | 'kvLora' | 'nope' | 'vDim'>): { kB: ExpertBank; vB: ExpertBank } {
  const per = s.nope + s.vDim;
  const rowBytes = ggmlRowBytes(kvB.type, s.kvLora);
  if (kvB.rows !== s.nHead * per || kvB.cols !== s.kvLora)
    throw new RangeError(`${kvB.name}: ${kvB.rows} x ${kvB.cols} is not the heads' W_UK and W_UV`);
  const dry = kvB.data.length === 0;
  if (!dry && kvB.data.length !== kvB.rows * rowBytes) throw new RangeError(`${kvB.name}: ${kvB.data.length} bytes for ${kvB.rows} rows`);
  const vData = new Uint8Array(dry ? 0 : s.nHead * s.vDim * rowBytes);
  const kF32 = new Float32Array(dry ? 0 : s.nHead * s.kvLora * s.nope);
  if (!dry) {
    const row = new Float32Array(s.kvLora);
    for (let h = 0; h < s.nHead; h++) {
      vData.set(kvB.data.subarray((h * per + s.nope) * rowBytes, (h + 1) * per * rowBytes), h * s.vDim * rowBytes);
      for (let d = 0; d < s.nope; d++) {
        refDequantize(kvB.type, kvB.data.subarray((h * per + d) * rowBytes, (h * per + d + 1) * rowBytes), row, s.kvLora);
        for (let c = 0; c < s.kvLora; c++) kF32[(h * s.kvLora + c) * s.nope + d] = row[c];
      }
    }
  }
  return {
    kB: {
      name: `${kvB.name}[W_UK^T]`,
      type: GgmlType.F32,
      rows: s.kvLora,
      cols: s.nope,
      count: s.nHead,
      expertBytes: s.kvLora * s.nope * 4,
      data: new Uint8Array(kF32.buffer),
    },
    vB: {
      name: `${kvB.name}[W_UV]`,
      type: kvB.type,
      rows: s.vDim,
      cols: s.kvLora,
      count: s.nHead,
      expertBytes: s.vDim * rowBytes,
      data: vData,
    },
  };
}

const SHARD_BATCHES = new WeakMap<Workspace, WeakMap<Kernels, Map<string, ExpertBatch>>>();

/**
 * A per-head batch's key among a shard's: activation class (float or quantized; a batch made for
 * F32 serves every float type), heads and columns.
 */
function mlaBatchKey(type: GgmlType, heads: number, cols: number): string {
  return `mla/${takesFloatActivations(type) ? 'f' : 'q'}/${heads}/${cols}`;
}

/** Counts the shard's batch for these per-head products in its memory (a dry build allocates nothing). */
function reserveShardBatch(ws: Workspace, type: GgmlType, heads: number, cols: number): void {
  ws.reserveAside(mlaBatchKey(type, heads, cols), expertBatchBytes(type, heads, heads, cols, ws.maxBatch));
}

/**
 * The activation batch of the per-head products of `cols` for weights of `type`, one per shard
 * (workspace), kernels object and shape: the layers of a shard run one after the other, so they
 * share it, and a 61-layer model holds one instead of 61.
 */
function shardBatch(ws: Workspace, kernels: Kernels, type: GgmlType, heads: number, cols: number): ExpertBatch {
  let byKernels = SHARD_BATCHES.get(ws);
  if (!byKernels) SHARD_BATCHES.set(ws, (byKernels = new WeakMap()));
  let batches = byKernels.get(kernels);
  if (!batches) byKernels.set(kernels, (batches = new Map()));
  const float = takesFloatActivations(type);
  const key = mlaBatchKey(type, heads, cols);
  let b = batches.get(key);
  if (!b) batches.set(key, (b = kernels.createExpertBatch(float ? GgmlType.F32 : type, heads, heads, cols, ws.maxBatch)));
  return b;
}

/**
 * Writes n rows of `row` f32 elements into a key-only cache at positions [pos0, pos0 + n), in the
 * cache's type (f16 rounded to nearest even, as llama.cpp's set_rows; Q8_0 blocks of 32 along the
 * row, as its quantized K cache).
 */
function storeLatent(kernels: Kernels, rows: Float32Array, cache: Uint8Array, type: KvType, row: number, pos0: number, n: number): void {
  const rowBytes = kvElementBytes(type) * row;
  const end = (pos0 + n) * rowBytes;
  if (rows.length !== n * row || end > cache.byteLength) throw new RangeError(`MLA cache write of ${n} rows at ${pos0} does not fit`);
  const dst = cache.subarray(pos0 * rowBytes, end);
  if (type === GgmlType.F32) dst.set(new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength));
  else kernels.quantize(type, rows, dst, n * row);
}

/** The forward step of an MLA block. */
export class MlaAttention implements AttentionBlock {
  private readonly qa?: Scratch;
  private readonly q: Scratch;
  private readonly kv: Scratch;
  private readonly qAbs: Scratch;
  private readonly lat: Scratch;
  private readonly gathered: Scratch;
  private readonly head: Scratch;
  private readonly heads: Scratch;
  private readonly rope: YarnRope;
  private readonly params: AttentionParams;
  /** Expert ids of the per-head products: token t's slot h is head h. */
  private readonly headIds: Int32Array;
  private batches?: { readonly kernels: Kernels; readonly k: ExpertBatch; readonly v: ExpertBatch };
  private readonly kB: ExpertBank;
  private readonly vB: ExpertBank;

  private readonly s: MlaShape;

  constructor(
    shape: MlaShape,
    private readonly w: MlaWeights,
    private readonly ws: Workspace,
  ) {
    // A tensor-parallel rank runs its own heads as a block of that many heads.
    const s: MlaShape = w.heads ? { ...shape, nHead: w.heads[1] - w.heads[0] } : shape;
    this.s = s;
    const qk = s.nope + s.ropeDim;
    const row = s.kvLora + s.ropeDim;
    if (s.qLora > 0) this.qa = ws.buffer('mla.qa', s.qLora);
    this.q = ws.buffer('attn.q', s.nHead * qk);
    this.kv = ws.buffer('attn.k', row);
    this.qAbs = ws.buffer('mla.qabs', s.nHead * row);
    this.lat = ws.buffer('attn.out', s.nHead * row);
    this.gathered = ws.buffer('mla.heads.in', s.nHead * Math.max(s.nope, s.kvLora));
    this.head = ws.buffer('mla.heads.absorbed', s.nHead * s.kvLora);
    this.heads = ws.buffer('mla.heads', s.nHead * s.vDim);
    this.rope = new YarnRope(s.rope);
    const split = w.kvB ? mlaSplitKvB(w.kvB, s) : undefined;
    this.kB = split?.kB ?? w.kB!;
    this.vB = split?.vB ?? w.vB!;
    // The split copies are this layer's own memory beyond the mapped file (W_UK as f32).
    if (split)
      ws.reserveAside(`mla-split/${w.kvB!.name}`, s.nHead * (s.kvLora * s.nope * 4 + s.vDim * ggmlRowBytes(w.kvB!.type, s.kvLora)));
    reserveShardBatch(ws, this.kB.type, s.nHead, s.nope);
    reserveShardBatch(ws, this.vB.type, s.nHead, s.kvLora);
    this.headIds = Int32Array.from({ length: ws.maxBatch * s.nHead }, (_, i) => i % s.nHead);
    this.params = { nTokens: 0, nHead: s.nHead, nKvHead: 1, headDim: row, pos0: 0, scale: s.kqScale, kvType: GgmlType.F16 };
  }

  forward(h: Float32Array, out: Float32Array, step: StepContext): void {
    const { s, w } = this;
    const { kernels, kv, n, positions } = step;
    const qk = s.nope + s.ropeDim;
    const row = s.kvLora + s.ropeDim;

    // Queries: n x nHead x [nope | rope].
    const q = this.q.rows(n);
    if (w.q) applyLinear(kernels, { w: w.q }, h, n, q);
    else {
      const qa = this.qa!.rows(n);
      applyLinear(kernels, { w: w.qA! }, h, n, qa);
      kernels.rmsNorm(qa, w.qANorm!, n, s.qLora, s.rmsEps, qa);
      applyLinear(kernels, { w: w.qB! }, qa, n, q);
    }
    // The cached row: n x [latent | k_pe], the latent normed, k_pe roped.
    const kvRow = this.kv.rows(n);
    applyLinear(kernels, { w: w.kvA }, h, n, kvRow);
    for (let t = 0; t < n; t++) {
      const c = kvRow.subarray(t * row, t * row + s.kvLora);
      kernels.rmsNorm(c, w.kvANorm, 1, s.kvLora, s.rmsEps, c);
    }
    this.rope.applyAt(kvRow, n, 1, positions, { tokenStride: row, headStride: row, offset: s.kvLora });
    this.rope.applyAt(q, n, s.nHead, positions, { tokenStride: s.nHead * qk, headStride: qk, offset: s.nope });

    // Absorbed queries: n x nHead x [W_UK^T q_nope | q_pe]. The heads' products run as one expert
    // product (each head an "expert" every token uses), so each head's k_b is read once per step.
    const { k: kBatch, v: vBatch } = this.resolve(kernels);
    const ids = this.headIds.subarray(0, n * s.nHead);
    const qAbs = this.qAbs.rows(n);
    const nopes = this.gathered.rows(n).subarray(0, n * s.nHead * s.nope);
    for (let i = 0; i < n * s.nHead; i++) {
      nopes.set(q.subarray(i * qk, i * qk + s.nope), i * s.nope);
      qAbs.set(q.subarray(i * qk + s.nope, (i + 1) * qk), i * row + s.kvLora);
    }
    const absorbed = this.head.rows(n);
    kernels.prepareExperts(kBatch, this.kB.type, nopes, n, ids, 'slot');
    kernels.expertMatmul(kBatch, this.kB.data, this.kB.type, s.kvLora, absorbed);
    for (let i = 0; i < n * s.nHead; i++) qAbs.set(absorbed.subarray(i * s.kvLora, (i + 1) * s.kvLora), i * row);

    // Multi-query attention over the latent cache; the values are each row's latent (its first kvLora
    // elements), so the kernel reads the key cache as values too and the rope part of its output is unused.
    const lat = this.lat.rows(n);
    const p = this.params;
    p.kvType = kv.type;
    for (const sp of step.spans) {
      const kc = kv.keys(step.layer, sp.slot);
      storeLatent(kernels, rowRange(kvRow, sp.start, sp.n, row), kc, kv.type, row, sp.pos0, sp.n);
      p.nTokens = sp.n;
      p.pos0 = sp.pos0;
      kernels.attention(rowRange(qAbs, sp.start, sp.n, s.nHead * row), kc, kc, p, rowRange(lat, sp.start, sp.n, s.nHead * row));
    }

    // Each head's latent output decompressed by W_UV: n x nHead x vDim, the output projection's input.
    const latents = this.gathered.rows(n).subarray(0, n * s.nHead * s.kvLora);
    for (let i = 0; i < n * s.nHead; i++) latents.set(lat.subarray(i * row, i * row + s.kvLora), i * s.kvLora);
    const heads = this.heads.rows(n);
    kernels.prepareExperts(vBatch, this.vB.type, latents, n, ids, 'slot');
    kernels.expertMatmul(vBatch, this.vB.data, this.vB.type, s.vDim, heads);
    applyLinear(kernels, { w: w.o }, heads, n, out);
  }

  /** The per-head products' activation batches, made on the first step with a kernels object. */
  private resolve(kernels: Kernels): { k: ExpertBatch; v: ExpertBatch } {
    if (this.batches?.kernels === kernels) return this.batches;
    const s = this.s;
    this.batches = {
      kernels,
      k: shardBatch(this.ws, kernels, this.kB.type, s.nHead, s.nope),
      v: shardBatch(this.ws, kernels, this.vB.type, s.nHead, s.kvLora),
    };
    return this.batches;
  }
}

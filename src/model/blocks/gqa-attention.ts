/**
 * Grouped-query attention (Llama, Mistral, Qwen2, Qwen3, gpt-oss): Q/K/V projections with optional
 * biases, optional per-head RMSNorm of queries and keys, rotary positions, causal attention over
 * the layer's KV cache (each KV head shared by nHead / nKvHead query heads), optionally with
 * attention sinks and a sliding window (attention-sinks.ts, sliding-window.ts), and the output
 * projection. Tensor names are llama.cpp's under the layer prefix the family gives (`blk.N.`).
 */
import { CairnError } from '../../util/errors.js';
import { GgmlType } from '../../gguf/ggml-types.js';
import type { AttentionParams } from '../../kernels/api.js';
import type { ModelConfig, RopeConfig } from '../config.js';
import type { SeqSpan } from '../batch.js';
import type { KvRowShape } from '../family.js';
import type { TensorSource } from '../tensor-source.js';
import type { SyntheticTensors } from '../synthetic-tensors.js';
import { applyLinear, splitRows, type Linear } from './linear.js';
import { Rope, ROPE_FREQS } from './rope.js';
import type { AttentionBlock, StepContext } from './types.js';
import { rowRange, type Scratch, type Workspace } from './workspace.js';
import { headRange, type HeadSplit } from '../tensor-split.js';

/** The sizes of a GQA block. */
export interface GqaShape {
  readonly nEmbd: number;
  readonly nHead: number;
  readonly nKvHead: number;
  readonly headDim: number;
  /** Epsilon of the per-head Q/K norms. */
  readonly rmsEps: number;
  readonly rope: RopeConfig;
  /** Positions a query sees on this layer, itself included (a sliding window); 0 or absent: all before it. */
  readonly window?: number;
  /** What scores are multiplied by before the softmax; absent: 1 / sqrt(headDim). */
  readonly scale?: number;
  /** Scores squashed to softcap * tanh(score / softcap) before the softmax (Gemma 2); absent: none. */
  readonly softcap?: number;
  /**
   * Llama 4's attention temperature (mistral3): after rope, each query multiplied by
   * log(floor(position / floor) + 1) x scale + 1, so later positions attend more sharply; absent: none.
   */
  readonly temperature?: { readonly scale: number; readonly floor: number };
}

/** Which optional tensors a family's GQA layers have, as llama.cpp loads them. */
export interface GqaTensors {
  /** Q/K/V biases: always (Qwen2), when the file has them (Llama), or never. */
  readonly qkvBias: 'required' | 'optional' | 'none';
  /** Output projection bias: when the file has one (true, Llama), always (gpt-oss), or never. */
  readonly outputBias: boolean | 'required';
  /** Per-head RMSNorm of queries and keys: always (Qwen3), when the file has them (GLM-4.5), or never. */
  readonly qkNorm: boolean | 'optional';
  /** Llama 3 rope frequency factors (`rope_freqs.weight`, one for all layers) when the file has them. */
  readonly ropeFreqs: boolean;
}

/**
 * Q, K and V as three products, or as one (Phi-3's `attn_qkv`: q's rows, then k's, then v's) whose
 * rows the block then splits.
 */
export type GqaProjections =
  | { readonly q: Linear; readonly k: Linear; readonly v: Linear; readonly qkv?: undefined }
  | { readonly qkv: Linear; readonly q?: undefined; readonly k?: undefined; readonly v?: undefined };

/** The weights of one GQA block. */
export type GqaWeights = GqaProjections & {
  readonly o: Linear;
  readonly qNorm?: Float32Array;
  readonly kNorm?: Float32Array;
  readonly ropeFreqs?: Float32Array;
  /** One sink logit per query head (attention-sinks.ts), all of the layer's heads. */
  readonly sinks?: Float32Array;
  /**
   * The heads a tensor-parallel rank holds (tensor-split.ts): q, k, v and their biases are those
   * heads' rows, o those heads' columns (its output a partial sum; its bias on rank 0 alone).
   * Absent: all heads.
   */
  readonly heads?: HeadSplit;
};

/** The GQA shape of a config; value heads must be as wide as key heads here. */
export function gqaShape(cfg: ModelConfig): GqaShape {
  return { nEmbd: cfg.nEmbd, nHead: cfg.nHead, nKvHead: cfg.nKvHead, headDim: cfg.headDim, rmsEps: cfg.rmsEps, rope: cfg.rope };
}

/** Throws MODEL_UNSUPPORTED when a config's heads do not fit this block. */
export function checkGqaConfig(cfg: ModelConfig, path: string): void {
  if (cfg.headDimV !== cfg.headDim) {
    throw new CairnError(
      'MODEL_UNSUPPORTED',
      `${path}: value head size ${cfg.headDimV} differs from key head size ${cfg.headDim}, which grouped-query attention here does not support`,
    );
  }
}

/** One cached position: every KV head's key and value. */
export function gqaKvRow(s: GqaShape): KvRowShape {
  return { k: s.nKvHead * s.headDim, v: s.nKvHead * s.headDim, heads: s.nKvHead };
}

/** The KV row of a tensor-parallel rank: the KV heads it holds. */
export function gqaSplitKvRow(s: Pick<GqaShape, 'nHead' | 'nKvHead' | 'headDim'>, heads: HeadSplit): KvRowShape {
  const n = heads.kvHeads[1] - heads.kvHeads[0];
  return { k: n * s.headDim, v: n * s.headDim, heads: n };
}

/** Declares a GQA block's tensors under `prefix` (a tensor-parallel rank's heads when `src.split` says so). */
export function declareGqa(src: TensorSource, prefix: string, s: GqaShape, t: GqaTensors): GqaWeights {
  const hd = s.headDim;
  const qDim = s.nHead * hd;
  const kvDim = s.nKvHead * hd;
  const heads = src.split ? headRange(s.nHead, s.nKvHead, hd, src.split) : undefined;
  const qRows: readonly [number, number] = heads ? [heads.heads[0] * hd, heads.heads[1] * hd] : [0, qDim];
  const kvRows: readonly [number, number] = heads ? [heads.kvHeads[0] * hd, heads.kvHeads[1] * hd] : [0, kvDim];
  const q = heads ? src.matrixRows(prefix + 'attn_q.weight', qDim, s.nEmbd, qRows) : src.matrix(prefix + 'attn_q.weight', qDim, s.nEmbd);
  const k = heads ? src.matrixRows(prefix + 'attn_k.weight', kvDim, s.nEmbd, kvRows) : src.matrix(prefix + 'attn_k.weight', kvDim, s.nEmbd);
  const v = heads ? src.matrixRows(prefix + 'attn_v.weight', kvDim, s.nEmbd, kvRows) : src.matrix(prefix + 'attn_v.weight', kvDim, s.nEmbd);
  const o = heads
    ? src.matrixColumns(prefix + 'attn_output.weight', s.nEmbd, qDim, qRows)
    : src.matrix(prefix + 'attn_output.weight', s.nEmbd, qDim);
  const bias = (name: string, len: number, range: readonly [number, number]) =>
    t.qkvBias === 'none' ? undefined : src.vectorRange(prefix + name, len, range, t.qkvBias === 'required');
  const bq = bias('attn_q.bias', qDim, qRows);
  const bk = bias('attn_k.bias', kvDim, kvRows);
  const bv = bias('attn_v.bias', kvDim, kvRows);
  const outputBias = () =>
    t.outputBias === 'required'
      ? src.vector(prefix + 'attn_output.bias', s.nEmbd)
      : t.outputBias
        ? src.optionalVector(prefix + 'attn_output.bias', s.nEmbd)
        : undefined;
  // The partial sums of the ranks add up to the output: its bias joins one of them.
  const bo = !src.split || src.split.rank === 0 ? outputBias() : undefined;
  return {
    heads,
    q: { w: q, bias: bq },
    k: { w: k, bias: bk },
    v: { w: v, bias: bv },
    o: { w: o, bias: bo },
    qNorm: headNorm(src, prefix + 'attn_q_norm.weight', s.headDim, t.qkNorm),
    kNorm: headNorm(src, prefix + 'attn_k_norm.weight', s.headDim, t.qkNorm),
    ropeFreqs: t.ropeFreqs ? src.sharedVector(ROPE_FREQS, s.rope.nRot / 2, false) : undefined,
  };
}

function headNorm(src: TensorSource, name: string, len: number, which: GqaTensors['qkNorm']): Float32Array | undefined {
  return which === true ? src.vector(name, len) : which === 'optional' ? src.optionalVector(name, len) : undefined;
}

/**
 * Writes a GQA block's tensors into a synthetic model: the required ones, and the optional Q/K/V
 * biases and Q/K norms where `extras` asks for them.
 */
export function synthesizeGqa(
  out: SyntheticTensors,
  prefix: string,
  layer: number,
  s: Pick<GqaShape, 'nEmbd' | 'nHead' | 'nKvHead' | 'headDim'>,
  t: GqaTensors,
  extras: { readonly qkvBias?: boolean; readonly qkNorm?: boolean } = {},
): void {
  const e = s.nEmbd;
  const qDim = s.nHead * s.headDim;
  const kvDim = s.nKvHead * s.headDim;
  out.matrix(prefix + 'attn_q.weight', qDim, e, 1 / Math.sqrt(e), layer);
  out.matrix(prefix + 'attn_k.weight', kvDim, e, 1 / Math.sqrt(e), layer);
  out.matrix(prefix + 'attn_v.weight', kvDim, e, 1 / Math.sqrt(e), layer);
  out.matrix(prefix + 'attn_output.weight', e, qDim, 1 / Math.sqrt(qDim), layer);
  if (t.qkvBias === 'required' || (t.qkvBias === 'optional' && extras.qkvBias)) {
    out.f32(prefix + 'attn_q.bias', [qDim], 0.1);
    out.f32(prefix + 'attn_k.bias', [kvDim], 0.1);
    out.f32(prefix + 'attn_v.bias', [kvDim], 0.1);
  }
  if (t.qkNorm === true || (t.qkNorm === 'optional' && extras.qkNorm)) {
    out.f32(prefix + 'attn_q_norm.weight', [s.headDim], 0.1, 1);
    out.f32(prefix + 'attn_k_norm.weight', [s.headDim], 0.1, 1);
  }
}

/** The forward step of a GQA block. */
export class GqaAttention implements AttentionBlock {
  private readonly s: GqaShape;
  private readonly q: Scratch;
  private readonly k: Scratch;
  private readonly v: Scratch;
  private readonly attn: Scratch;
  /** The fused projection's rows, before they are split into q, k and v. */
  private readonly qkv?: Scratch;
  private readonly rope: Rope;
  private readonly params: AttentionParams;

  constructor(
    shape: GqaShape,
    private readonly w: GqaWeights,
    ws: Workspace,
  ) {
    // A tensor-parallel rank runs its own heads as a block of that many heads.
    const s: GqaShape = w.heads
      ? { ...shape, nHead: w.heads.heads[1] - w.heads.heads[0], nKvHead: w.heads.kvHeads[1] - w.heads.kvHeads[0] }
      : shape;
    this.s = s;
    const qDim = s.nHead * s.headDim;
    const kvDim = s.nKvHead * s.headDim;
    this.q = ws.buffer('attn.q', qDim);
    this.k = ws.buffer('attn.k', kvDim);
    this.v = ws.buffer('attn.v', kvDim);
    this.attn = ws.buffer('attn.out', qDim);
    if (w.qkv) {
      if (w.heads) throw new CairnError('MODEL_UNSUPPORTED', 'a fused QKV projection cannot be split across a tensor-parallel group');
      this.qkv = ws.buffer('attn.qkv', qDim + 2 * kvDim);
    }
    this.rope = new Rope(s.rope, w.ropeFreqs);
    this.params = {
      nTokens: 0,
      nHead: s.nHead,
      nKvHead: s.nKvHead,
      headDim: s.headDim,
      pos0: 0,
      scale: s.scale ?? 1 / Math.sqrt(s.headDim),
      kvType: GgmlType.F16,
      sinks: w.sinks && w.heads ? w.sinks.subarray(w.heads.heads[0], w.heads.heads[1]) : w.sinks,
      window: s.window ?? 0,
      softcap: s.softcap ?? 0,
    };
  }

  forward(h: Float32Array, out: Float32Array, step: StepContext): void {
    const { s, w } = this;
    const { kernels, kv, n, positions } = step;
    const hd = s.headDim;
    const qDim = s.nHead * hd;
    const kvDim = s.nKvHead * hd;
    const q = this.q.rows(n);
    const k = this.k.rows(n);
    const v = this.v.rows(n);
    if (w.qkv) {
      const all = this.qkv!.rows(n);
      applyLinear(kernels, w.qkv, h, n, all);
      splitRows(all, n, [qDim, kvDim, kvDim], [q, k, v]);
    } else {
      applyLinear(kernels, w.q, h, n, q);
      applyLinear(kernels, w.k, h, n, k);
      applyLinear(kernels, w.v, h, n, v);
    }
    if (w.qNorm) kernels.rmsNorm(q, w.qNorm, n * s.nHead, hd, s.rmsEps, q);
    if (w.kNorm) kernels.rmsNorm(k, w.kNorm, n * s.nKvHead, hd, s.rmsEps, k);
    this.rope.apply(kernels, q, n, s.nHead, hd, positions);
    this.rope.apply(kernels, k, n, s.nKvHead, hd, positions);
    if (s.temperature) temperQueries(q, n, qDim, positions, s.temperature);

    const attn = this.attn.rows(n);
    const p = this.params;
    p.kvType = kv.type;
    p.kvTiles = kv.tiles;
    if (step.spans.length > 1 && distinctSlots(step.spans)) {
      // Several sequences (a decode step of many streams): one call, their spans side by side.
      const spans = step.spans.map((sp) => ({ start: sp.start, nTokens: sp.n, pos0: sp.pos0, kCache: kv.keys(step.layer, sp.slot), vCache: kv.values(step.layer, sp.slot) }));
      kernels.attentionSpans(q, k, v, spans, p, attn);
      applyLinear(kernels, w.o, attn, n, out);
      return;
    }
    for (const sp of step.spans) {
      const kc = kv.keys(step.layer, sp.slot);
      const vc = kv.values(step.layer, sp.slot);
      kernels.storeKv(rowRange(k, sp.start, sp.n, kvDim), rowRange(v, sp.start, sp.n, kvDim), kc, vc, kv.type, kvDim, sp.pos0, sp.n, s.nKvHead, kv.tiles);
      p.nTokens = sp.n;
      p.pos0 = sp.pos0;
      const qs = rowRange(q, sp.start, sp.n, qDim);
      const os = rowRange(attn, sp.start, sp.n, qDim);
      kernels.attention(qs, kc, vc, p, os);
    }
    applyLinear(kernels, w.o, attn, n, out);
  }
}

/**
 * Multiplies each token's query row by its position's temperature, in f32 as llama.cpp's ggml_mul;
 * the factor formed as llama.cpp's input (the position over the floor in f32, the rest in f64).
 */
function temperQueries(q: Float32Array, n: number, qDim: number, positions: Int32Array, t: { readonly scale: number; readonly floor: number }): void {
  for (let i = 0; i < n; i++) {
    const factor = Math.fround(Math.log(Math.floor(Math.fround(positions[i] / t.floor)) + 1) * t.scale + 1);
    if (factor === 1) continue;
    for (let j = i * qDim; j < (i + 1) * qDim; j++) q[j] *= factor;
  }
}

/** Whether no two spans share a sequence's cache (attentionSpans needs each cache once). */
function distinctSlots(spans: readonly SeqSpan[]): boolean {
  return new Set(spans.map((sp) => sp.slot)).size === spans.length;
}

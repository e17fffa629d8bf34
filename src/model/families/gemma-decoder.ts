/**
 * The decoder Gemma 2 and Gemma 3 share (llama.cpp's models/gemma2.cpp, gemma3.cpp): embeddings
 * scaled by sqrt(nEmbd); layers of sandwich norms (each branch normalized going in and coming out)
 * around grouped-query attention with neox rope and a GeGLU FFN; sliding windows on the layers a
 * pattern picks, which may rotate with their own base; queries scaled by 1/sqrt(head size), or
 * 1/sqrt(nEmbd / nHead) in the 27B models (llama.cpp's reading of Gemma's query_pre_attn_scalar);
 * optional softcapping of the attention scores and of the final logits. The norm weights in Gemma's
 * files already hold 1 + the learned gain (the converter adds it), so plain RMSNorm applies them.
 * The versions differ in their defaults, their Q/K norms (Gemma 3) and in whether the file may
 * carry a head of its own (Gemma 3); each family file reads its keys into a GemmaConfig.
 *
 * KV cache: every position on every layer, windowed ones included, as gpt-oss (gpt-oss.ts says why).
 */
import { CairnError } from '../../util/errors.js';
import type { Metadata } from '../../gguf/metadata.js';
import { gv } from '../../gguf/values.js';
import type { ModelConfig } from '../config.js';
import type { LayerPlan, ModelFamily } from '../family.js';
import { DenseFfn, declareDenseFfn, synthesizeDenseFfn, type DenseFfnWeights } from '../blocks/dense-ffn.js';
import { GpuDenseFfn, GpuGqaAttention, GpuOutputHead, GpuSandwichNormLayer } from '../gpu/gpu-blocks.js';
import {
  GqaAttention,
  declareGqa,
  gqaKvRow,
  gqaShape,
  synthesizeGqa,
  type GqaShape,
  type GqaTensors,
  type GqaWeights,
} from '../blocks/gqa-attention.js';
import { OUTPUT_TENSORS, OutputHead, declareOutputHead } from '../blocks/output-head.js';
import { SandwichNormLayer, type SandwichNorms } from '../blocks/sandwich-norm-layer.js';
import { declarePreNorm, synthesizePreNorm } from '../blocks/pre-norm-layer.js';
import { isSlidingLayer, layerWindow, type SlidingWindow } from '../blocks/sliding-window.js';
import { TOKEN_EMBEDDING, TokenEmbedding, declareTokenEmbedding, synthesizeTokenEmbedding } from '../blocks/token-embedding.js';
import type { TensorSource } from '../tensor-source.js';
import type { Workspace } from '../blocks/workspace.js';
import type { SyntheticModelSpec, SyntheticTensors } from '../synthetic-tensors.js';
import { writeDecoderKeys } from './decoder-keys.js';

/** A Gemma model's hyperparameters beyond the shared decoder's. */
export interface GemmaConfig extends ModelConfig {
  /** The sliding windows; absent when every layer sees the whole context. */
  readonly window?: SlidingWindow;
  /** Rope base and position scale of the windowed layers. */
  readonly freqBaseSwa: number;
  readonly freqScaleSwa: number;
  /** What queries (so scores) are multiplied by. */
  readonly attnScale: number;
  /** Softcapping of the attention scores (Gemma 2) and of the final logits (0: none). */
  readonly attnSoftcap: number;
  readonly finalSoftcap: number;
}

/** What tells the versions' layers apart. */
export interface GemmaParts {
  readonly tensors: GqaTensors;
  /** Whether `output.weight` is read where the file has one (Gemma 3); else the head is always the embeddings (Gemma 2). */
  readonly ownHead: boolean;
}

/** A non-negative finite number read from `key`, or `fallback`; anything else is GGUF_MALFORMED naming the key. */
export function gemmaNumber(m: Metadata, key: string, fallback: number, positive = false): number {
  const v = m.number(key) ?? fallback;
  if (!(Number.isFinite(v) && (positive ? v > 0 : v >= 0))) {
    throw new CairnError('GGUF_MALFORMED', `${m.file.path}: "${key}" = ${v} is not a ${positive ? 'positive' : 'non-negative'} number`);
  }
  return v;
}

/** llama.cpp's attention scale: 1/sqrt(nEmbd / nHead) for the layer count of the version's 27B model, else 1/sqrt(head size). */
export function gemmaAttnScale(cfg: ModelConfig, layers27b: number): number {
  const queryScalar = cfg.nLayer === layers27b ? Math.trunc(cfg.nEmbd / cfg.nHead) : cfg.headDim;
  return Math.fround(1 / Math.fround(Math.sqrt(queryScalar)));
}

/** The attention shape of layer `l`: a windowed layer rotates with its own base and scale. */
function layerShape(cfg: GemmaConfig, l: number): GqaShape {
  const s: GqaShape = { ...gqaShape(cfg), scale: cfg.attnScale, ...(cfg.attnSoftcap > 0 ? { softcap: cfg.attnSoftcap } : {}) };
  const window = layerWindow(cfg.window, l);
  if (window === 0) return s;
  return { ...s, rope: { ...s.rope, freqBase: cfg.freqBaseSwa, freqScale: cfg.freqScaleSwa }, window };
}

/** Every layer: GQA attention (windowed or not) and a dense FFN of nFf. */
export function gemmaLayerPlan(cfg: GemmaConfig, l: number): LayerPlan {
  const window = layerWindow(cfg.window, l);
  return {
    attention: { kind: 'gqa', heads: cfg.nHead, kvHeads: cfg.nKvHead, headDim: cfg.headDim, ...(window ? { window } : {}) },
    ffn: { kind: 'dense', width: cfg.nFf },
    kv: gqaKvRow(gqaShape(cfg)),
  };
}

/** `26 layers, embedding 1152, 4 heads (1 KV) of 256, window 512 on 22 layers, FFN 6912 (GeGLU), vocab 262144`. */
export function describeGemma(cfg: GemmaConfig): string {
  const w = cfg.window;
  const windowed = w ? Array.from({ length: cfg.nLayer }, (_, l) => isSlidingLayer(w, l)).filter(Boolean).length : 0;
  const windows = w && windowed > 0 ? `window ${w.size} on ${windowed} layer${windowed === 1 ? '' : 's'}, ` : '';
  const caps = [
    ...(cfg.attnSoftcap > 0 ? [`scores softcapped at ${cfg.attnSoftcap}`] : []),
    ...(cfg.finalSoftcap > 0 ? [`logits softcapped at ${cfg.finalSoftcap}`] : []),
  ];
  return (
    `${cfg.nLayer} layers, embedding ${cfg.nEmbd}, ${cfg.nHead} heads (${cfg.nKvHead} KV) of ${cfg.headDim}, ` +
    `${windows}FFN ${cfg.nFf} (GeGLU), vocab ${cfg.nVocab}${caps.map((c) => `, ${c}`).join('')}`
  );
}

/** Layer l's weights in llama.cpp's tensor order: attention norm, attention, its post-norm, FFN norm, FFN, its post-norm. */
function declareLayer(
  cfg: GemmaConfig,
  l: number,
  src: TensorSource,
  parts: GemmaParts,
): { shape: GqaShape; attention: GqaWeights; ffn: DenseFfnWeights; norms: SandwichNorms } {
  const p = `blk.${l}.`;
  const e = cfg.nEmbd;
  const shape = layerShape(cfg, l);
  const attnNorm = declarePreNorm(src, p, 'attention', e);
  const attention = declareGqa(src, p, shape, parts.tensors);
  const postAttention = declarePreNorm(src, p, 'postAttention', e);
  const ffnNorm = declarePreNorm(src, p, 'ffn', e);
  const ffn = declareDenseFfn(src, p, e, cfg.nFf);
  const postFfn = declarePreNorm(src, p, 'postFfn', e);
  return { shape, attention, ffn, norms: { attention: attnNorm, postAttention, ffn: ffnNorm, postFfn } };
}

/** The head: the embeddings, or the file's own `output.weight` where the version reads one. */
function declareHead(cfg: GemmaConfig, src: TensorSource, parts: GemmaParts) {
  if (parts.ownHead) return declareOutputHead(src, cfg.nVocab, cfg.nEmbd);
  return { norm: src.vector(OUTPUT_TENSORS.norm, cfg.nEmbd), head: src.matrix(TOKEN_EMBEDDING, cfg.nVocab, cfg.nEmbd) };
}

/** A Gemma version's forward parts (everything of a ModelFamily but its names, config reader and shapes). */
export function gemmaForward<C extends GemmaConfig>(
  parts: GemmaParts,
): Pick<ModelFamily<C>, 'layerPlan' | 'describe' | 'input' | 'layer' | 'output' | 'gpu'> {
  return {
    layerPlan: gemmaLayerPlan,
    describe: describeGemma,
    input: (cfg, src) => new TokenEmbedding(declareTokenEmbedding(src, cfg.nVocab, cfg.nEmbd), Math.sqrt(cfg.nEmbd)),
    layer(cfg: C, l: number, src: TensorSource, ws: Workspace) {
      const d = declareLayer(cfg, l, src, parts);
      return new SandwichNormLayer(d.norms, new GqaAttention(d.shape, d.attention, ws), new DenseFfn(d.ffn, ws, 'gelu'), cfg.rmsEps, ws);
    },
    output: (cfg, src) => new OutputHead(declareHead(cfg, src, parts), cfg.rmsEps, cfg.finalSoftcap),
    gpu: {
      layer(cfg, l, src, ws) {
        const d = declareLayer(cfg, l, src, parts);
        const attention = new GpuGqaAttention(d.shape, d.attention, ws);
        return new GpuSandwichNormLayer(d.norms, attention, new GpuDenseFfn(d.ffn, ws, 'gelu'), cfg.rmsEps, ws);
      },
      output: (cfg, src, ws) => new GpuOutputHead(declareHead(cfg, src, parts), cfg.rmsEps, ws, cfg.finalSoftcap),
    },
  };
}

/**
 * Writes a random-weight Gemma model: the tensors in llama.cpp's order, the decoder keys, and the
 * window, pattern and softcaps where the spec sets them (`slidingWindow`, `slidingWindowPattern`,
 * `finalLogitSoftcap`, `attnLogitSoftcap`).
 */
export function synthesizeGemma(spec: SyntheticModelSpec, out: SyntheticTensors, parts: GemmaParts): void {
  const e = spec.nEmbd;
  const hd = spec.headDim ?? e / spec.nHead;
  const tied = !parts.ownHead || (spec.tied ?? true);
  // The input multiplies the embeddings by sqrt(nEmbd): a tied table sqrt(nEmbd) times smaller
  // than other families' enters the stream as theirs does (a token's own embedding would
  // otherwise dominate its logit, and the model repeat its input); the final norm's gain makes
  // up for it in the logits.
  if (tied) out.matrix(TOKEN_EMBEDDING, spec.nVocab, e, 1 / e);
  else synthesizeTokenEmbedding(out, spec.nVocab, e, false);
  const gain = tied ? 4 * Math.sqrt(e) : 1;
  out.f32(OUTPUT_TENSORS.norm, [e], 0.1 * gain, gain);
  if (!tied) out.matrix(OUTPUT_TENSORS.head, spec.nVocab, e, 3 / Math.sqrt(e));
  const shape = { nEmbd: e, nHead: spec.nHead, nKvHead: spec.nKvHead, headDim: hd };
  for (let l = 0; l < spec.nLayer; l++) {
    const p = `blk.${l}.`;
    synthesizePreNorm(out, p, 'attention', e);
    synthesizeGqa(out, p, l, shape, parts.tensors);
    synthesizePreNorm(out, p, 'postAttention', e);
    synthesizePreNorm(out, p, 'ffn', e);
    synthesizeDenseFfn(out, p, l, e, spec.nFf);
    synthesizePreNorm(out, p, 'postFfn', e);
  }
  writeDecoderKeys({ ...spec, headDim: hd }, out);
  const a = spec.arch;
  if (spec.slidingWindow) out.meta(`${a}.attention.sliding_window`, gv.u32(spec.slidingWindow));
  if (spec.slidingWindowPattern !== undefined) out.meta(`${a}.attention.sliding_window_pattern`, gv.u32(spec.slidingWindowPattern));
  if (spec.finalLogitSoftcap !== undefined) out.meta(`${a}.final_logit_softcapping`, gv.f32(spec.finalLogitSoftcap));
  if (spec.attnLogitSoftcap !== undefined) out.meta(`${a}.attn_logit_softcapping`, gv.f32(spec.attnLogitSoftcap));
}

/**
 * Gemma 3 text models (GGUF architecture `gemma3`; llama.cpp's models/gemma3.cpp): embeddings scaled
 * by sqrt(nEmbd); layers of sandwich norms (each branch normalized going in and coming out) around
 * grouped-query attention with per-head Q/K RMSNorm and neox rope, and a GeGLU FFN; sliding windows
 * on five layers of every six (`attention.sliding_window_pattern`, default 6), which rotate with
 * their own base (`rope.freq_base_swa`, default 10000) and no position scaling, while the global
 * layers take the file's base and linear scaling (x8 in the 4B to 27B models); an output head tied
 * to the embeddings, and the final logit softcapping where the file sets one. The norm weights
 * in Gemma's files already hold 1 + the learned gain (the converter adds it), so plain RMSNorm
 * applies them. Queries are scaled by 1/sqrt(head size), or 1/sqrt(nEmbd / nHead) for the 62-layer
 * (27B) model, as llama.cpp sets it from Gemma's `query_pre_attn_scalar`.
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
  checkGqaConfig,
  declareGqa,
  gqaKvRow,
  gqaShape,
  synthesizeGqa,
  type GqaShape,
  type GqaTensors,
  type GqaWeights,
} from '../blocks/gqa-attention.js';
import { OUTPUT_TENSORS, OutputHead, declareOutputHead } from '../blocks/output-head.js';
import { SandwichNormLayer, declareSandwichNorm, synthesizeSandwichNorm, type SandwichNorms } from '../blocks/sandwich-norm-layer.js';
import { checkSlidingWindow, isSlidingLayer, layerWindow, type SlidingWindow } from '../blocks/sliding-window.js';
import { TOKEN_EMBEDDING, TokenEmbedding, declareTokenEmbedding, synthesizeTokenEmbedding } from '../blocks/token-embedding.js';
import type { TensorSource } from '../tensor-source.js';
import type { Workspace } from '../blocks/workspace.js';
import { readDecoderConfig, writeDecoderKeys } from './decoder-keys.js';

/** Gemma 3's hyperparameters beyond the shared decoder's. */
export interface Gemma3Config extends ModelConfig {
  /** The sliding windows; absent when the file sets none (every layer global). */
  readonly window?: SlidingWindow;
  /** Rope base of the windowed layers. */
  readonly freqBaseSwa: number;
  /** What queries (so scores) are multiplied by. */
  readonly attnScale: number;
  /** Final logit softcapping (0: none). */
  readonly finalSoftcap: number;
}

/** llama.cpp's Gemma 3 loader: Q/K norms, no biases. */
const TENSORS: GqaTensors = { qkvBias: 'none', outputBias: false, qkNorm: true, ropeFreqs: false };

/** llama.cpp's default sliding-window pattern for Gemma 3: five windowed layers, then a global one. */
const DEFAULT_PATTERN = 6;

/** llama.cpp's default rope base of windowed layers (llama_hparams::rope_freq_base_train_swa). */
const DEFAULT_FREQ_BASE_SWA = 10000;

function readGemma3Config(m: Metadata, arch: string): Gemma3Config {
  const path = m.file.path;
  const k = (suffix: string) => `${arch}.${suffix}`;
  const base = readDecoderConfig(m, arch, 'neox');
  checkGqaConfig(base, path);
  if (base.rope.yarn) {
    throw new CairnError(
      'MODEL_UNSUPPORTED',
      `${path}: Gemma 3 with YaRN rope scaling is not supported (released Gemma 3 models scale linearly)`,
    );
  }
  const size = m.number(k('attention.sliding_window')) ?? 0;
  let window: SlidingWindow | undefined;
  if (size > 0) {
    // As gpt-oss: llama.cpp reads the pattern as one number and keeps its default for a per-layer array.
    const pattern = m.numberOrArray(k('attention.sliding_window_pattern'));
    window = { size, period: typeof pattern === 'number' ? pattern : DEFAULT_PATTERN };
    checkSlidingWindow(window, path);
  }
  const freqBaseSwa = m.number(k('rope.freq_base_swa')) ?? DEFAULT_FREQ_BASE_SWA;
  if (!(Number.isFinite(freqBaseSwa) && freqBaseSwa > 0)) {
    throw new CairnError('GGUF_MALFORMED', `${path}: "${k('rope.freq_base_swa')}" = ${freqBaseSwa} is not a positive number`);
  }
  const finalSoftcap = m.number(k('final_logit_softcapping')) ?? 0;
  if (!(Number.isFinite(finalSoftcap) && finalSoftcap >= 0)) {
    throw new CairnError('GGUF_MALFORMED', `${path}: "${k('final_logit_softcapping')}" = ${finalSoftcap} is not a non-negative number`);
  }
  // llama.cpp's rule (after gemma_pytorch's query_pre_attn_scalar): only the 27B model differs.
  const queryScalar = base.nLayer === 62 ? Math.trunc(base.nEmbd / base.nHead) : base.headDim;
  const attnScale = Math.fround(1 / Math.fround(Math.sqrt(queryScalar)));
  return { ...base, ...(window ? { window } : {}), freqBaseSwa, attnScale, finalSoftcap };
}

/** The attention shape of layer `l`: a windowed layer rotates with its own base and no scaling. */
function layerShape(cfg: Gemma3Config, l: number): GqaShape {
  const s: GqaShape = { ...gqaShape(cfg), scale: cfg.attnScale };
  const window = layerWindow(cfg.window, l);
  if (window === 0) return s;
  return { ...s, rope: { ...s.rope, freqBase: cfg.freqBaseSwa, freqScale: 1 }, window };
}

function layerPlan(cfg: Gemma3Config, l: number): LayerPlan {
  const window = layerWindow(cfg.window, l);
  return {
    attention: { kind: 'gqa', heads: cfg.nHead, kvHeads: cfg.nKvHead, headDim: cfg.headDim, ...(window ? { window } : {}) },
    ffn: { kind: 'dense', width: cfg.nFf },
    kv: gqaKvRow(gqaShape(cfg)),
  };
}

/** `26 layers, embedding 1152, 4 heads (1 KV) of 256, window 512 on 22 layers, FFN 6912, vocab 262144`. */
function describe(cfg: Gemma3Config): string {
  const windowed = cfg.window ? Array.from({ length: cfg.nLayer }, (_, l) => isSlidingLayer(cfg.window!, l)).filter(Boolean).length : 0;
  const windows = windowed > 0 ? `window ${cfg.window!.size} on ${windowed} layer${windowed === 1 ? '' : 's'}, ` : '';
  const softcap = cfg.finalSoftcap > 0 ? `, logits softcapped at ${cfg.finalSoftcap}` : '';
  return (
    `${cfg.nLayer} layers, embedding ${cfg.nEmbd}, ${cfg.nHead} heads (${cfg.nKvHead} KV) of ${cfg.headDim}, ` +
    `${windows}FFN ${cfg.nFf} (GeGLU), vocab ${cfg.nVocab}${softcap}`
  );
}

/** Layer l's weights in llama.cpp's tensor order: attention norm, attention, its post-norm, FFN norm, FFN, its post-norm. */
function declareLayer(
  cfg: Gemma3Config,
  l: number,
  src: TensorSource,
): { shape: GqaShape; attention: GqaWeights; ffn: DenseFfnWeights; norms: SandwichNorms } {
  const p = `blk.${l}.`;
  const e = cfg.nEmbd;
  const shape = layerShape(cfg, l);
  const attnNorm = declareSandwichNorm(src, p, 'attention', e);
  const attention = declareGqa(src, p, shape, TENSORS);
  const postAttention = declareSandwichNorm(src, p, 'postAttention', e);
  const ffnNorm = declareSandwichNorm(src, p, 'ffn', e);
  const ffn = declareDenseFfn(src, p, e, cfg.nFf);
  const postFfn = declareSandwichNorm(src, p, 'postFfn', e);
  return { shape, attention, ffn, norms: { attention: attnNorm, postAttention, ffn: ffnNorm, postFfn } };
}

function buildLayer(cfg: Gemma3Config, l: number, src: TensorSource, ws: Workspace): SandwichNormLayer {
  const d = declareLayer(cfg, l, src);
  return new SandwichNormLayer(d.norms, new GqaAttention(d.shape, d.attention, ws), new DenseFfn(d.ffn, ws, 'gelu'), cfg.rmsEps, ws);
}

/** The Gemma 3 family. */
export const gemma3Family: ModelFamily<Gemma3Config> = {
  name: 'Gemma 3',
  architectures: ['gemma3'],
  readConfig: readGemma3Config,
  layerPlan,
  describe,
  input: (cfg, src) => new TokenEmbedding(declareTokenEmbedding(src, cfg.nVocab, cfg.nEmbd), Math.sqrt(cfg.nEmbd)),
  layer: buildLayer,
  output: (cfg, src) => new OutputHead(declareOutputHead(src, cfg.nVocab, cfg.nEmbd), cfg.rmsEps, cfg.finalSoftcap),
  gpu: {
    layer(cfg, l, src, ws) {
      const d = declareLayer(cfg, l, src);
      const attn = new GpuGqaAttention(d.shape, d.attention, ws);
      return new GpuSandwichNormLayer(d.norms, attn, new GpuDenseFfn(d.ffn, ws, 'gelu'), cfg.rmsEps, ws);
    },
    output: (cfg, src, ws) => new GpuOutputHead(declareOutputHead(src, cfg.nVocab, cfg.nEmbd), cfg.rmsEps, ws, cfg.finalSoftcap),
  },
  synthetic: {
    shapes: {
      'gemma3-1b': {
        arch: 'gemma3',
        nEmbd: 1152,
        nLayer: 26,
        nHead: 4,
        nKvHead: 1,
        headDim: 256,
        nFf: 6912,
        nVocab: 262144,
        ctx: 32768,
        ropeBase: 1000000,
        tied: true,
        slidingWindow: 512,
      },
      'gemma3-4b': {
        arch: 'gemma3',
        nEmbd: 2560,
        nLayer: 34,
        nHead: 8,
        nKvHead: 4,
        headDim: 256,
        nFf: 10240,
        nVocab: 262208,
        ctx: 131072,
        ropeBase: 1000000,
        linearRopeFactor: 8,
        tied: true,
        slidingWindow: 1024,
      },
    },
    write(spec, out) {
      const e = spec.nEmbd;
      const hd = spec.headDim ?? e / spec.nHead;
      const tied = spec.tied ?? true;
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
        synthesizeSandwichNorm(out, p, 'attention', e);
        synthesizeGqa(out, p, l, shape, TENSORS);
        synthesizeSandwichNorm(out, p, 'postAttention', e);
        synthesizeSandwichNorm(out, p, 'ffn', e);
        synthesizeDenseFfn(out, p, l, e, spec.nFf);
        synthesizeSandwichNorm(out, p, 'postFfn', e);
      }
      writeDecoderKeys({ ...spec, headDim: hd }, out);
      if (spec.slidingWindow) out.meta(`${spec.arch}.attention.sliding_window`, gv.u32(spec.slidingWindow));
      if (spec.slidingWindowPattern !== undefined)
        out.meta(`${spec.arch}.attention.sliding_window_pattern`, gv.u32(spec.slidingWindowPattern));
      if (spec.finalLogitSoftcap) out.meta(`${spec.arch}.final_logit_softcapping`, gv.f32(spec.finalLogitSoftcap));
    },
  },
};

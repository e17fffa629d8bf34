/**
 * gpt-oss (GGUF architecture `gpt-oss`; llama.cpp's openai-moe.cpp): grouped-query attention with
 * Q/K/V/output biases, one learned sink logit per head, neox rope (YaRN in the released models) and
 * sliding windows on the layers the pattern picks (every even layer by default); after a
 * `post_attention_norm`, a Mixture-of-Experts FFN with a biased router, softmax over the chosen
 * experts' logits, and swiglu_oai experts with biases (MXFP4 in the released files). The head size
 * is the rope dimension count, which must equal the key and value lengths.
 *
 * KV cache: every layer keeps every position, windowed layers included (they only read the last
 * window of it). llama.cpp keeps a smaller ring for those layers; the results depend only on which
 * positions each query sees, so they are the same, and the full rows keep prefix copies, snapshots
 * and pipeline stages uniform at the cost of memory on long contexts.
 */
import { CairnError } from '../../util/errors.js';
import type { Metadata } from '../../gguf/metadata.js';
import { gv } from '../../gguf/values.js';
import { GgmlType } from '../../gguf/ggml-types.js';
import type { ModelConfig } from '../config.js';
import type { LayerPlan, ModelFamily } from '../family.js';
import type { SyntheticTensors } from '../synthetic-tensors.js';
import { declareAttentionSinks, synthesizeAttentionSinks } from '../blocks/attention-sinks.js';
import { GqaAttention, declareGqa, gqaKvRow, gqaShape, synthesizeGqa, type GqaShape, type GqaTensors, type GqaWeights } from '../blocks/gqa-attention.js';
import { MOE_TENSORS, MoeFfn, declareMoeFfn, declareRoutedExperts, type MoeFfnShape, type MoeFfnTensors, type MoeFfnWeights } from '../blocks/moe-ffn.js';
import { GpuGqaAttention, GpuOutputHead, GpuPreNormLayer } from '../gpu/gpu-blocks.js';
import { GpuMoeFfn } from '../gpu/gpu-moe.js';
import type { TensorSource } from '../tensor-source.js';
import { synthesizeMoeRouter } from '../blocks/moe-router.js';
import { OUTPUT_TENSORS, OutputHead, declareOutputHead } from '../blocks/output-head.js';
import { PreNormLayer, declarePreNorm, synthesizePreNorm } from '../blocks/pre-norm-layer.js';
import { isSlidingLayer, layerWindow, readSlidingWindow, type SlidingWindow } from '../blocks/sliding-window.js';
import { TokenEmbedding, declareTokenEmbedding, synthesizeTokenEmbedding } from '../blocks/token-embedding.js';
import { readDecoderConfig, writeDecoderKeys } from './decoder-keys.js';
import { describeMoe, moeFfnPlan, readMoeConfig, writeMoeKeys, type MoeConfig, type MoeKeyRules } from './moe-keys.js';

/** gpt-oss's hyperparameters beyond the shared decoder's. */
export interface GptOssConfig extends ModelConfig {
  readonly moe: MoeConfig;
  readonly window: SlidingWindow;
  /** Rope base of the sliding-window layers (`rope.freq_base_swa`, default the others'). */
  readonly freqBaseSwa: number;
}

/** The attention tensors llama.cpp's loader asks for: Q/K/V biases if present, the output bias always. */
const TENSORS: GqaTensors = { qkvBias: 'optional', outputBias: 'required', qkNorm: false, ropeFreqs: false };

/** The MoE tensors: a router with a bias, a gate for every expert, per-expert biases, no shared experts. */
const MOE_TENSOR_SET: MoeFfnTensors = { router: { logitBias: true, selectionBias: 'none' }, gate: 'required', expertBiases: true };

/**
 * What openai-moe.cpp reads and hard-codes: `expert_feed_forward_length` required; softmax over
 * the chosen experts' logits, never normalized or scaled (the file's gating, norm and scale keys
 * are not read); no shared experts or leading dense layers.
 */
const MOE_RULES: MoeKeyRules = {
  width: { key: 'required' },
  gating: { fixed: 'softmax-selected' },
  normalize: false,
  readScale: false,
  shared: 'none',
  readLeadingDense: false,
};

/** The name of the pre-FFN norm (HF's post_attention_layernorm). */
const FFN_NORM = 'post_attention_norm.weight';

function readGptOssConfig(m: Metadata, arch: string): GptOssConfig {
  const path = m.file.path;
  const k = (suffix: string) => `${arch}.${suffix}`;
  const base = readDecoderConfig(m, arch, 'neox', { ffnRequired: false });
  // llama.cpp sizes every projection and the cache by the rope dimension count (openai-moe.cpp).
  if (base.rope.nRot !== base.headDim || base.headDimV !== base.headDim) {
    throw new CairnError(
      'MODEL_UNSUPPORTED',
      `${path}: gpt-oss needs equal head sizes (rope dimension count ${base.rope.nRot}, key length ${base.headDim}, value length ${base.headDimV})`,
    );
  }
  for (const [key, full] of [
    ['attention.key_length_swa', base.headDim],
    ['attention.value_length_swa', base.headDimV],
    ['rope.dimension_count_swa', base.rope.nRot],
  ] as const) {
    const v = m.number(k(key));
    if (v !== undefined && v !== full) {
      throw new CairnError('MODEL_UNSUPPORTED', `${path}: "${k(key)}" = ${v} differs from the full-attention layers' ${full}`);
    }
  }
  const nextn = m.number(k('nextn_predict_layers')) ?? 0;
  if (nextn !== 0)
    throw new CairnError('MODEL_UNSUPPORTED', `${path}: gpt-oss with ${nextn} next-token prediction layers is not supported`);
  const moe = readMoeConfig(m, arch, base.nLayer, base.nFf, MOE_RULES);

  const window = readSlidingWindow(m, arch, { size: 'required', period: 2 })!;
  const freqBaseSwa = m.number(k('rope.freq_base_swa')) ?? base.rope.freqBase;
  if (!(Number.isFinite(freqBaseSwa) && freqBaseSwa > 0)) {
    throw new CairnError('GGUF_MALFORMED', `${path}: "${k('rope.freq_base_swa')}" = ${freqBaseSwa} is not a positive number`);
  }
  return { ...base, moe, window, freqBaseSwa };
}

/** The attention shape of layer `l`: windowed layers take their own rope base (the same YaRN otherwise). */
function layerShape(cfg: GptOssConfig, l: number): GqaShape {
  const s = gqaShape(cfg);
  if (!isSlidingLayer(cfg.window, l)) return s;
  return { ...s, rope: { ...s.rope, freqBase: cfg.freqBaseSwa }, window: layerWindow(cfg.window, l) };
}

function moeShape(cfg: GptOssConfig): MoeFfnShape {
  return { nEmbd: cfg.nEmbd, width: cfg.moe.width, routing: cfg.moe.routing, activation: 'swiglu-oai', sharedWidth: 0, sharedGated: false };
}

function layerPlan(cfg: GptOssConfig, l: number): LayerPlan {
  const window = layerWindow(cfg.window, l);
  return {
    attention: { kind: 'gqa', heads: cfg.nHead, kvHeads: cfg.nKvHead, headDim: cfg.headDim, ...(window ? { window } : {}) },
    ffn: moeFfnPlan(cfg.moe),
    kv: gqaKvRow(gqaShape(cfg)),
  };
}

/** `24 layers, embedding 2880, 64 heads (8 KV) of 64 with sinks, window 128 on 12 layers, experts 4 of 32 of 2880 (...), vocab 201088`. */
function describe(cfg: GptOssConfig): string {
  const windowed = Array.from({ length: cfg.nLayer }, (_, l) => isSlidingLayer(cfg.window, l)).filter(Boolean).length;
  return (
    `${cfg.nLayer} layers, embedding ${cfg.nEmbd}, ${cfg.nHead} heads (${cfg.nKvHead} KV) of ${cfg.headDim} with sinks, ` +
    `window ${cfg.window.size} on ${windowed} layer${windowed === 1 ? '' : 's'}, ${describeMoe(cfg.moe)}, vocab ${cfg.nVocab}`
  );
}

/**
 * Writes a layer's MoE tensors: an F32 router with a bias, experts (in the spec's expert type) whose
 * gate and up values reach a few units so that swiglu_oai's clamps at 7 matter, a small down
 * projection to keep the stream moderate, and F32 biases.
 */
function synthesizeGptOssMoe(out: SyntheticTensors, prefix: string, layer: number, s: MoeFfnShape): void {
  const { nEmbd: e, width: w } = s;
  const E = s.routing.experts;
  synthesizeMoeRouter(out, prefix, e, E, MOE_TENSOR_SET.router);
  out.experts(`${prefix}${MOE_TENSORS.gate}.weight`, E, w, e, 5 / Math.sqrt(e), layer);
  out.experts(`${prefix}${MOE_TENSORS.up}.weight`, E, w, e, 5 / Math.sqrt(e), layer);
  out.experts(`${prefix}${MOE_TENSORS.down}.weight`, E, e, w, 0.2 / Math.sqrt(w), layer);
  out.f32(`${prefix}${MOE_TENSORS.gate}.bias`, [w, E], 0.1);
  out.f32(`${prefix}${MOE_TENSORS.up}.bias`, [w, E], 0.1);
  out.f32(`${prefix}${MOE_TENSORS.down}.bias`, [e, E], 0.1);
}

/** Layer l's tensors in llama.cpp's order: attention norm, attention with its biases and sinks, the pre-FFN norm, the experts. */
function declareLayer(cfg: GptOssConfig, l: number, src: TensorSource): { attnNorm: Float32Array; shape: GqaShape; attention: GqaWeights; ffnNorm: Float32Array; moe: MoeFfnWeights } {
  const p = `blk.${l}.`;
  const shape = layerShape(cfg, l);
  const attnNorm = declarePreNorm(src, p, 'attention', cfg.nEmbd);
  const weights = declareGqa(src, p, shape, TENSORS);
  const sinks = declareAttentionSinks(src, p, cfg.nHead);
  const ffnNorm = src.vector(p + FFN_NORM, cfg.nEmbd);
  return { attnNorm, shape, attention: { ...weights, sinks }, ffnNorm, moe: declareMoeFfn(src, p, moeShape(cfg), MOE_TENSOR_SET) };
}

/** The gpt-oss family. */
export const gptOssFamily: ModelFamily<GptOssConfig> = {
  name: 'gpt-oss',
  architectures: ['gpt-oss'],
  readConfig: readGptOssConfig,
  layerPlan,
  describe,
  input: (cfg, src) => new TokenEmbedding(declareTokenEmbedding(src, cfg.nVocab, cfg.nEmbd)),
  layer(cfg, l, src, ws) {
    const d = declareLayer(cfg, l, src);
    const attention = new GqaAttention(d.shape, d.attention, ws);
    return new PreNormLayer(d.attnNorm, attention, d.ffnNorm, new MoeFfn(moeShape(cfg), d.moe, ws), cfg.rmsEps, ws);
  },
  gpu: {
    layer(cfg, l, src, ws) {
      const d = declareLayer(cfg, l, src);
      const attention = new GpuGqaAttention(d.shape, d.attention, ws);
      return new GpuPreNormLayer(d.attnNorm, attention, d.ffnNorm, new GpuMoeFfn(moeShape(cfg), d.moe, ws), cfg.rmsEps, ws);
    },
    output: (cfg, src, ws) => new GpuOutputHead(declareOutputHead(src, cfg.nVocab, cfg.nEmbd, false), cfg.rmsEps, ws),
  },
  routedExperts: (cfg, l, src, ws) => new MoeFfn(moeShape(cfg), declareRoutedExperts(src, `blk.${l}.`, moeShape(cfg), MOE_TENSOR_SET), ws),
  // Never tied to the embedding: llama.cpp requires output.weight.
  output: (cfg, src) => new OutputHead(declareOutputHead(src, cfg.nVocab, cfg.nEmbd, false), cfg.rmsEps),
  synthetic: {
    shapes: {
      'gpt-oss-20b': {
        arch: 'gpt-oss',
        nEmbd: 2880,
        nLayer: 24,
        nHead: 64,
        nKvHead: 8,
        headDim: 64,
        nFf: 2880,
        nVocab: 201088,
        ctx: 131072,
        ropeBase: 150000,
        yarn: { factor: 32, origCtx: 4096 },
        slidingWindow: 128,
        moe: { experts: 32, used: 4, width: 2880, expertType: GgmlType.MXFP4 },
      },
    },
    write(spec, out) {
      const e = spec.nEmbd;
      const hd = spec.headDim ?? e / spec.nHead;
      if (!spec.moe || !spec.slidingWindow)
        throw new CairnError('BAD_ARGUMENT', 'a gpt-oss model needs its experts (moe) and slidingWindow');
      const routing = {
        experts: spec.moe.experts,
        used: spec.moe.used,
        gating: 'softmax-selected',
        normalize: false,
        scale: 0,
        groups: 0,
        groupsUsed: 0,
      } as const;
      const moe: MoeFfnShape = { nEmbd: e, width: spec.moe.width, routing, activation: 'swiglu-oai', sharedWidth: 0, sharedGated: false };
      const attn = { nEmbd: e, nHead: spec.nHead, nKvHead: spec.nKvHead, headDim: hd };
      synthesizeTokenEmbedding(out, spec.nVocab, e, false);
      out.f32(OUTPUT_TENSORS.norm, [e], 0.1, 1);
      out.matrix(OUTPUT_TENSORS.head, spec.nVocab, e, 3 / Math.sqrt(e));
      for (let l = 0; l < spec.nLayer; l++) {
        const p = `blk.${l}.`;
        synthesizePreNorm(out, p, 'attention', e);
        synthesizeGqa(out, p, l, attn, TENSORS);
        out.f32(p + 'attn_q.bias', [spec.nHead * hd], 0.1);
        out.f32(p + 'attn_k.bias', [spec.nKvHead * hd], 0.1);
        out.f32(p + 'attn_v.bias', [spec.nKvHead * hd], 0.1);
        out.f32(p + 'attn_output.bias', [e], 0.1);
        synthesizeAttentionSinks(out, p, spec.nHead);
        out.f32(p + FFN_NORM, [e], 0.1, 1);
        synthesizeGptOssMoe(out, p, l, moe);
      }
      writeDecoderKeys({ ...spec, headDim: hd }, out);
      writeMoeKeys(spec, out, { width: true });
      out.meta(`${spec.arch}.attention.sliding_window`, gv.u32(spec.slidingWindow));
    },
  },
};

/**
 * Small random-weight Mixture-of-Experts models of every family, each with the features its files
 * have: what the tensor- and expert-parallel tests run against the whole model.
 */
import { GgmlType } from '../../src/gguf/ggml-types.js';
import type { SyntheticShape } from '../../src/model/synthetic.js';

/** Shapes by name. */
export const MOE_SHAPES: Record<string, SyntheticShape> = {
  // Qwen3-MoE: per-head Q/K norms, softmax routing renormalized, 2 of 8 experts per token.
  qwen3moe: {
    arch: 'qwen3moe',
    nEmbd: 128,
    nLayer: 2,
    nHead: 8,
    nKvHead: 4,
    headDim: 16,
    nFf: 128,
    nVocab: 300,
    moe: { experts: 8, used: 2, width: 64 },
  },
  // Qwen2-MoE: Q/K/V biases and a shared expert of 96 columns behind its sigmoid gate.
  qwen2moe: {
    arch: 'qwen2moe',
    nEmbd: 128,
    nLayer: 2,
    nHead: 8,
    nKvHead: 4,
    nFf: 96,
    nVocab: 300,
    attnExtras: { qkvBias: true },
    moe: { experts: 6, used: 2, width: 32, sharedWidth: 96 },
  },
  // DeepSeek V3: latent attention through a query bottleneck, a leading dense layer, sigmoid
  // routing in groups with the score-correction bias, two shared experts.
  deepseek2: {
    arch: 'deepseek2',
    nEmbd: 128,
    nLayer: 3,
    nHead: 8,
    nKvHead: 1,
    nFf: 128,
    nVocab: 300,
    yarn: { factor: 40, origCtx: 16 },
    mla: { qLora: 32, kvLora: 32, nope: 16, ropeDim: 8, vDim: 16, mscaleAllDim: 1 },
    moe: {
      experts: 8,
      used: 2,
      width: 64,
      shared: 2,
      leadingDense: 1,
      sigmoid: true,
      normalize: true,
      scale: 2.5,
      groups: 4,
      groupsUsed: 2,
    },
  },
  // DeepSeek-V2-Lite as older converters wrote it: direct queries, an unsplit attn_kv_b, softmax routing.
  'deepseek2-kv-b': {
    arch: 'deepseek2',
    nEmbd: 128,
    nLayer: 2,
    nHead: 8,
    nKvHead: 8,
    nFf: 128,
    nVocab: 300,
    mla: { qLora: 0, kvLora: 32, nope: 16, ropeDim: 8, vDim: 16, unsplit: true },
    moe: { experts: 8, used: 3, width: 64, shared: 2, leadingDense: 1, sigmoid: false, normalize: false, scale: 1 },
  },
  // gpt-oss: biases everywhere (the experts' too), sinks, windows of 4 on even layers, MXFP4 experts;
  // three ranks share the two KV heads.
  'gpt-oss': {
    arch: 'gpt-oss',
    nEmbd: 64,
    nLayer: 2,
    nHead: 8,
    nKvHead: 2,
    headDim: 16,
    nFf: 64,
    nVocab: 300,
    slidingWindow: 4,
    moe: { experts: 4, used: 2, width: 32, expertType: GgmlType.MXFP4 },
  },
  // GLM-4.5: Q/K/V biases and norms, partial rope, a leading dense layer, sigmoid routing with the
  // correction bias, two shared experts, and a prediction layer the model skips.
  glm4moe: {
    arch: 'glm4moe',
    nEmbd: 128,
    nLayer: 3,
    nHead: 8,
    nKvHead: 4,
    headDim: 16,
    nFf: 128,
    nVocab: 300,
    attnExtras: { qkvBias: true, qkNorm: true },
    moe: { experts: 8, used: 2, width: 64, shared: 2, leadingDense: 1, sigmoid: true, normalize: true, scale: 2.5, nextn: 1 },
  },
  // Mixtral: llama with experts of feed_forward_length, the top 2 renormalized, rope factors.
  mixtral: {
    arch: 'llama',
    nEmbd: 128,
    nLayer: 2,
    nHead: 8,
    nKvHead: 4,
    headDim: 16,
    nFf: 64,
    nVocab: 300,
    ropeFreqs: true,
    moe: { experts: 4, used: 2, width: 64 },
  },
  // K-quants need 256-column cuts: 32 heads of 32 (1024 attention columns), a shared expert of 768.
  'qwen2moe-k': {
    arch: 'qwen2moe',
    nEmbd: 256,
    nLayer: 2,
    nHead: 32,
    nKvHead: 4,
    headDim: 32,
    nFf: 768,
    nVocab: 300,
    moe: { experts: 4, used: 2, width: 256, sharedWidth: 768 },
  },
};

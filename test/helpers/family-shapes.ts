/**
 * The small random-weight shapes of the Mixture-of-Experts families that the oracle tests run
 * against llama.cpp, on the CPU (test/oracle-*.test.ts) and on the GPU (test/gpu-oracle-moe.test.ts).
 */
import { GgmlType } from '../../src/gguf/ggml-types.js';
import type { SyntheticShape } from '../../src/model/synthetic.js';

/** Mixtral: `llama` with 8 experts, 2 per token. */
export const MIXTRAL: SyntheticShape = {
  arch: 'llama',
  nEmbd: 256,
  nLayer: 3,
  nHead: 8,
  nKvHead: 2,
  nFf: 256,
  nVocab: 1000,
  ropeBase: 1000000,
  moe: { experts: 8, used: 2, width: 256 },
};

/** Qwen2-MoE: Q/K/V biases, gated shared experts. */
export const QWEN2MOE: SyntheticShape = {
  arch: 'qwen2moe',
  nEmbd: 256,
  nLayer: 3,
  nHead: 4,
  nKvHead: 4,
  nFf: 512,
  nVocab: 1000,
  ropeBase: 1000000,
  attnExtras: { qkvBias: true },
  moe: { experts: 12, used: 4, width: 256, sharedWidth: 512 },
};

/**
 * Qwen3-MoE: 32 experts (more than 16: llama.cpp's sort is then an introsort), 4 per token, 256
 * wide so the K-quant mix quantizes every expert.
 */
export const QWEN3MOE: SyntheticShape = {
  arch: 'qwen3moe',
  nEmbd: 256,
  nLayer: 3,
  nHead: 4,
  nKvHead: 2,
  headDim: 64,
  nFf: 1024,
  nVocab: 1000,
  ropeBase: 1000000,
  moe: { experts: 32, used: 4, width: 256 },
};

/** GLM-4.5: sigmoid routing with the selection bias, normalized and scaled weights, a shared expert, a leading dense layer, an MTP block. */
export const GLM45: SyntheticShape = {
  arch: 'glm4moe',
  nEmbd: 256,
  nLayer: 4,
  nHead: 4,
  nKvHead: 2,
  headDim: 64,
  nFf: 512,
  nVocab: 1000,
  ropeBase: 1000000,
  attnExtras: { qkvBias: true, qkNorm: true },
  moe: { experts: 16, used: 4, width: 256, shared: 1, leadingDense: 1, sigmoid: true, normalize: true, scale: 2.5, nextn: 1 },
};

/** gpt-oss's sliding window in the small shapes. */
export const GPT_OSS_WINDOW = 8;

/** gpt-oss: sinks, windows on every other layer, YaRN as the released models, biased router and experts. */
export const GPT_OSS: SyntheticShape = {
  arch: 'gpt-oss',
  nEmbd: 128,
  nLayer: 4,
  nHead: 4,
  nKvHead: 2,
  headDim: 32,
  nFf: 64,
  nVocab: 600,
  ctx: 256,
  ropeBase: 150000,
  // As the released models: YaRN x32 over an original 4096 positions, so the ramp and the magnitude matter.
  yarn: { factor: 32, origCtx: 4096 },
  slidingWindow: GPT_OSS_WINDOW,
  // Three of eight: an odd count, in the order llama.cpp sums them.
  moe: { experts: 8, used: 3, width: 64 },
};

/** gpt-oss with MXFP4 experts, as its files have them. */
export const GPT_OSS_MXFP4: SyntheticShape = { ...GPT_OSS, moe: { ...GPT_OSS.moe!, expertType: GgmlType.MXFP4 } };

/** gpt-oss wide enough for the K-quant mix. */
export const GPT_OSS_WIDE: SyntheticShape = { ...GPT_OSS, nEmbd: 256, nHead: 8, nKvHead: 2, moe: { experts: 8, used: 4, width: 256 } };

const DEEPSEEK2 = { arch: 'deepseek2', nEmbd: 256, nHead: 4, nKvHead: 1, nFf: 512, nVocab: 600, ctx: 256 } as const;

/** DeepSeek-V2-Lite-like: latent attention without a query bottleneck, softmax routing, two shared experts. */
export const DEEPSEEK_V2_LITE: SyntheticShape = {
  ...DEEPSEEK2,
  nLayer: 3,
  yarn: { factor: 40, origCtx: 32 },
  mla: { qLora: 0, kvLora: 64, nope: 32, ropeDim: 16, vDim: 32, mscaleAllDim: 0.707 },
  moe: { experts: 16, used: 4, width: 64, shared: 2, leadingDense: 1, sigmoid: false, normalize: false, scale: 1 },
};

/** V2-Lite-like with older converters' unsplit attn_kv_b. */
export const DEEPSEEK_V2_LITE_UNSPLIT: SyntheticShape = { ...DEEPSEEK_V2_LITE, nKvHead: 4, mla: { ...DEEPSEEK_V2_LITE.mla!, unsplit: true } };

/** DeepSeek-V3-like: a query bottleneck, sigmoid routing with the selection bias, group-limited, normalized and scaled. */
export const DEEPSEEK_V3: SyntheticShape = {
  ...DEEPSEEK2,
  nLayer: 4,
  yarn: { factor: 40, origCtx: 32 },
  mla: { qLora: 64, kvLora: 64, nope: 32, ropeDim: 16, vDim: 32, mscaleAllDim: 1 },
  moe: { experts: 16, used: 4, width: 64, shared: 1, leadingDense: 1, sigmoid: true, normalize: true, scale: 2.5, groups: 4, groupsUsed: 2 },
};

/** Gemma 3's sliding window in the small shapes. */
export const GEMMA3_WINDOW = 8;

/**
 * Gemma 3 in miniature: six layers so the default pattern (five windowed, one global) shows once
 * whole, heads of 64 with Q/K norms, a tied head, linear rope scaling x8 on the global layer.
 */
export const GEMMA3: SyntheticShape = {
  arch: 'gemma3',
  nEmbd: 256,
  nLayer: 6,
  nHead: 4,
  nKvHead: 2,
  headDim: 64,
  nFf: 512,
  nVocab: 600,
  ctx: 512,
  ropeBase: 1000000,
  linearRopeFactor: 8,
  tied: true,
  slidingWindow: GEMMA3_WINDOW,
};

/**
 * Gemma 2 in miniature: windows on every other layer (its default pattern), the scores softcapped
 * at 2 and the logits at 3 so that both bend (the released models' 50 and 30 bend only large ones).
 */
export const GEMMA2: SyntheticShape = {
  arch: 'gemma2',
  nEmbd: 256,
  nLayer: 4,
  nHead: 4,
  nKvHead: 2,
  headDim: 64,
  nFf: 512,
  nVocab: 600,
  ctx: 512,
  ropeBase: 10000,
  slidingWindow: GEMMA3_WINDOW,
  attnLogitSoftcap: 2,
  finalLogitSoftcap: 3,
};

/** Phi-3-mini in miniature: Q, K and V in one matrix, gate and up in one, every head a KV head. */
export const PHI3: SyntheticShape = {
  arch: 'phi3',
  // llama.cpp looks up "<|endoftext|>" in the vocabulary of a model whose name says phi3; the synthetic one has none.
  name: 'tiny',
  nEmbd: 256,
  nLayer: 3,
  nHead: 4,
  nKvHead: 4,
  headDim: 64,
  nFf: 512,
  nVocab: 600,
  ctx: 4096,
  ropeBase: 10000,
  slidingWindow: 2047,
};

/**
 * Phi-4-mini in miniature: grouped-query attention, three quarters of each head rotated, a tied head,
 * and the long-context rope (factor sets and attention factor) with an original context of 32, so
 * that a context of 256 rotates with the long factors.
 */
export const PHI4_MINI: SyntheticShape = {
  arch: 'phi3',
  name: 'tiny',
  nEmbd: 256,
  nLayer: 3,
  nHead: 8,
  nKvHead: 2,
  headDim: 32,
  ropeDims: 24,
  nFf: 512,
  nVocab: 600,
  ctx: 131072,
  ropeBase: 10000,
  tied: true,
  longRope: { origCtx: 32, attnFactor: 1.19 },
};

/** Mistral Small 3.x in miniature: the Llama decoder under its own architecture name. */
export const MISTRAL3: SyntheticShape = {
  arch: 'mistral3',
  nEmbd: 256,
  nLayer: 3,
  nHead: 8,
  nKvHead: 2,
  headDim: 32,
  nFf: 512,
  nVocab: 600,
  ctx: 4096,
  ropeBase: 1000000,
};

/**
 * Ministral 3 in miniature: YaRN x16 with its magnitude from mscale_all_dim, and the attention
 * temperature over an original context of 8, so that it grows along the prompt.
 */
export const MINISTRAL3: SyntheticShape = {
  ...MISTRAL3,
  ctx: 512,
  tied: true,
  yarn: { factor: 16, origCtx: 8 },
  yarnLogMul: 1,
  attnTemperature: 0.1,
};

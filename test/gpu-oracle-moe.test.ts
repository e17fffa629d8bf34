/**
 * The Mixture-of-Experts families and latent attention on the GPU backend against the external
 * oracle: the random-weight models of the CPU oracle tests (test/helpers/family-shapes.ts), every
 * layer on the GPU through WebGPU (in CI, Mesa's lavapipe), must give llama.cpp's greedy tokens, up
 * to a near-tie of llama.cpp's own logits. With float weights the next-token log-probabilities along
 * llama.cpp's continuation are compared too: the GPU keeps activations and attention weights in f32
 * where llama.cpp rounds some to f16, so they agree to ~1e-2, while a routing rule done wrong (a
 * weight off by its scale, the selection bias in the weights, the wrong group) moves them by far
 * more. Without the optional `webgpu` package or an adapter, these tests are skipped and say why.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../src/gguf/ggml-types.js';
import { writeSyntheticModel, type SyntheticQuant, type SyntheticShape } from '../src/model/synthetic.js';
import { loadModel } from '../src/engine/load.js';
import { llamaCppGreedy } from './helpers/llama-cpp.js';
import { assertSameGreedy, assertVaried, cairnGreedy, maxLogProbGap, oraclePrompt, quantizeWithKernels } from './helpers/oracle-greedy.js';
import { gpuLogProbsAlong } from './helpers/gpu-oracle.js';
import { DEEPSEEK_V2_LITE, DEEPSEEK_V2_LITE_UNSPLIT, DEEPSEEK_V3, GLM45, GPT_OSS, GPT_OSS_MXFP4, GPT_OSS_WINDOW, MIXTRAL, QWEN2MOE, QWEN3MOE } from './helpers/family-shapes.js';
import { scratchDir } from './helpers/paths.js';
import { gpuSkip } from './helpers/test-gpu.js';

const skip = await gpuSkip();

const dir = scratchDir('gpu-oracle-moe');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

/** A case: name, shape, weights, prompt length, the largest log-probability gap allowed (float weights only). */
type Case = readonly [name: string, shape: SyntheticShape, quant: SyntheticQuant, prompt: number, tolerance?: number];

const CASES: Case[] = [
  ['Mixtral F32', MIXTRAL, GgmlType.F32, 12, 0.03],
  ['Mixtral Q4_K_M', MIXTRAL, 'Q4_K_M', 12],
  ['Qwen2-MoE F32 (gated shared experts)', QWEN2MOE, GgmlType.F32, 12, 0.03],
  ['Qwen2-MoE Q8_0', QWEN2MOE, GgmlType.Q8_0, 12],
  ['Qwen3-MoE F32 (32 experts)', QWEN3MOE, GgmlType.F32, 12, 0.03],
  ['Qwen3-MoE Q4_K_M', QWEN3MOE, 'Q4_K_M', 12],
  ['GLM-4.5 F32 (sigmoid, selection bias, scaled, leading dense layer)', GLM45, GgmlType.F32, 12, 0.03],
  ['GLM-4.5 Q8_0', GLM45, GgmlType.Q8_0, 12],
  ['gpt-oss F32 (sinks, sliding windows, YaRN, biased experts)', GPT_OSS, GgmlType.F32, 3 * GPT_OSS_WINDOW, 0.03],
  ['gpt-oss F32, a 100-token prompt (windows within one batch)', GPT_OSS, GgmlType.F32, 100, 0.03],
  // llama.cpp rounds the experts' activations to Q8_0 for MXFP4 (log-probabilities ~0.2 apart), the GPU keeps them f32.
  ['gpt-oss MXFP4 experts, F32 elsewhere', GPT_OSS_MXFP4, GgmlType.F32, 3 * GPT_OSS_WINDOW],
  ['gpt-oss MXFP4 experts, Q8_0 elsewhere', GPT_OSS_MXFP4, GgmlType.Q8_0, 3 * GPT_OSS_WINDOW],
  ['DeepSeek-V2-Lite-like F32 (latent attention)', DEEPSEEK_V2_LITE, GgmlType.F32, 20, 0.03],
  ['DeepSeek-V3-like F32 (query bottleneck, group-limited sigmoid routing)', DEEPSEEK_V3, GgmlType.F32, 20, 0.03],
  ['DeepSeek-V3-like Q8_0', DEEPSEEK_V3, GgmlType.Q8_0, 20],
  ['DeepSeek-V2-Lite-like with unsplit attn_kv_b F32', DEEPSEEK_V2_LITE_UNSPLIT, GgmlType.F32, 20, 0.03],
];

for (const [name, shape, quant, promptLength, tolerance] of CASES) {
  test(`GPU backend, ${name}: greedy tokens equal llama.cpp's`, { skip, timeout: 300_000 }, async (t) => {
    const path = join(dir, `${name.replace(/\W+/g, '-')}.gguf`);
    writeSyntheticModel(path, { ...shape, quant, seed: 11 }, quantizeWithKernels);
    const prompt = oraclePrompt(shape.nVocab, promptLength);
    const oracle = await llamaCppGreedy(path, prompt, 24, { kvType: 'F16' });
    assertVaried(oracle);
    assertSameGreedy(await cairnGreedy(path, prompt, 24, GgmlType.F16, 'gpu'), oracle);
    if (tolerance === undefined) return;
    const gap = maxLogProbGap(await gpuLogProbsAlong(path, prompt, oracle), oracle);
    t.diagnostic(`largest log-probability gap ${gap}`);
    assert.ok(gap < tolerance, `log-probabilities differ from llama.cpp's by up to ${gap}`);
  });
}

// A Q8_0 latent cache (llama.cpp: -ctk q8_0 -ctv q8_0 with flash attention); the GPU's Q8_0 rows
// take an even number of 32-element blocks, so the latent (64) and rope part (64) make four.
test('GPU backend, DeepSeek-V2-Lite-like with a Q8_0 latent cache: greedy tokens equal llama.cpp\'s', { skip, timeout: 300_000 }, async () => {
  const shape: SyntheticShape = { ...DEEPSEEK_V2_LITE, mla: { ...DEEPSEEK_V2_LITE.mla!, ropeDim: 64 } };
  const path = join(dir, 'v2-lite-q8-cache.gguf');
  writeSyntheticModel(path, { ...shape, quant: GgmlType.Q8_0, seed: 22 }, quantizeWithKernels);
  const prompt = oraclePrompt(shape.nVocab, 20);
  const oracle = await llamaCppGreedy(path, prompt, 24, { kvType: 'Q8_0', flashAttention: true });
  assertVaried(oracle);
  assertSameGreedy(await cairnGreedy(path, prompt, 24, GgmlType.Q8_0, 'gpu'), oracle);
});

test('GPU backend: a latent-attention model caches only the latent and its rope part per token and layer', { skip, timeout: 300_000 }, async () => {
  const path = join(dir, 'kv-bytes.gguf');
  writeSyntheticModel(path, { ...DEEPSEEK_V3, quant: GgmlType.Q8_0, seed: 3 }, quantizeWithKernels);
  const model = await loadModel(path, { ctx: 128, slots: 2, compute: 'gpu', progress: false });
  try {
    assert.equal(model.placement.backend, 'gpu');
    const mla = DEEPSEEK_V3.mla!;
    assert.equal(model.kvBytes, 2 * 128 * DEEPSEEK_V3.nLayer * (mla.kvLora + mla.ropeDim) * 2);
  } finally {
    model.close();
  }
});

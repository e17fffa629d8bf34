/**
 * The deepseek2 family against llama.cpp on the same random-weight files: a DeepSeek-V2-Lite-like
 * shape (direct queries, softmax routing, two shared experts) and a DeepSeek-V3-like one (query
 * bottleneck, sigmoid routing with the score-correction bias, group-limited top-k, normalized and
 * scaled weights), both with a dense first layer and YaRN over a short original context, in F32,
 * Q8_0 and a K-quant mix; and the V2-Lite-like shape as older converters wrote it (an unsplit
 * attn_kv_b, which llama.cpp runs as plain multi-head attention and cairn splits and absorbs). Greedy tokens equal llama.cpp's up to a near-tie of its own logits (see
 * test/llamacpp-oracle.test.ts); with F32 weights and cache the next-token distributions agree
 * closely too; a Q8_0 latent cache against llama.cpp's. And the KV cache of a loaded model is
 * measured to be the latent size.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../src/gguf/ggml-types.js';
import { loadModel } from '../src/engine/load.js';
import { writeSyntheticModel, type SyntheticShape, type SyntheticQuant } from '../src/model/synthetic.js';
import { llamaCppGreedy } from './helpers/llama-cpp.js';
import {
  assertSameGreedy,
  assertVaried,
  cairnGreedy,
  cairnLogProbsAlong,
  maxLogProbGap,
  oraclePrompt,
  quantizeWithKernels,
} from './helpers/oracle-greedy.js';
import { scratchDir } from './helpers/paths.js';
import { DEEPSEEK_V2_LITE, DEEPSEEK_V2_LITE_UNSPLIT, DEEPSEEK_V3 } from './helpers/family-shapes.js';

const dir = scratchDir('oracle-deepseek2');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const V2_LITE = DEEPSEEK_V2_LITE;
const V2_LITE_UNSPLIT = DEEPSEEK_V2_LITE_UNSPLIT;
const V3 = DEEPSEEK_V3;

type Case = [string, SyntheticShape, SyntheticQuant, GgmlType.F16 | GgmlType.F32, number];

/**
 * name, shape, weights, cache, the largest log-probability gap allowed along llama.cpp's own
 * continuation. F32 weights and cache agree to ~1e-5 (a score scale without DeepSeek's mscale is
 * off by ~0.3); Q8_0 activations and an F16 cache add rounding flips of ~0.1 (up to 0.36 for
 * V2-Lite-like on an AVX2-only machine, where both engines take their AVX2 paths). With K-quants a
 * rounding flip now and then moves a token's expert choice, which moves its logits by more (up to
 * ~2 here), so those cases compare greedy tokens only, as test/llamacpp-oracle.test.ts does.
 */
const CASES: Case[] = [
  ['V2-Lite-like F32', V2_LITE, GgmlType.F32, GgmlType.F32, 1e-3],
  ['V3-like F32', V3, GgmlType.F32, GgmlType.F32, 1e-3],
  ['V2-Lite-like Q8_0', V2_LITE, GgmlType.Q8_0, GgmlType.F16, 0.5],
  ['V3-like Q8_0', V3, GgmlType.Q8_0, GgmlType.F16, 0.3],
  ['V2-Lite-like Q4_K_M', V2_LITE, 'Q4_K_M', GgmlType.F16, Infinity],
  ['V2-Lite-like unsplit attn_kv_b F32', V2_LITE_UNSPLIT, GgmlType.F32, GgmlType.F32, 1e-3],
  // llama.cpp quantizes the latent for attn_kv_b and caches f16 keys and values; the absorbed form
  // rounds at other points (the latent in the f16 cache, the heads' latent outputs to Q8_0): ~0.4.
  ['V2-Lite-like unsplit attn_kv_b Q8_0', V2_LITE_UNSPLIT, GgmlType.Q8_0, GgmlType.F16, Infinity],
  ['V3-like Q4_K_M', V3, 'Q4_K_M', GgmlType.F16, Infinity],
  // With a multi-token-prediction block after the layers (GLM-4.7-Flash), which both engines skip.
  ['V3-like with an MTP block F32', { ...V3, moe: { ...V3.moe!, nextn: 1 } }, GgmlType.F32, GgmlType.F32, 1e-3],
];

for (const [name, shape, quant, kvType, tolerance] of CASES) {
  test(`deepseek2 ${name}: greedy tokens equal llama.cpp's`, { timeout: 300_000 }, async () => {
    const path = join(dir, `${name.replace(/\W+/g, '-')}.gguf`);
    writeSyntheticModel(path, { ...shape, quant, seed: 21 }, quantizeWithKernels);
    const prompt = oraclePrompt(shape.nVocab, 20);
    const oracle = await llamaCppGreedy(path, prompt, 24, { kvType: kvType === GgmlType.F32 ? 'F32' : 'F16' });
    assertVaried(oracle);
    assertSameGreedy(await cairnGreedy(path, prompt, 24, kvType), oracle);
    if (tolerance !== Infinity) {
      const gap = maxLogProbGap(await cairnLogProbsAlong(path, prompt, oracle, kvType), oracle);
      assert.ok(gap < tolerance, `log-probabilities differ by up to ${gap}`);
    }
  });
}

// A Q8_0 cache holds the latent rows in blocks of 32 (llama.cpp: -ctk q8_0 -ctv q8_0, which its
// MLA needs alike and runs with flash attention), so the rope part here is 32 wide (64 + 32 = 96:
// an odd number of blocks, which the CPU takes; the GPU test takes an even one).
test('deepseek2 V2-Lite-like with a Q8_0 latent cache: greedy tokens equal llama.cpp\'s', { timeout: 300_000 }, async () => {
  const shape: SyntheticShape = { ...V2_LITE, mla: { ...V2_LITE.mla!, ropeDim: 32 } };
  const path = join(dir, 'v2-lite-q8-cache.gguf');
  writeSyntheticModel(path, { ...shape, quant: GgmlType.Q8_0, seed: 22 }, quantizeWithKernels);
  const prompt = oraclePrompt(shape.nVocab, 20);
  const oracle = await llamaCppGreedy(path, prompt, 24, { kvType: 'Q8_0', flashAttention: true });
  assertVaried(oracle);
  assertSameGreedy(await cairnGreedy(path, prompt, 24, GgmlType.Q8_0), oracle);
});

test('a loaded deepseek2 model caches (kv_lora_rank + rope dims) f16 per token per layer, nothing per head', async () => {
  const path = join(dir, 'kv-bytes.gguf');
  writeSyntheticModel(path, { ...V3, quant: GgmlType.Q8_0, seed: 3 }, quantizeWithKernels);
  const ctx = 256;
  const model = await loadModel(path, { ctx, kvType: GgmlType.F16, progress: false });
  try {
    const kv = model.shards[0].kv;
    const slots = kv.slots;
    const perToken = kv.bytes / (slots * kv.ctxPerSlot);
    const mla = V3.mla!;
    assert.equal(perToken, V3.nLayer * (mla.kvLora + mla.ropeDim) * 2);
    // Decompressed keys and values would take nHead x (nope + rope + v) per token per layer.
    assert.ok(perToken < (V3.nLayer * V3.nHead * (mla.nope + mla.ropeDim + mla.vDim) * 2) / 2);
  } finally {
    model.close();
  }
});

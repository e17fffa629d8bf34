/**
 * YaRN rope scaling on the dense families against llama.cpp: a short original context and a large
 * factor, so the prompt and continuation run through interpolated, ramped and extrapolated
 * frequencies, and the rotation's magnitude (1 + 0.1 ln factor) scales every attention logit.
 */
import { test } from 'node:test';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../src/gguf/ggml-types.js';
import { writeSyntheticModel, type SyntheticShape, type SyntheticQuant } from '../src/model/synthetic.js';
import { llamaCppGreedy } from './helpers/llama-cpp.js';
import assert from 'node:assert/strict';
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

const dir = scratchDir('oracle-yarn');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

type Case = [string, SyntheticShape, SyntheticQuant, GgmlType.F16 | GgmlType.F32, number];

const LLAMA: SyntheticShape = {
  arch: 'llama',
  nEmbd: 128,
  nLayer: 2,
  nHead: 4,
  nKvHead: 2,
  nFf: 256,
  nVocab: 600,
  ctx: 256,
  yarn: { factor: 8, origCtx: 32 },
};
const QWEN3: SyntheticShape = {
  arch: 'qwen3',
  nEmbd: 128,
  nLayer: 2,
  nHead: 4,
  nKvHead: 2,
  headDim: 64,
  nFf: 256,
  nVocab: 600,
  ctx: 256,
  ropeBase: 1e6,
  yarn: { factor: 16, origCtx: 24 },
};

/**
 * name, shape, weights, cache, the largest log-probability gap allowed. With F32 weights and cache
 * the engines agree to ~1e-5 (a rope without YaRN's ramp and magnitude is off by 0.3 to 4); Q8_0
 * activations and an F16 cache add rounding flips of up to ~0.15.
 */
const CASES: Case[] = [
  ['llama F32', LLAMA, GgmlType.F32, GgmlType.F32, 1e-3],
  ['qwen3 F32', QWEN3, GgmlType.F32, GgmlType.F32, 1e-3],
  ['qwen3 Q8_0, F16 cache', QWEN3, GgmlType.Q8_0, GgmlType.F16, 0.5],
];

for (const [name, shape, quant, kvType, tolerance] of CASES) {
  test(`${name} with YaRN scaling: greedy tokens and next-token distributions equal llama.cpp's`, { timeout: 300_000 }, async () => {
    const path = join(dir, `${name.replace(/\W+/g, '-')}.gguf`);
    writeSyntheticModel(path, { ...shape, quant, seed: 11 }, quantizeWithKernels);
    const prompt = oraclePrompt(shape.nVocab, 20);
    const oracle = await llamaCppGreedy(path, prompt, 24, { kvType: kvType === GgmlType.F32 ? 'F32' : 'F16' });
    assertVaried(oracle);
    assertSameGreedy(await cairnGreedy(path, prompt, 24, kvType), oracle);
    const gap = maxLogProbGap(await cairnLogProbsAlong(path, prompt, oracle, kvType), oracle);
    assert.ok(gap < tolerance, `log-probabilities differ by up to ${gap}`);
  });
}

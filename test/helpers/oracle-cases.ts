/**
 * One family's oracle tests: for each weight type (or mix) and KV cache type, a random-weight model
 * of `shape` written by cairn's GGUF writer must give llama.cpp's greedy tokens (up to a near-tie
 * of llama.cpp's own logits; see test/llamacpp-oracle.test.ts), and along llama.cpp's continuation
 * with F32 weights and cache also the same next-token log-probabilities to 1e-3: the engines
 * agree to ~1e-5 there, while a routing detail done wrong (a weight off by its selection bias, a
 * scale skipped) moves them by 1e-2 and more without always changing a greedy token. With quantized
 * activations or an F16 cache, a rounding flip can move a router's near-tie to another expert
 * (log-probabilities then jump by ~2 for a step, a flip in the cache shifts them by ~0.15 for the
 * rest of the run), so those cases compare greedy tokens only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../../src/gguf/ggml-types.js';
import { writeSyntheticModel, type SyntheticQuant, type SyntheticShape } from '../../src/model/synthetic.js';
import { llamaCppGreedy } from './llama-cpp.js';
import {
  assertSameGreedy,
  assertVaried,
  cairnGreedy,
  cairnLogProbsAlong,
  maxLogProbGap,
  oraclePrompt,
  quantizeWithKernels,
} from './oracle-greedy.js';
import { scratchDir } from './paths.js';

/**
 * A case: its name, the weights' quantization, the KV cache type, the largest log-probability gap
 * allowed (or none), and a shape of its own where it differs from the family's.
 */
export type OracleCase = readonly [
  name: string,
  quant: SyntheticQuant,
  kv: GgmlType.F16 | GgmlType.F32,
  tolerance?: number,
  shape?: SyntheticShape,
];

/** F32 weights with an F32 cache (log-probabilities too), Q8_0 and the Q4_K_M mix with the default F16 cache. */
export const STANDARD_CASES: readonly OracleCase[] = [
  ['F32', GgmlType.F32, GgmlType.F32, 1e-3],
  ['Q8_0', GgmlType.Q8_0, GgmlType.F16],
  ['Q4_K_M', 'Q4_K_M', GgmlType.F16],
];

/**
 * Registers one test per case for models of `shape` (each named `label`); 32 greedy tokens after
 * BOS and `promptLength` tokens (longer than a sliding window, where the family has one).
 */
export function oracleTests(
  label: string,
  family: SyntheticShape,
  cases: readonly OracleCase[] = STANDARD_CASES,
  seed = 11,
  promptLength = 11,
): void {
  const dir = scratchDir(`oracle-${label}`);
  mkdirSync(dir, { recursive: true });
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  for (const [name, quant, kv, tolerance, own] of cases) {
    const shape = own ?? family;
    test(
      `${label} ${name}, ${kv === GgmlType.F32 ? 'F32' : 'F16'} KV cache: greedy tokens equal llama.cpp's`,
      { timeout: 300_000 },
      async (t) => {
        const path = join(dir, `${label}-${name.replace(/\W+/g, '-')}.gguf`);
        writeSyntheticModel(path, { ...shape, quant, seed }, quantizeWithKernels);
        const prompt = oraclePrompt(shape.nVocab, promptLength);
        const oracle = await llamaCppGreedy(path, prompt, 32, { kvType: kv === GgmlType.F32 ? 'F32' : 'F16' });
        assertVaried(oracle);
        assertSameGreedy(await cairnGreedy(path, prompt, 32, kv), oracle);
        if (tolerance === undefined) return;
        const gap = maxLogProbGap(await cairnLogProbsAlong(path, prompt, oracle, kv), oracle);
        t.diagnostic(`largest log-probability gap ${gap}`);
        assert.ok(gap < tolerance, `log-probabilities differ from llama.cpp's by up to ${gap}`);
      },
    );
  }
}

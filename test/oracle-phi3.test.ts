/**
 * Phi-3 and Phi-4 against llama.cpp: random-weight models shaped like the released ones in miniature
 * (fused Q/K/V and gate/up matrices; Phi-3-mini's heads all KV heads; Phi-4-mini's grouped heads,
 * partial rotation, tied head and long-context rope factors), in F32, Q8_0 and the Q4_K_M mix; a
 * context past the original one takes the long factors and one within it the short ones, in both
 * engines; and Q, K and V as three tensors. Greedy tokens must equal llama.cpp's up to a near-tie of
 * its own logits (see test/llamacpp-oracle.test.ts), and for F32 every next-token distribution along
 * llama.cpp's continuation too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../src/gguf/ggml-types.js';
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
import { PHI3, PHI4_MINI } from './helpers/family-shapes.js';

const dir = scratchDir('oracle-phi3');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

/** Both engines run these with a context of 256: an original context of 1024 keeps the short factors. */
const PHI4_MINI_SHORT: SyntheticShape = { ...PHI4_MINI, longRope: { origCtx: 1024, attnFactor: 1.19 } };

const CASES: [string, SyntheticShape, SyntheticQuant, GgmlType.F16 | GgmlType.F32, number?][] = [
  ['Phi-3-mini F32, F32 KV cache', PHI3, GgmlType.F32, GgmlType.F32, 1e-3],
  ['Phi-3-mini Q8_0', PHI3, GgmlType.Q8_0, GgmlType.F16],
  ['Phi-3-mini Q4_K_M', PHI3, 'Q4_K_M', GgmlType.F16],
  ['Phi-4-mini F32 past the original context (long rope factors)', PHI4_MINI, GgmlType.F32, GgmlType.F32, 1e-3],
  ['Phi-4-mini F32 within the original context (short rope factors)', PHI4_MINI_SHORT, GgmlType.F32, GgmlType.F32, 1e-3],
  ['Phi-4-mini Q4_K_M', PHI4_MINI, 'Q4_K_M', GgmlType.F16],
  ['Q, K and V as three tensors, Q8_0', { ...PHI3, separateQkv: true }, GgmlType.Q8_0, GgmlType.F16],
];

for (const [name, shape, quant, kv, tolerance] of CASES) {
  test(
    `phi3 ${name}: greedy tokens${tolerance === undefined ? '' : ' and next-token distributions'} equal llama.cpp's`,
    { timeout: 300_000 },
    async () => {
      const path = join(dir, `${name.replace(/\W+/g, '-')}.gguf`);
      writeSyntheticModel(path, { ...shape, quant, seed: 13 }, quantizeWithKernels);
      const prompt = oraclePrompt(shape.nVocab, 40);
      const oracle = await llamaCppGreedy(path, prompt, 24, { kvType: kv === GgmlType.F16 ? 'F16' : 'F32' });
      assertVaried(oracle);
      assertSameGreedy(await cairnGreedy(path, prompt, 24, kv), oracle);
      if (tolerance !== undefined) {
        const gap = maxLogProbGap(await cairnLogProbsAlong(path, prompt, oracle, kv), oracle);
        assert.ok(gap < tolerance, `log-probabilities differ by up to ${gap}`);
      }
    },
  );
}

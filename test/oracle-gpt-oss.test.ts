/**
 * gpt-oss against llama.cpp: random-weight models shaped like the released ones in miniature
 * (attention with sinks and Q/K/V/output biases, sliding windows on the even layers, YaRN x32, a
 * router with a bias, swiglu_oai experts with biases whose clamps are reached), with MXFP4 experts
 * as in the released files (the rest Q8_0 or a K-quant mix), all-F32, and K-quant experts. The
 * window is short and the prompt three windows long or more, so the windowed layers see only part
 * of it; greedy tokens must equal llama.cpp's up to a near-tie of its own logits (see
 * test/llamacpp-oracle.test.ts), and where both engines round alike, every next-token
 * distribution along llama.cpp's continuation too.
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
import { GPT_OSS, GPT_OSS_MXFP4, GPT_OSS_WIDE, GPT_OSS_WINDOW } from './helpers/family-shapes.js';

const dir = scratchDir('oracle-gpt-oss');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const WINDOW = GPT_OSS_WINDOW;

const CASES: [string, SyntheticShape, SyntheticQuant, GgmlType.F16 | GgmlType.F32, number, number?][] = [
  ['F32, F32 KV cache', GPT_OSS, GgmlType.F32, GgmlType.F32, 3 * WINDOW, 1e-3],
  ['MXFP4 experts, F32 elsewhere and in the KV cache, a 100-token prompt', GPT_OSS_MXFP4, GgmlType.F32, GgmlType.F32, 100, 1e-3],
  ['MXFP4 experts, Q8_0 elsewhere', GPT_OSS_MXFP4, GgmlType.Q8_0, GgmlType.F16, 3 * WINDOW],
  ['MXFP4 experts, Q4_K_M elsewhere', { ...GPT_OSS_WIDE, moe: { ...GPT_OSS_WIDE.moe!, expertType: GgmlType.MXFP4 } }, 'Q4_K_M', GgmlType.F16, 3 * WINDOW],
  ['Q4_K_M, K-quant experts', GPT_OSS_WIDE, 'Q4_K_M', GgmlType.F16, 3 * WINDOW],
];

for (const [name, shape, quant, kv, promptLength, tolerance] of CASES) {
  test(
    `gpt-oss ${name}: greedy tokens${tolerance === undefined ? '' : ' and next-token distributions'} equal llama.cpp's past the window`,
    { timeout: 300_000 },
    async () => {
      const path = join(dir, `${name.replace(/\W+/g, '-')}.gguf`);
      writeSyntheticModel(path, { ...shape, quant, seed: 7 }, quantizeWithKernels);
      const prompt = oraclePrompt(shape.nVocab, promptLength);
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

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

const dir = scratchDir('oracle-gpt-oss');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const WINDOW = 8;
const SHAPE: SyntheticShape = {
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
  slidingWindow: WINDOW,
  // Three of eight: an odd count, in the order llama.cpp sums them.
  moe: { experts: 8, used: 3, width: 64 },
};
const MXFP4 = { ...SHAPE.moe!, expertType: GgmlType.MXFP4 };
/** Wide enough for K-quant blocks (256) in every matrix, experts included. */
const WIDE: SyntheticShape = { ...SHAPE, nEmbd: 256, nHead: 8, nKvHead: 2, moe: { experts: 8, used: 4, width: 256 } };

/**
 * name, shape, weights, KV cache, prompt length (past 64 tokens, the prompt's attention runs in
 * several chunks), and for the files whose activations both engines round alike (F32 weights and
 * cache; MXFP4 experts take Q8_0 activations, quantized identically) the largest log-probability
 * gap along llama.cpp's continuation: they agree to ~1e-5 there. Elsewhere a rounding flip in an
 * 8-bit activation can move a router logit past its neighbour's and change an expert, so only the
 * greedy tokens are compared, up to a near-tie.
 */
const CASES: [string, SyntheticShape, SyntheticQuant, GgmlType.F16 | GgmlType.F32, number, number?][] = [
  ['F32, F32 KV cache', SHAPE, GgmlType.F32, GgmlType.F32, 3 * WINDOW, 1e-3],
  ['MXFP4 experts, F32 elsewhere and in the KV cache, a 100-token prompt', { ...SHAPE, moe: MXFP4 }, GgmlType.F32, GgmlType.F32, 100, 1e-3],
  ['MXFP4 experts, Q8_0 elsewhere', { ...SHAPE, moe: MXFP4 }, GgmlType.Q8_0, GgmlType.F16, 3 * WINDOW],
  ['MXFP4 experts, Q4_K_M elsewhere', { ...WIDE, moe: { ...WIDE.moe!, expertType: GgmlType.MXFP4 } }, 'Q4_K_M', GgmlType.F16, 3 * WINDOW],
  ['Q4_K_M, K-quant experts', WIDE, 'Q4_K_M', GgmlType.F16, 3 * WINDOW],
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

/**
 * Gemma 3 and Gemma 2 against llama.cpp: random-weight models shaped like the released ones in miniature
 * (embeddings scaled by sqrt(nEmbd), sandwich norms, Q/K norms, GeGLU, a tied head, windows on five
 * layers of six with their own rope base, linear scaling x8 on the global ones), all-F32, Q8_0 and
 * the Q4_K_M mix; then a file that sets its own window pattern, the final logit softcapping and an
 * output head of its own, and one of 62 layers (llama.cpp's rule for the 27B's query scale); Gemma 2
 * with its attention scores and logits softcapped, and without the keys (llama.cpp's defaults). The prompt is three windows long or more, so the windowed layers see only
 * part of it; greedy tokens must equal llama.cpp's up to a near-tie of its own logits (see
 * test/llamacpp-oracle.test.ts), and where both engines round alike, every next-token distribution
 * along llama.cpp's continuation too.
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
import { GEMMA2, GEMMA3, GEMMA3_WINDOW } from './helpers/family-shapes.js';

const dir = scratchDir('oracle-gemma');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const PROMPT = 3 * GEMMA3_WINDOW + 5;

/** Every other layer windowed, logits softcapped at 3 (where it bends them), a head of its own. */
const VARIANT: SyntheticShape = {
  ...GEMMA3,
  nLayer: 4,
  slidingWindowPattern: 2,
  finalLogitSoftcap: 3,
  tied: false,
  linearRopeFactor: undefined,
};

/*
 * Distributions: 1e-2 for the tied shape, whose stream is all layer output (its embeddings enter
 * small): both engines take gelu from a table of f16 inputs, so a gate value the two round apart
 * (their sums differ in the last bit) lands on the next f16 and moves the logits by about 1e-3;
 * the untied shape's large embeddings carry its logits and keep 1e-3. A wrong rope base or scale
 * on the windowed layers moves them by 5 or more.
 */
/** 62 layers, as Gemma 3 27B: llama.cpp scales its queries by 1/sqrt(nEmbd / nHead) (32 here), not 1/sqrt(the head size, 64). */
const DEEP: SyntheticShape = { ...GEMMA3, nEmbd: 128, nLayer: 62, nHead: 4, nKvHead: 2, headDim: 64, nFf: 128 };

const CASES: [string, SyntheticShape, SyntheticQuant, GgmlType.F16 | GgmlType.F32, number?][] = [
  ['F32, F32 KV cache', GEMMA3, GgmlType.F32, GgmlType.F32, 1e-2],
  ['Q8_0', GEMMA3, GgmlType.Q8_0, GgmlType.F16],
  ['Q4_K_M', GEMMA3, 'Q4_K_M', GgmlType.F16],
  ['F32 with a window pattern of 2, softcapped logits and an untied head', VARIANT, GgmlType.F32, GgmlType.F32, 1e-3],
  ["Q8_0 of 62 layers, the 27B's query scale", DEEP, GgmlType.Q8_0, GgmlType.F16],
  ['F32, F32 KV cache: softcapped scores and logits, windows on every other layer', GEMMA2, GgmlType.F32, GgmlType.F32, 1e-2],
  ['Q8_0', GEMMA2, GgmlType.Q8_0, GgmlType.F16],
  ['Q4_K_M', GEMMA2, 'Q4_K_M', GgmlType.F16],
  [
    "without the softcap keys (llama.cpp's defaults, 50 and 30)",
    { ...GEMMA2, attnLogitSoftcap: undefined, finalLogitSoftcap: undefined },
    GgmlType.Q8_0,
    GgmlType.F16,
  ],
];

for (const [name, shape, quant, kv, tolerance] of CASES) {
  test(
    `${shape.arch} ${name}: greedy tokens${tolerance === undefined ? '' : ' and next-token distributions'} equal llama.cpp's past the window`,
    { timeout: 300_000 },
    async () => {
      const path = join(dir, `${shape.arch}-${name.replace(/\W+/g, '-')}.gguf`);
      writeSyntheticModel(path, { ...shape, quant, seed: 11 }, quantizeWithKernels);
      const prompt = oraclePrompt(shape.nVocab, PROMPT);
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

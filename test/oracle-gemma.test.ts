/**
 * Gemma 3 and Gemma 2 against llama.cpp: random-weight models shaped like the released ones in miniature
 * (embeddings scaled by sqrt(nEmbd), sandwich norms, Q/K norms, GeGLU, a tied head, windows on five
 * layers of six with their own rope base, linear scaling x8 on the global ones), all-F32, Q8_0 and
 * the Q4_K_M mix; then a file that sets its own window pattern, the final logit softcapping and an
 * output head of its own, and one of 62 layers (llama.cpp's rule for the 27B's query scale); Gemma 2
 * with its attention scores and logits softcapped, and without the keys (llama.cpp's defaults).
 * The prompt is three windows long or more, so the windowed layers see only part of it.
 */
import { GgmlType } from '../src/gguf/ggml-types.js';
import type { SyntheticShape } from '../src/model/synthetic.js';
import { oracleTests, type OracleCase } from './helpers/oracle-cases.js';
import { GEMMA2, GEMMA3, GEMMA3_WINDOW } from './helpers/family-shapes.js';

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

/** 62 layers, as Gemma 3 27B: llama.cpp scales its queries by 1/sqrt(nEmbd / nHead) (32 here), not 1/sqrt(the head size, 64). */
const DEEP: SyntheticShape = { ...GEMMA3, nEmbd: 128, nLayer: 62, nHead: 4, nKvHead: 2, headDim: 64, nFf: 128 };

/*
 * Distributions: 1e-2 for the tied shapes, whose stream is all layer output (their embeddings enter
 * small): both engines take gelu from a table of f16 inputs, so a gate value the two round apart
 * (their sums differ in the last bit) lands on the next f16 and moves the logits by about 1e-3;
 * the untied shape's large embeddings carry its logits and keep 1e-3. A wrong rope base or scale
 * on the windowed layers moves them by 5 or more, a missing score softcap by 2.8.
 */
const GEMMA3_CASES: readonly OracleCase[] = [
  ['F32', GgmlType.F32, GgmlType.F32, 1e-2],
  ['Q8_0', GgmlType.Q8_0, GgmlType.F16],
  ['Q4_K_M', 'Q4_K_M', GgmlType.F16],
  ['F32 with a window pattern of 2, softcapped logits and an untied head', GgmlType.F32, GgmlType.F32, 1e-3, VARIANT],
  ["Q8_0 of 62 layers, the 27B's query scale", GgmlType.Q8_0, GgmlType.F16, undefined, DEEP],
];

const GEMMA2_CASES: readonly OracleCase[] = [
  ['F32: softcapped scores and logits, windows on every other layer', GgmlType.F32, GgmlType.F32, 1e-2],
  ['Q8_0', GgmlType.Q8_0, GgmlType.F16],
  ['Q4_K_M', 'Q4_K_M', GgmlType.F16],
  [
    "without the softcap keys (llama.cpp's defaults, 50 and 30)",
    GgmlType.Q8_0,
    GgmlType.F16,
    undefined,
    { ...GEMMA2, attnLogitSoftcap: undefined, finalLogitSoftcap: undefined },
  ],
];

oracleTests('gemma3', GEMMA3, GEMMA3_CASES, 11, PROMPT);
oracleTests('gemma2', GEMMA2, GEMMA2_CASES, 11, PROMPT);

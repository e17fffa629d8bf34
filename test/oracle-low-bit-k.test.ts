/**
 * The 2- and 3-bit K-quants against llama.cpp: Q2_K (2-bit quants, a 4-bit scale and min per 16
 * elements), Q3_K (3-bit quants, a 6-bit signed scale per 16), llama.cpp's Q3_K_M mix (Q3_K with
 * Q4_K/Q5_K for attn_v, ffn_down and attn_output, Q6_K output) and IQ4_XS (4-bit codes into a table
 * of 16 values, a 6-bit scale per 32), the types the large MoE files people
 * squeeze onto their machines are made of. Random-weight models written by cairn's GGUF writer, a
 * dense llama shape and two MoE shapes (Qwen3-MoE, DeepSeek-V3-like with latent attention), must give
 * llama.cpp's greedy tokens up to a near-tie of its own logits.
 */
import { GgmlType } from '../src/gguf/ggml-types.js';
import type { SyntheticShape } from '../src/model/synthetic.js';
import { oracleTests, type OracleCase } from './helpers/oracle-cases.js';
import { DEEPSEEK_V3, QWEN3MOE } from './helpers/family-shapes.js';

const LLAMA: SyntheticShape = { arch: 'llama', nEmbd: 256, nLayer: 3, nHead: 4, nKvHead: 2, nFf: 512, nVocab: 600 };
const CASES: readonly OracleCase[] = [
  ['Q2_K', GgmlType.Q2_K, GgmlType.F16],
  ['Q3_K', GgmlType.Q3_K, GgmlType.F16],
  ['Q3_K_M', 'Q3_K_M', GgmlType.F16],
  ['IQ4_XS', GgmlType.IQ4_XS, GgmlType.F16],
];

oracleTests('llama-low-bit', LLAMA, CASES, 5);
oracleTests('qwen3moe-low-bit', QWEN3MOE, [CASES[0], CASES[1], CASES[3]], 5);
oracleTests('deepseek2-low-bit', DEEPSEEK_V3, [CASES[0], CASES[2]], 5);

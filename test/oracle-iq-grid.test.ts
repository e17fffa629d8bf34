/**
 * The IQ grid formats against llama.cpp: IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS and IQ3_S
 * (groups of 8 elements as codebook entries with their signs, odd scales per 16 or 32 elements), what
 * the 1- to 3-bit files of DeepSeek, Kimi K2 and Qwen3-MoE are made of, and IQ4_NL (32-element
 * blocks of 4-bit codes into IQ4_XS's table), which those files hold where a row is no multiple of
 * 256 (as DeepSeek-V2-Lite's 1408-wide experts; here the DeepSeek shape's 64-wide experts). Random-weight models written
 * by cairn's GGUF writer with cairn's own quantizer (any valid encoding reads the same in both
 * engines), a dense llama shape and two MoE shapes, must give llama.cpp's greedy tokens up to a
 * near-tie of its own logits.
 */
import { GgmlType } from '../src/gguf/ggml-types.js';
import type { SyntheticShape } from '../src/model/synthetic.js';
import { oracleTests, type OracleCase } from './helpers/oracle-cases.js';
import { DEEPSEEK_V3, QWEN3MOE } from './helpers/family-shapes.js';

const LLAMA: SyntheticShape = { arch: 'llama', nEmbd: 256, nLayer: 3, nHead: 4, nKvHead: 2, nFf: 512, nVocab: 600 };
const CASES: readonly OracleCase[] = [
  ['IQ1_S', GgmlType.IQ1_S, GgmlType.F16],
  ['IQ1_M', GgmlType.IQ1_M, GgmlType.F16],
  ['IQ2_XXS', GgmlType.IQ2_XXS, GgmlType.F16],
  ['IQ2_XS', GgmlType.IQ2_XS, GgmlType.F16],
  ['IQ2_S', GgmlType.IQ2_S, GgmlType.F16],
  ['IQ3_XXS', GgmlType.IQ3_XXS, GgmlType.F16],
  ['IQ3_S', GgmlType.IQ3_S, GgmlType.F16],
  ['IQ4_NL', GgmlType.IQ4_NL, GgmlType.F16],
];

oracleTests('llama-iq-grid', LLAMA, CASES, 5);
oracleTests('qwen3moe-iq-grid', QWEN3MOE, [CASES[2], CASES[0]], 5);
oracleTests('deepseek2-iq-grid', DEEPSEEK_V3, [CASES[5], CASES[1]], 5);
oracleTests('qwen3moe-iq4-nl', QWEN3MOE, [CASES[7]], 5);

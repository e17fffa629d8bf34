/**
 * Mistral 3 against llama.cpp: the Llama decoder under the `mistral3` name (Mistral Small 3.x,
 * Devstral, Magistral), and Ministral 3's YaRN with its magnitude and Llama 4's attention
 * temperature, which grows along a prompt five times the original context of the miniature.
 */
import { GgmlType } from '../src/gguf/ggml-types.js';
import { oracleTests, STANDARD_CASES } from './helpers/oracle-cases.js';
import { MINISTRAL3, MISTRAL3 } from './helpers/family-shapes.js';

oracleTests(
  'mistral3',
  MISTRAL3,
  [
    ...STANDARD_CASES,
    ['Ministral 3 F32: YaRN and the attention temperature', GgmlType.F32, GgmlType.F32, 1e-3, MINISTRAL3],
    ['Ministral 3 Q4_K_M', 'Q4_K_M', GgmlType.F16, undefined, MINISTRAL3],
  ],
  17,
  40,
);

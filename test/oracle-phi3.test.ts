/**
 * Phi-3 and Phi-4 against llama.cpp: random-weight models shaped like the released ones in miniature
 * (fused Q/K/V and gate/up matrices; Phi-3-mini's heads all KV heads; Phi-4-mini's grouped heads,
 * partial rotation, tied head and long-context rope factors), in F32, Q8_0 and the Q4_K_M mix; a
 * context past the original one takes the long factors and one within it the short ones, in both
 * engines (swapping them moves a greedy token by a logit gap of 4 or more); and Q, K and V as three
 * tensors.
 */
import { GgmlType } from '../src/gguf/ggml-types.js';
import type { SyntheticShape } from '../src/model/synthetic.js';
import { oracleTests, STANDARD_CASES } from './helpers/oracle-cases.js';
import { PHI3, PHI4_MINI } from './helpers/family-shapes.js';

/** Both engines run these with a context of 256: an original context of 1024 keeps the short factors. */
const PHI4_MINI_SHORT: SyntheticShape = { ...PHI4_MINI, longRope: { origCtx: 1024, attnFactor: 1.19 } };

oracleTests(
  'phi3',
  PHI3,
  [
    ...STANDARD_CASES,
    ['Phi-4-mini F32 past the original context (long rope factors)', GgmlType.F32, GgmlType.F32, 1e-3, PHI4_MINI],
    ['Phi-4-mini F32 within the original context (short rope factors)', GgmlType.F32, GgmlType.F32, 1e-3, PHI4_MINI_SHORT],
    ['Phi-4-mini Q4_K_M', 'Q4_K_M', GgmlType.F16, undefined, PHI4_MINI],
    ['Q, K and V as three tensors, Q8_0', GgmlType.Q8_0, GgmlType.F16, undefined, { ...PHI3, separateQkv: true }],
  ],
  13,
  40,
);

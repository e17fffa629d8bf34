/**
 * GLM-4.5 against llama.cpp: random-weight `glm4moe` models with what GLM-4.5 has - Q/K/V biases,
 * per-head Q/K norms, partial rotary (half of each head), a leading dense layer, sigmoid routing
 * with a score-correction bias that chooses but does not weigh, normalized and scaled weights, a
 * shared expert, and a multi-token-prediction layer that inference skips - in F32, Q8_0 and a
 * K-quant mix; and one without the Q/K norms (GLM-4.5-Air).
 */
import { GgmlType } from '../src/gguf/ggml-types.js';
import { oracleTests } from './helpers/oracle-cases.js';
import { GLM45 } from './helpers/family-shapes.js';

oracleTests('glm4moe', GLM45);
oracleTests('glm4moe-air', { ...GLM45, attnExtras: { qkvBias: true }, moe: { ...GLM45.moe!, scale: 1 } }, [
  ['F32', GgmlType.F32, GgmlType.F32, 1e-3],
]);

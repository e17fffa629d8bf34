/**
 * GLM-4.5 against llama.cpp: random-weight `glm4moe` models with what GLM-4.5 has - Q/K/V biases,
 * per-head Q/K norms, partial rotary (half of each head), a leading dense layer, sigmoid routing
 * with a score-correction bias that chooses but does not weigh, normalized and scaled weights, a
 * shared expert, and a multi-token-prediction layer that inference skips - in F32, Q8_0 and a
 * K-quant mix; and one without the Q/K norms (GLM-4.5-Air).
 */
import { GgmlType } from '../src/gguf/ggml-types.js';
import type { SyntheticShape } from '../src/model/synthetic.js';
import { oracleTests } from './helpers/oracle-cases.js';

const GLM45: SyntheticShape = {
  arch: 'glm4moe',
  nEmbd: 256,
  nLayer: 4,
  nHead: 4,
  nKvHead: 2,
  headDim: 64,
  nFf: 512,
  nVocab: 1000,
  ropeBase: 1000000,
  attnExtras: { qkvBias: true, qkNorm: true },
  moe: { experts: 16, used: 4, width: 256, shared: 1, leadingDense: 1, sigmoid: true, normalize: true, scale: 2.5, nextn: 1 },
};

oracleTests('glm4moe', GLM45);
oracleTests('glm4moe-air', { ...GLM45, attnExtras: { qkvBias: true }, moe: { ...GLM45.moe!, scale: 1 } }, [
  ['F32', GgmlType.F32, GgmlType.F32, 1e-3],
]);

/**
 * Qwen2-MoE against llama.cpp: random-weight `qwen2moe` models (Q/K/V biases, softmax routing
 * whose chosen weights are not renormalized, one shared expert of its own width behind a sigmoid
 * gate, an untied head) in F32, Q8_0 and a K-quant mix.
 */
import { oracleTests } from './helpers/oracle-cases.js';

oracleTests('qwen2moe', {
  arch: 'qwen2moe',
  nEmbd: 256,
  nLayer: 3,
  nHead: 4,
  nKvHead: 4,
  nFf: 512,
  nVocab: 1000,
  ropeBase: 1000000,
  attnExtras: { qkvBias: true },
  moe: { experts: 12, used: 4, width: 256, sharedWidth: 512 },
});

/**
 * Mixtral against llama.cpp: random-weight `llama` models with `llama.expert_count` (experts as
 * wide as feed_forward_length, softmax routing with the top k renormalized, adjacent-pair rope,
 * grouped-query attention) in F32, Q8_0 and a K-quant mix.
 */
import { oracleTests } from './helpers/oracle-cases.js';

oracleTests('mixtral', {
  arch: 'llama',
  nEmbd: 256,
  nLayer: 3,
  nHead: 8,
  nKvHead: 2,
  nFf: 256,
  nVocab: 1000,
  ropeBase: 1000000,
  moe: { experts: 8, used: 2, width: 256 },
});

/**
 * Mixtral against llama.cpp: random-weight `llama` models with `llama.expert_count` (experts as
 * wide as feed_forward_length, softmax routing with the top k renormalized, adjacent-pair rope,
 * grouped-query attention) in F32, Q8_0 and a K-quant mix.
 */
import { oracleTests } from './helpers/oracle-cases.js';
import { MIXTRAL } from './helpers/family-shapes.js';

oracleTests('mixtral', MIXTRAL);

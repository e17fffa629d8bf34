/**
 * Qwen2-MoE against llama.cpp: random-weight `qwen2moe` models (Q/K/V biases, softmax routing
 * whose chosen weights are not renormalized, one shared expert of its own width behind a sigmoid
 * gate, an untied head) in F32, Q8_0 and a K-quant mix.
 */
import { oracleTests } from './helpers/oracle-cases.js';
import { QWEN2MOE } from './helpers/family-shapes.js';

oracleTests('qwen2moe', QWEN2MOE);

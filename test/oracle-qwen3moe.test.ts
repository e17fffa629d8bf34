/**
 * Qwen3-MoE against llama.cpp: random-weight `qwen3moe` models (Q/K norms, a head size of its own,
 * softmax routing over all experts with the top k renormalized) in F32, Q8_0 and a K-quant mix.
 */
import { oracleTests } from './helpers/oracle-cases.js';
import { QWEN3MOE } from './helpers/family-shapes.js';

// 32 experts (more than 16: llama.cpp's sort is then an introsort), 4 per token, 256 wide so the
// K-quant mix quantizes every expert.
oracleTests('qwen3moe', QWEN3MOE);

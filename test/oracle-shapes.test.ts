/**
 * The external oracle over shapes the per-family tests do not take: head sizes that are not a power
 * of two (48, 80, 96, 112), one KV head shared by three or six query heads, and prompts that cross
 * the attention's 256-row chunks and the 512-token prefill batches. Greedy tokens must equal
 * llama.cpp's (node-llama-cpp) on the same file, up to a near-tie of llama.cpp's own logits (see
 * test/llamacpp-oracle.test.ts).
 */
import { test } from 'node:test';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../src/gguf/ggml-types.js';
import { writeSyntheticModel, type SyntheticModelSpec } from '../src/model/synthetic.js';
import { llamaCppGreedy } from './helpers/llama-cpp.js';
import { assertSameGreedy, assertVaried, cairnGreedy, oraclePrompt, quantizeWithKernels } from './helpers/oracle-greedy.js';
import { scratchDir } from './helpers/paths.js';

const dir = scratchDir('oracle-shapes');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

interface ShapeCase {
  readonly name: string;
  readonly spec: SyntheticModelSpec;
  readonly kv: GgmlType.F16 | GgmlType.F32;
  readonly promptLength: number;
}

const base = { nLayer: 2, nVocab: 1000, ropeBase: 10000 } as const;
const CASES: readonly ShapeCase[] = [
  {
    name: 'llama, heads of 80 (8 query, 2 KV), Q4_0, a 257-token prompt',
    spec: { ...base, arch: 'llama', nEmbd: 640, nHead: 8, nKvHead: 2, nFf: 384, quant: GgmlType.Q4_0, seed: 24 },
    kv: GgmlType.F32,
    promptLength: 257,
  },
  {
    name: 'qwen2, heads of 96 (12 query, 3 KV), Q8_0, a 520-token prompt',
    spec: { ...base, arch: 'qwen2', nEmbd: 1152, nHead: 12, nKvHead: 3, nFf: 320, quant: GgmlType.Q8_0, seed: 4 },
    kv: GgmlType.F32,
    promptLength: 520,
  },
  {
    name: 'llama, heads of 112 (one KV head for six query heads), Q8_0, F16 cache, a 300-token prompt',
    spec: { ...base, arch: 'llama', nEmbd: 672, nHead: 6, nKvHead: 1, nFf: 288, quant: GgmlType.Q8_0, seed: 18 },
    kv: GgmlType.F16,
    promptLength: 300,
  },
  {
    name: 'qwen3, heads of 48 (4 query, 2 KV) beside an embedding of 512, Q4_K_M, F16 cache, a 700-token prompt',
    spec: { ...base, arch: 'qwen3', nEmbd: 512, nHead: 4, nKvHead: 2, headDim: 48, nFf: 512, quant: 'Q4_K_M', seed: 14 },
    kv: GgmlType.F16,
    promptLength: 700,
  },
  {
    name: 'llama, heads of 96 (18 query, 3 KV), F16 weights and cache, a 520-token prompt',
    spec: { ...base, arch: 'llama', nEmbd: 1728, nHead: 18, nKvHead: 3, nFf: 416, quant: GgmlType.F16, seed: 5 },
    kv: GgmlType.F16,
    promptLength: 520,
  },
];

for (const c of CASES) {
  test(`${c.name}: 16 greedy tokens equal llama.cpp's`, { timeout: 300_000 }, async () => {
    const path = join(dir, `${c.spec.arch}-${c.spec.seed}.gguf`);
    writeSyntheticModel(path, c.spec, quantizeWithKernels);
    const prompt = oraclePrompt(c.spec.nVocab, c.promptLength, c.spec.seed);
    const oracle = await llamaCppGreedy(path, prompt, 16, { kvType: c.kv === GgmlType.F16 ? 'F16' : 'F32' });
    assertVaried(oracle);
    assertSameGreedy(await cairnGreedy(path, prompt, 16, c.kv), oracle);
  });
}

/**
 * The external oracle: for random-weight models of each supported architecture and quantization,
 * written by cairn's own GGUF writer, greedy decoding must give exactly the tokens llama.cpp gives
 * (node-llama-cpp, pinned) on the same file.
 *
 * Both engines convert activations the same way for each weight type (Q8_0/Q8_1/Q8_K for quantized
 * weights, f16 for F16), and with an F32 KV cache their logits agree to ~1e-6 (measured against
 * llama.cpp's own logits). What remains is float rounding in ops whose summation order or exp
 * implementation differs (attention, norms): a 1e-7 difference in one activation can, rarely, move
 * its 8-bit quantization (or, with an F16 KV cache, an attention weight's f16 rounding) by one step,
 * which shifts later logits by up to ~0.15 in these small models. So the check is: the tokens are
 * identical, or identical up to a step where llama.cpp itself saw its token and ours within
 * NEAR_TIE (test/helpers/oracle-greedy.ts) of each other (a wrong kernel diverges at once, by logit
 * gaps of several units).
 */
import { test } from 'node:test';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../src/gguf/ggml-types.js';
import { writeSyntheticModel, type SyntheticModelSpec, type SyntheticQuant } from '../src/model/synthetic.js';
import { llamaCppGreedy } from './helpers/llama-cpp.js';
import { assertSameGreedy, assertVaried, cairnGreedy, oraclePrompt, quantizeWithKernels } from './helpers/oracle-greedy.js';
import { scratchDir } from './helpers/paths.js';

const dir = scratchDir('oracle');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const ARCHS: Record<string, Omit<SyntheticModelSpec, 'quant' | 'seed'>> = {
  // Llama with grouped-query attention (4 query heads per KV head) and Llama 3 rope frequency factors.
  llama: { arch: 'llama', nEmbd: 256, nLayer: 3, nHead: 8, nKvHead: 2, nFf: 512, nVocab: 1000, ropeBase: 500000, ropeFreqs: true },
  // Qwen2: QKV bias, neox rope, tied output head.
  qwen2: { arch: 'qwen2', nEmbd: 256, nLayer: 3, nHead: 4, nKvHead: 2, nFf: 512, nVocab: 1000, ropeBase: 1000000, tied: true },
  // Qwen3: per-head Q/K RMSNorm and a head size that is not nEmbd / nHead.
  qwen3: { arch: 'qwen3', nEmbd: 256, nLayer: 3, nHead: 4, nKvHead: 2, headDim: 128, nFf: 512, nVocab: 1000, ropeBase: 1000000 },
};
const QUANTS: [string, SyntheticQuant][] = [
  ['F32', GgmlType.F32],
  ['F16', GgmlType.F16],
  ['Q8_0', GgmlType.Q8_0],
  ['Q4_0', GgmlType.Q4_0],
  ['Q4_K_M', 'Q4_K_M'],
  ['Q5_K_M', 'Q5_K_M'],
];

function modelPath(archName: string, quantName: string, shape: Omit<SyntheticModelSpec, 'quant' | 'seed'>, quant: SyntheticQuant): string {
  const path = join(dir, `${archName}-${quantName}.gguf`);
  writeSyntheticModel(path, { ...shape, quant, seed: 7 }, quantizeWithKernels);
  return path;
}

for (const [archName, shape] of Object.entries(ARCHS)) {
  for (const [quantName, quant] of QUANTS) {
    test(`${archName} ${quantName}, F32 KV cache: 32 greedy tokens equal llama.cpp's`, { timeout: 300_000 }, async () => {
      const path = modelPath(archName, quantName, shape, quant);
      const prompt = oraclePrompt(shape.nVocab);
      const oracle = await llamaCppGreedy(path, prompt, 32, { kvType: 'F32' });
      assertVaried(oracle);
      assertSameGreedy(await cairnGreedy(path, prompt, 32, GgmlType.F32), oracle);
    });
  }

  test(`${archName} F16 weights, F16 KV cache (the defaults): greedy tokens equal llama.cpp's`, { timeout: 300_000 }, async () => {
    const path = modelPath(archName, 'F16', shape, GgmlType.F16);
    const prompt = oraclePrompt(shape.nVocab);
    assertSameGreedy(await cairnGreedy(path, prompt, 32, GgmlType.F16), await llamaCppGreedy(path, prompt, 32, { kvType: 'F16' }));
  });
}

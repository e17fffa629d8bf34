/**
 * The external oracle: for random-weight models of each supported architecture and quantization,
 * written by cairn's own GGUF writer, greedy decoding must give exactly the tokens llama.cpp gives
 * (node-llama-cpp, pinned) on the same file. Both quantize activations the same way (Q8_0/Q8_K for
 * quantized weights, f16 for F16 weights), so the check is exact equality, not a tolerance.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType, ggmlRowBytes } from '../src/gguf/ggml-types.js';
import { createKernels } from '../src/kernels/index.js';
import { writeSyntheticModel, type SyntheticModelSpec, type SyntheticQuant } from '../src/model/synthetic.js';
import { loadModel } from '../src/engine/load.js';
import { Prng } from '../src/util/prng.js';
import { llamaCppGreedy } from './helpers/llama-cpp.js';
import { scratchDir } from './helpers/paths.js';

const dir = scratchDir('oracle');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const kernels = createKernels();
const quantize = (type: GgmlType, src: Float32Array): Uint8Array => {
  const out = new Uint8Array(ggmlRowBytes(type, src.length));
  kernels.quantize(type, src, out, src.length);
  return out;
};

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
];

for (const [archName, shape] of Object.entries(ARCHS)) {
  for (const [quantName, quant] of QUANTS) {
    test(`${archName} ${quantName}: 32 greedy tokens equal llama.cpp's`, { timeout: 300_000 }, async () => {
      const path = join(dir, `${archName}-${quantName}.gguf`);
      writeSyntheticModel(path, { ...shape, quant, seed: 7 }, quantize);
      const rng = new Prng(99);
      const prompt = [1, ...Array.from({ length: 11 }, () => 259 + rng.int(shape.nVocab - 259))];
      const expected = await llamaCppGreedy(path, prompt, 32);
      const model = await loadModel(path, { ctx: 256, progress: false });
      try {
        let got: readonly number[] = [];
        for await (const ev of model.engine.generate({ prompt, maxTokens: 32, sampler: { temperature: 0 }, ignoreEos: true })) {
          if (ev.type === 'done') {
            if (ev.summary.error) throw ev.summary.error;
            got = ev.summary.tokens;
          }
        }
        assert.deepEqual(got, expected);
      } finally {
        model.close();
      }
    });
  }
}

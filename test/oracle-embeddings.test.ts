/**
 * Embeddings against llama.cpp (node-llama-cpp's embedding context) on the same random-weight
 * files and the same token ids: BERT and nomic-bert encoders in F32, F16 and Q8_0 with each
 * pooling, and a Llama-shaped decoder (no pooling key: the last token's final-norm state, as
 * node-llama-cpp reads it; with mean pooling written into the file; read in chunks smaller than
 * the input). Several inputs in one call give what each gives alone, and text goes through the
 * same WordPiece tokens as llama.cpp's.
 *
 * Tolerance: the two engines compute the same f32 graph (ggml's f16 GELU table included), so
 * normalized vectors differ only by summation order (and the SiLU's last bits): measured up to
 * 4e-5 per element, cosines within 2e-8 of 1. Cosine similarity must exceed 0.99999 and every
 * element agree within 1e-4. With Q8_0 weights the activations are rounded to 8 bits before each
 * product, so a last-bit difference can move one of them by a whole step: nomic-bert's SwiGLU
 * output (not on a table, unlike GELU) then differs by up to 2e-3 per element, cosines within
 * 4e-5 of 1; Q8_0 allows 0.9999 and 5e-3. A wrong norm, pooling, position or attention mask moves
 * cosines to 0.9 or below. Packed inputs against the same inputs alone: within 1e-5.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Llama } from 'node-llama-cpp';
import { GgmlType } from '../src/gguf/ggml-types.js';
import { gv } from '../src/gguf/values.js';
import { loadModel } from '../src/engine/load.js';
import { writeSyntheticModel, type SyntheticModelSpec } from '../src/model/synthetic.js';
import { quantizeWithKernels } from './helpers/oracle-greedy.js';
import { rewriteGguf } from './helpers/rewrite-gguf.js';
import { scratchDir } from './helpers/paths.js';

const dir = scratchDir('oracle-embeddings');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

let llamaPromise: Promise<Llama> | undefined;
async function llama(): Promise<Llama> {
  const { getLlama } = await import('node-llama-cpp');
  llamaPromise ??= getLlama({ gpu: false, build: 'never', logLevel: 'error' as never, progressLogs: false });
  return llamaPromise;
}

/** llama.cpp's pooled embedding of each input (token ids, or text it tokenizes itself), normalized here. */
async function oracle(path: string, inputs: readonly (readonly number[] | string)[]): Promise<Float32Array[]> {
  const l = await llama();
  const model = await l.loadModel({ modelPath: path, gpuLayers: 0, defaultContextFlashAttention: false });
  try {
    const ctx = await model.createEmbeddingContext({ contextSize: 256, threads: 2 });
    try {
      const out: Float32Array[] = [];
      for (const input of inputs) out.push(unit(Float32Array.from((await ctx.getEmbeddingFor(input as never)).vector)));
      return out;
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

function unit(v: Float32Array): Float32Array {
  const n = Math.sqrt(v.reduce((a, x) => a + x * x, 0));
  return v.map((x) => x / n);
}

/** How close two normalized vectors must be. */
interface Tolerance {
  readonly cosine: number;
  readonly element: number;
}
const TIGHT: Tolerance = { cosine: 0.99999, element: 1e-4 };
/*
 * F16 weights: both engines round activations to f16 and form exact products, but sum them in
 * their own order (on Xeons with AMX, cairn's sums come from the bf16 tiles, as close to the exact
 * sums as its f32 path or closer); through these encoders' layers an element of a unit vector then
 * moves by up to 1.1e-4 against llama.cpp's (the f32 path: up to 1.0e-4, measured).
 */
const F16: Tolerance = { cosine: 0.99999, element: 2e-4 };
const Q8_0: Tolerance = { cosine: 0.9999, element: 5e-3 };
const SAME: Tolerance = { cosine: 0.99999, element: 1e-5 };

function compare(mine: Float32Array, theirs: Float32Array, what: string, tol: Tolerance = TIGHT): void {
  assert.equal(mine.length, theirs.length, `${what}: length`);
  let dot = 0;
  let norm = 0;
  let diff = 0;
  for (let i = 0; i < mine.length; i++) {
    dot += mine[i] * theirs[i];
    norm += mine[i] * mine[i];
    diff = Math.max(diff, Math.abs(mine[i] - theirs[i]));
  }
  assert.ok(Math.abs(Math.sqrt(norm) - 1) < 1e-5, `${what}: cairn's vector is not unit length (${Math.sqrt(norm)})`);
  assert.ok(dot > tol.cosine, `${what}: cosine ${dot}`);
  assert.ok(diff < tol.element, `${what}: elements differ by up to ${diff}`);
}

const SHAPE = { nEmbd: 128, nLayer: 2, nHead: 4, nKvHead: 4, nFf: 256, nVocab: 600, ctx: 256 } as const;

/** Token ids of a BERT-style input: [CLS], `n` ordinary tokens, [SEP]. */
function bertIds(n: number, seed: number): number[] {
  return [101, ...Array.from({ length: n }, (_, i) => 104 + ((seed * 7919 + i * 104729) % 496)), 102];
}

type Pooling = NonNullable<SyntheticModelSpec['pooling']>;
const ENCODER_CASES: [string, GgmlType, Pooling][] = [
  ['bert', GgmlType.F32, 'mean'],
  ['bert', GgmlType.F16, 'cls'],
  ['bert', GgmlType.Q8_0, 'last'],
  ['nomic-bert', GgmlType.F32, 'mean'],
  ['nomic-bert', GgmlType.F16, 'mean'],
  ['nomic-bert', GgmlType.Q8_0, 'cls'],
];

for (const [arch, quant, pooling] of ENCODER_CASES) {
  test(`${arch} ${GgmlType[quant]} ${pooling} pooling: llama.cpp's embeddings of the same ids and text`, async () => {
    const path = join(dir, `${arch}-${GgmlType[quant]}-${pooling}.gguf`);
    writeSyntheticModel(path, { ...SHAPE, arch, quant, seed: 17, pooling }, quantizeWithKernels);
    const model = await loadModel(path, { progress: false });
    try {
      assert.equal(model.embedder.pooling, pooling);
      const inputs = [bertIds(5, 1), bertIds(40, 2), bertIds(1, 3), bertIds(120, 4)];
      const text = 'The quick brown fox, jumps over the lazy dog!';
      const textIds = model.tokenizer.encode(text);
      assert.equal(textIds[0], 101, 'starts with [CLS]');
      assert.equal(textIds.at(-1), 102, 'ends with [SEP]');
      const mine = await model.embedder.embed([...inputs, textIds]);
      const theirs = await oracle(path, [...inputs, text]);
      const tol = quant === GgmlType.Q8_0 ? Q8_0 : quant === GgmlType.F16 ? F16 : TIGHT;
      mine.forEach((v, i) => compare(v, theirs[i], `input ${i}`, tol));
      // Packed together or one by one: the same vectors.
      for (const [i, ids] of inputs.entries()) {
        const [alone] = await model.embedder.embed([ids]);
        compare(alone, mine[i], `input ${i} alone`, SAME);
      }
      // Unnormalized: llama.cpp's raw pooled vector, direction and length.
      const [raw] = await model.embedder.embed([inputs[1]], { normalize: false });
      assert.ok(Math.abs(Math.hypot(...raw) - 1) > 0.01, 'the raw vector is not unit length');
      compare(unit(raw), mine[1], 'raw, normalized here', SAME);
    } finally {
      model.close();
    }
  });
}

const LLAMA = { ...SHAPE, arch: 'llama', nKvHead: 2, quant: GgmlType.F32, seed: 23 } as const;

test('llama decoder: the last token\'s final-norm state without a pooling key, the mean with one; chunks smaller than the input', async () => {
  const path = join(dir, 'llama.gguf');
  writeSyntheticModel(path, LLAMA, quantizeWithKernels);
  const meanPath = join(dir, 'llama-mean.gguf');
  rewriteGguf(path, meanPath, { metadata: { 'llama.pooling_type': gv.u32(1) } });
  const inputs = [
    [1, 300, 301, 400, 500, 320, 330],
    [1, ...Array.from({ length: 60 }, (_, i) => 259 + ((i * 37) % 340))],
  ];
  for (const [file, pooling] of [
    [path, 'last'],
    [meanPath, 'mean'],
  ] as const) {
    const theirs = await oracle(file, inputs);
    for (const maxBatch of [512, 16]) {
      const model = await loadModel(file, { progress: false, kvType: GgmlType.F16, maxBatch });
      try {
        assert.equal(model.embedder.pooling, pooling);
        const mine = await model.embedder.embed(inputs);
        mine.forEach((v, i) => compare(v, theirs[i], `${pooling}, chunks of ${maxBatch}, input ${i}`));
      } finally {
        model.close();
      }
    }
  }
});

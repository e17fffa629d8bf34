/**
 * Comparing cairn's greedy decoding with llama.cpp's on the same file (the external oracle; see
 * test/llamacpp-oracle.test.ts for why a near-tie of llama.cpp's own logits may flip a token): a
 * quantizer for the synthetic writer, a prompt, cairn's greedy tokens, and the comparison.
 */
import assert from 'node:assert/strict';
import { GgmlType, ggmlRowBytes } from '../../src/gguf/ggml-types.js';
import { createKernels } from '../../src/kernels/index.js';
import { loadModel } from '../../src/engine/load.js';
import { Prng } from '../../src/util/prng.js';
import type { OracleStep } from './llama-cpp.js';

/** Largest llama.cpp logit gap at which a divergence counts as a rounding flip. */
export const NEAR_TIE = 0.25;

const kernels = createKernels();

/** The native kernels' quantizer, for writeSyntheticModel. */
export function quantizeWithKernels(type: GgmlType, src: Float32Array): Uint8Array {
  const out = new Uint8Array(ggmlRowBytes(type, src.length));
  kernels.quantize(type, src, out, src.length);
  return out;
}

/** BOS and `length` random ordinary tokens (ids from 259: past the control and byte tokens). */
export function oraclePrompt(nVocab: number, length = 11, seed = 99): number[] {
  const rng = new Prng(seed);
  return [1, ...Array.from({ length }, () => 259 + rng.int(nVocab - 259))];
}

/** cairn's greedy continuation of `prompt` on a model file, its layers on the CPU or the GPU. */
export async function cairnGreedy(
  path: string,
  prompt: readonly number[],
  steps: number,
  kvType: GgmlType.F16 | GgmlType.F32 | GgmlType.Q8_0,
  compute: 'cpu' | 'gpu' = 'cpu',
): Promise<readonly number[]> {
  const model = await loadModel(path, { ctx: Math.max(256, prompt.length + steps + 8), kvType, progress: false, compute });
  try {
    for await (const ev of model.engine.generate({ prompt, maxTokens: steps, sampler: { temperature: 0 }, ignoreEos: true })) {
      if (ev.type === 'done') {
        if (ev.summary.error) throw ev.summary.error;
        return ev.summary.tokens;
      }
    }
    throw new Error('no summary');
  } finally {
    model.close();
  }
}

/** Asserts cairn's tokens equal llama.cpp's, or diverge only at a near-tie of llama.cpp's own. */
export function assertSameGreedy(ours: readonly number[], oracle: readonly OracleStep[]): void {
  assert.equal(ours.length, oracle.length, 'both generated the same number of tokens');
  for (let i = 0; i < oracle.length; i++) {
    if (ours[i] === oracle[i].token) continue;
    const p = oracle[i].probabilities;
    const gap = Math.log(p.get(oracle[i].token) ?? 0) - Math.log(p.get(ours[i]) ?? 0);
    assert.ok(
      gap < NEAR_TIE,
      `step ${i}: cairn chose ${ours[i]}, llama.cpp ${oracle[i].token}, which llama.cpp preferred by ${gap} (tokens so far agreed)`,
    );
    return;
  }
}

/** Asserts llama.cpp's continuation is varied enough to tell models apart. */
export function assertVaried(oracle: readonly OracleStep[], distinct = 4): void {
  assert.ok(new Set(oracle.map((s) => s.token)).size >= distinct, 'the model is too repetitive for a meaningful comparison');
}

/**
 * cairn's next-token log-probabilities along llama.cpp's own continuation (teacher-forced): the
 * prompt as one batch, then each oracle token as a decode step, as llama.cpp ran them.
 */
export async function cairnLogProbsAlong(
  path: string,
  prompt: readonly number[],
  oracle: readonly OracleStep[],
  kvType: GgmlType.F16 | GgmlType.F32,
): Promise<Float64Array[]> {
  const model = await loadModel(path, { ctx: 256, kvType, progress: false });
  try {
    assert.equal(model.shards.length, 1);
    const shard = model.shards[0];
    const out: Float64Array[] = [];
    let logits = shard.forward({
      nTokens: prompt.length,
      tokens: Int32Array.from(prompt),
      spans: [{ slot: 0, pos0: 0, start: 0, n: prompt.length }],
    });
    for (let i = 0; i < oracle.length; i++) {
      out.push(logSoftmax(logits));
      if (i + 1 < oracle.length) {
        const pos0 = prompt.length + i;
        logits = shard.forward({ nTokens: 1, tokens: Int32Array.of(oracle[i].token), spans: [{ slot: 0, pos0, start: 0, n: 1 }] });
      }
    }
    return out;
  } finally {
    model.close();
  }
}

/** Log-probabilities of a row of logits. */
export function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(logits, (v) => v - lse);
}

/**
 * The largest difference between llama.cpp's log-probabilities and ours over the tokens llama.cpp
 * gives at least `minP`, over every step.
 */
export function maxLogProbGap(ours: readonly Float64Array[], oracle: readonly OracleStep[], minP = 1e-4): number {
  let worst = 0;
  oracle.forEach((step, i) => {
    for (const [token, p] of step.probabilities) {
      if (p >= minP) worst = Math.max(worst, Math.abs(Math.log(p) - ours[i][token]));
    }
  });
  return worst;
}

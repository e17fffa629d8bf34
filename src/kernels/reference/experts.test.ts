import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GgmlType } from '../../gguf/ggml-types.js';
import { isCairnError } from '../../util/errors.js';
import { ReferenceKernels } from '../reference.js';
import { refMatmul, refQuantize } from './quant/index.js';

const ref = new ReferenceKernels();

function floats(n: number, seed: number): Float32Array {
  let s = seed;
  return new Float32Array(n).map(() => ((s = (s * 48271) % 2147483647) / 2147483647) * 4 - 2);
}

test('an expert product is the dense product of the chosen expert, pair by pair', () => {
  const [nExperts, nUsed, rows, cols, nTokens] = [4, 2, 5, 64, 3];
  const w = new Uint8Array(nExperts * rows * 2 * 34);
  refQuantize(GgmlType.Q8_0, floats(nExperts * rows * cols, 1), w, nExperts * rows * cols);
  const ids = Int32Array.from([3, 0, 1, 1, 0, 2]);
  const bias = floats(nExperts * rows, 2);
  for (const input of ['token', 'slot'] as const) {
    const nRows = input === 'token' ? nTokens : nTokens * nUsed;
    const x = floats(nRows * cols, 3);
    const batch = ref.createExpertBatch(GgmlType.Q8_0, nExperts, nUsed, cols, 4);
    ref.prepareExperts(batch, GgmlType.Q8_0, x, nTokens, ids, input);
    const y = new Float32Array(nTokens * nUsed * rows);
    const yb = new Float32Array(y.length);
    ref.expertMatmul(batch, w, GgmlType.Q8_0, rows, y);
    ref.expertMatmul(batch, w, GgmlType.Q8_0, rows, yb, bias);
    const dense = new Float32Array(rows);
    for (let p = 0; p < ids.length; p++) {
      const row = input === 'token' ? Math.floor(p / nUsed) : p;
      const e = ids[p];
      refMatmul(w.subarray(e * rows * 68), GgmlType.Q8_0, rows, cols, x.subarray(row * cols), 1, dense);
      assert.deepEqual(y.subarray(p * rows, (p + 1) * rows), dense, `${input} pair ${p}`);
      for (let r = 0; r < rows; r++) assert.equal(yb[p * rows + r], Math.fround(dense[r] + bias[e * rows + r]));
    }
  }
});

test('moeCombine rounds each weighted output, then adds them in slot order', () => {
  // 1 + 2^-24 + 2^-24 in f32: slot order gives 1 (each small term is lost alone).
  const y = Float32Array.from([1, 2 ** -24, 2 ** -24]);
  const out = new Float32Array(1);
  ref.moeCombine(y, Float32Array.from([1, 1, 1]), 1, 3, 1, out);
  assert.equal(out[0], 1);
  ref.moeCombine(Float32Array.from([2 ** -24, 2 ** -24, 1]), Float32Array.from([1, 1, 1]), 1, 3, 1, out);
  assert.equal(out[0], 1 + 2 ** -23);
  // Slot s of token t is row t * nUsed + s of y.
  const two = new Float32Array(2);
  ref.moeCombine(Float32Array.from([1, 2, 3, 4]), Float32Array.from([0.5, 0.25]), 1, 2, 2, two);
  assert.deepEqual([...two], [0.5 * 1 + 0.25 * 3, 0.5 * 2 + 0.25 * 4]);
});

test('the reference checks expert arguments like the native kernels', () => {
  const bad = (fn: () => void, pattern: RegExp): void => {
    assert.throws(fn, (e: unknown) => isCairnError(e, 'BAD_ARGUMENT') && pattern.test((e as Error).message), pattern.source);
  };
  bad(() => ref.createExpertBatch(GgmlType.Q8_K, 4, 2, 256, 4), /do not support weights of type Q8_K/);
  bad(() => ref.createExpertBatch(GgmlType.Q8_0, 4, 2, 48, 4), /multiple of 32 columns/);
  const batch = ref.createExpertBatch(GgmlType.Q8_0, 4, 2, 64, 2);
  const x = floats(128, 1);
  bad(
    () => ref.prepareExperts(batch, GgmlType.Q8_0, x, 2, Int32Array.from([0, 1, 4, 0]), 'token'),
    /expert id 4 at index 2 is outside the 4 experts/,
  );
  bad(() => ref.prepareExperts(batch, GgmlType.Q8_0, x, 3, new Int32Array(6), 'token'), /nTokens 3 is more than the batch's maxTokens 2/);
  bad(() => ref.prepareExperts(batch, GgmlType.F32, x, 2, new Int32Array(4), 'token'), /made for quantized weights/);
  bad(() => ref.expertMatmul(batch, new Uint8Array(0), GgmlType.Q8_0, 1, new Float32Array(4)), /has not been prepared/);
  ref.prepareExperts(batch, GgmlType.Q8_0, x, 2, new Int32Array(4), 'token');
  bad(() => ref.expertMatmul(batch, new Uint8Array(4 * 68), GgmlType.Q4_K, 1, new Float32Array(4)), /prepared for Q8_0 activations/);
  bad(() => ref.expertMatmul(batch, new Uint8Array(4 * 68 - 1), GgmlType.Q8_0, 1, new Float32Array(4)), /w is too short/);
  bad(() => ref.moeCombine(new Float32Array(3), new Float32Array(2), 1, 2, 2, new Float32Array(2)), /y is too short/);
});

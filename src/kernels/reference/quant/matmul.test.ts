import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GgmlType } from '../../../gguf/ggml-types.js';
import { convertActivationRow, vecDotType } from './activations.js';
import { fp16ToF32 } from './half.js';
import { refDequantize, refGetRows, refMatmul, refQuantize } from './index.js';

const WEIGHT_TYPES: Array<[GgmlType, number, number]> = [
  // type, block size, block bytes
  [GgmlType.F32, 1, 4],
  [GgmlType.F16, 1, 2],
  [GgmlType.BF16, 1, 2],
  [GgmlType.Q4_0, 32, 18],
  [GgmlType.Q4_1, 32, 20],
  [GgmlType.Q5_0, 32, 22],
  [GgmlType.Q5_1, 32, 24],
  [GgmlType.Q8_0, 32, 34],
  [GgmlType.Q4_K, 256, 144],
  [GgmlType.Q5_K, 256, 176],
  [GgmlType.Q6_K, 256, 210],
  [GgmlType.MXFP4, 32, 17],
];

function randomFloats(n: number, seed: number): Float32Array {
  let s = seed;
  return new Float32Array(n).map(() => ((s = (s * 48271) % 2147483647) / 2147483647) * 4 - 2);
}

test('refMatmul equals the product of the dequantized weights and dequantized activations', () => {
  const rows = 3;
  const n = 2;
  for (const [type, blockSize, blockBytes] of WEIGHT_TYPES) {
    const cols = blockSize === 256 ? 512 : 64;
    const w = new Uint8Array(rows * (cols / blockSize) * blockBytes);
    refQuantize(type, randomFloats(rows * cols, 3 + type), w, rows * cols);
    const wf = new Float32Array(rows * cols);
    refDequantize(type, w, wf, rows * cols);
    const x = randomFloats(n * cols, 99);
    const y = new Float32Array(n * rows);
    refMatmul(w, type, rows, cols, x, n, y);
    for (let t = 0; t < n; t++) {
      // The activation row as the dot product sees it, decoded independently of the dot code.
      const act = convertActivationRow(type, x, t * cols, cols);
      const af = new Float32Array(cols);
      if (act.kind === 'float') af.set(act.values);
      else refDequantize(vecDotType(type), act.bytes, af, cols);
      for (let r = 0; r < rows; r++) {
        let expected = 0;
        let magnitude = 0;
        for (let i = 0; i < cols; i++) {
          expected += wf[r * cols + i] * af[i];
          magnitude += Math.abs(wf[r * cols + i] * af[i]);
        }
        // Formats with a min use the activation block's stored s = d * Σq, rounded to f16.
        let minSlack = 0;
        if (act.kind === 'blocks' && (type === GgmlType.Q4_1 || type === GgmlType.Q5_1)) {
          for (let b = 0; b < cols / 32; b++) {
            const wb = (r * cols) / 32 + b;
            const m = fp16ToF32(w[wb * blockBytes + 2] | (w[wb * blockBytes + 3] << 8));
            const s = fp16ToF32(act.bytes[b * 36 + 2] | (act.bytes[b * 36 + 3] << 8));
            minSlack += Math.abs(m * s) * 2 ** -11;
          }
        }
        const got = y[t * rows + r];
        assert.ok(Math.abs(got - expected) <= magnitude * 2e-6 + minSlack, `${GgmlType[type]} t=${t} r=${r}: ${got} vs ${expected}`);
      }
    }
  }
});

test('refGetRows returns the dequantized rows in the order asked', () => {
  const cols = 64;
  const w = new Uint8Array(4 * 2 * 18);
  refQuantize(GgmlType.Q4_0, randomFloats(4 * cols, 5), w, 4 * cols);
  const all = new Float32Array(4 * cols);
  refDequantize(GgmlType.Q4_0, w, all, 4 * cols);
  const out = new Float32Array(3 * cols);
  refGetRows(w, GgmlType.Q4_0, cols, Int32Array.from([3, 0, 3]), out);
  assert.deepEqual(out.subarray(0, cols), all.subarray(3 * cols, 4 * cols));
  assert.deepEqual(out.subarray(cols, 2 * cols), all.subarray(0, cols));
  assert.deepEqual(out.subarray(2 * cols), all.subarray(3 * cols, 4 * cols));
  assert.throws(() => refGetRows(w, GgmlType.Q4_0, cols, Int32Array.from([4]), out), /row id 4/);
  assert.throws(() => refGetRows(w, GgmlType.Q4_0, cols, Int32Array.from([-1]), out), /row id -1/);
  assert.throws(() => refGetRows(w, GgmlType.Q4_0, cols, Int32Array.from([0, 1, 2, 3]), out), /out holds/);
});

test('refMatmul rejects inconsistent sizes with clear errors', () => {
  const w = new Uint8Array(2 * 34);
  const x = new Float32Array(64);
  const y = new Float32Array(4);
  assert.throws(() => refMatmul(w, GgmlType.Q8_0, 2, 48, x, 1, y), /multiple of 32/);
  assert.throws(() => refMatmul(w, GgmlType.Q8_0, 3, 32, x, 1, y), /weights hold 68 bytes/);
  assert.throws(() => refMatmul(w, GgmlType.Q8_0, 2, 32, x, 3, y), /x holds 64 floats/);
  assert.throws(() => refMatmul(w, GgmlType.Q8_0, 2, 32, x, 2, new Float32Array(3)), /y holds 3 floats/);
  assert.throws(() => refMatmul(w, GgmlType.Q8_K, 1, 256, x, 1, y), /unsupported weight type Q8_K/);
  assert.throws(() => refMatmul(w, GgmlType.Q8_0, 2.5, 32, x, 1, y), /rows must be/);
});

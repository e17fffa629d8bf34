import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GgmlType } from '../../../gguf/ggml-types.js';
import { refDequantize, refMatmul, refQuantize } from './index.js';
import { e8m0Half } from './mxfp4.js';

function encode(values: Record<number, number>): Uint8Array {
  const x = new Float32Array(32);
  for (const [i, v] of Object.entries(values)) x[Number(i)] = v;
  const out = new Uint8Array(17);
  refQuantize(GgmlType.MXFP4, x, out, 32);
  return out;
}

test('MXFP4 block: E8M0 scale byte, then E2M1 codes with x[j] in the low nibble and x[j+16] in the high one', () => {
  // e = 127: the doubled codes times 2^-1, i.e. the E2M1 values themselves.
  const bytes = new Uint8Array(17);
  bytes[0] = 127;
  for (let j = 0; j < 8; j++) bytes[1 + j] = j | ((j + 8) << 4);
  const x = new Float32Array(32);
  refDequantize(GgmlType.MXFP4, bytes, x, 32);
  assert.deepEqual([...x.subarray(0, 8)], [0, 0.5, 1, 1.5, 2, 3, 4, 6]);
  assert.deepEqual([...x.subarray(16, 24)], [0, -0.5, -1, -1.5, -2, -3, -4, -6]);
  assert.ok(Object.is(x[16], 0), 'code 8 (E2M1 -0) decodes to +0, as ggml stores it as the integer 0');
});

test('E8M0 halves cover the whole byte range, subnormal at the bottom', () => {
  assert.equal(e8m0Half(0), 2 ** -128);
  assert.equal(e8m0Half(1), 2 ** -127);
  assert.equal(e8m0Half(2), 2 ** -126);
  assert.equal(e8m0Half(128), 1);
  assert.equal(e8m0Half(254), 2 ** 126);
  assert.equal(e8m0Half(255), 2 ** 127);
});

test('MXFP4 quantizer: ggml exponent rule, nearest code, ties to the first code', () => {
  // amax 6 -> exponent floor(log2 6) - 2 + 127 = 127, codes step 0.5 .. 6.
  const b = encode({ 0: 6, 1: 5, 2: -5, 3: 2.5, 4: 0.25, 5: 0.75, 16: -0.25 });
  assert.equal(Buffer.from(b).toString('hex'), '7f07060e04000100000000000000000000'); // as llama.cpp writes it
  // The largest float below 8: log2f rounds up to exactly 3 in f32, so the exponent is 128, not 127,
  // and the value lands on code 6 (8 * 1) instead of being clipped to 6 * 1/2 * 2.
  const near8 = encode({ 0: Math.fround(8 - 2 ** -21) });
  assert.equal(near8[0], 128);
  assert.equal(near8[1] & 0xf, 6);
  const all0 = encode({});
  assert.deepEqual([...all0], new Array(17).fill(0));
});

test("MXFP4 rows quantize within ggml's error bound and multiply like their dequantized values", () => {
  const cols = 96;
  const rows = 3;
  let s = 7;
  const rnd = (): number => ((s = (s * 48271) % 2147483647) / 2147483647) * 4 - 2;
  const wf = new Float32Array(rows * cols).map(rnd);
  const w = new Uint8Array((rows * cols * 17) / 32);
  refQuantize(GgmlType.MXFP4, wf, w, rows * cols);
  const back = new Float32Array(rows * cols);
  refDequantize(GgmlType.MXFP4, w, back, rows * cols);
  for (let b = 0; b < (rows * cols) / 32; b++) {
    // ggml's exponent maps 2^floor(log2 amax) to the doubled code 8, so the top code 12 is
    // 1.5 * 2^floor(log2 amax): magnitudes above it are clipped, by at most 4 code units.
    const bound = e8m0Half(w[b * 17]) * 4;
    for (let j = 0; j < 32; j++) {
      const i = b * 32 + j;
      assert.ok(Math.abs(back[i] - wf[i]) <= bound, `element ${i}: ${wf[i]} -> ${back[i]}`);
    }
  }
  const x = new Float32Array(cols).map(rnd);
  const y = new Float32Array(rows);
  refMatmul(w, GgmlType.MXFP4, rows, cols, x, 1, y);
  for (let r = 0; r < rows; r++) {
    let want = 0;
    let mag = 0;
    for (let i = 0; i < cols; i++) {
      want += back[r * cols + i] * x[i];
      mag += Math.abs(back[r * cols + i] * x[i]);
    }
    // The activations are Q8_0-quantized (relative error up to 1/254 of each block's max).
    assert.ok(Math.abs(y[r] - want) <= mag * 0.01, `row ${r}: ${y[r]} vs ${want}`);
  }
});

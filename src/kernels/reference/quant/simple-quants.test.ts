import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GgmlType } from '../../../gguf/ggml-types.js';
import { quantizeActivationQ8_0, quantizeActivationQ8_1 } from './activation-quants.js';
import { refDequantize, refQuantize } from './codecs.js';

/** Decodes `bytes` (one block of `type`) to `count` floats. */
function decode(type: GgmlType, bytes: number[], count: number): Float32Array {
  const out = new Float32Array(count);
  refDequantize(type, Uint8Array.from(bytes), out, count);
  return out;
}

/** A block of `size` bytes, filled with `fill`, with `set` entries written at their offsets. */
function block(size: number, fill: number, set: Record<number, number>): number[] {
  const b = new Array<number>(size).fill(fill);
  for (const [k, v] of Object.entries(set)) b[Number(k)] = v;
  return b;
}

test('Q4_0 block decodes as (nibble - 8) * d, low nibbles first', () => {
  // d = 0.5 (0x3800); qs[0] = 0x9f -> x[0] = (15 - 8) / 2, x[16] = (9 - 8) / 2; 0x88 bytes decode to 0.
  const x = decode(GgmlType.Q4_0, block(18, 0x88, { 0: 0x00, 1: 0x38, 2: 0x9f, 17: 0x1f }), 32);
  assert.equal(x[0], 3.5);
  assert.equal(x[16], 0.5);
  assert.equal(x[15], 3.5); // qs[15] = 0x1f: low nibble 15 -> x[15]
  assert.equal(x[31], -3.5); // high nibble 1 -> x[31]
  assert.equal(x[1], 0);
});

test('Q4_1 block decodes as nibble * d + m', () => {
  // d = 2 (0x4000), m = -1 (0xbc00); qs[1] = 0x3a -> x[1] = 10*2 - 1, x[17] = 3*2 - 1.
  const x = decode(GgmlType.Q4_1, block(20, 0, { 0: 0x00, 1: 0x40, 2: 0x00, 3: 0xbc, 5: 0x3a }), 32);
  assert.equal(x[1], 19);
  assert.equal(x[17], 5);
  assert.equal(x[0], -1);
});

test('Q5_0 block takes the fifth bit of quant j from bit j of qh', () => {
  // d = 1; qh has bits 0 and 20 set; qs[0] = 0x21, qs[4] = 0x30.
  const qh = (1 << 0) | (1 << 20);
  const x = decode(
    GgmlType.Q5_0,
    block(22, 0, { 0: 0x00, 1: 0x3c, 2: qh & 0xff, 3: (qh >> 8) & 0xff, 4: (qh >> 16) & 0xff, 5: qh >>> 24, 6: 0x21, 10: 0x30 }),
    32,
  );
  assert.equal(x[0], 1 + 16 - 16); // nibble 1, fifth bit set
  assert.equal(x[16], 2 - 16); // nibble 2, no fifth bit
  assert.equal(x[20], 3 + 16 - 16);
  assert.equal(x[4], -16);
});

test('Q5_1 block decodes as q * d + m with the fifth bit', () => {
  // d = 0.25 (0x3400), m = 10 (0x4900); qh bit 31 set; qs[15] = 0xf0 -> x[31] = (15 + 16) * 0.25 + 10.
  const x = decode(GgmlType.Q5_1, block(24, 0, { 1: 0x34, 3: 0x49, 7: 0x80, 23: 0xf0 }), 32);
  assert.equal(x[31], 31 * 0.25 + 10);
  assert.equal(x[15], 10);
});

test('Q8_0 and Q8_1 blocks decode as q * d', () => {
  const q8 = decode(GgmlType.Q8_0, block(34, 0, { 1: 0x40, 2: 0x81, 33: 0x7f }), 32); // d = 2
  assert.equal(q8[0], -127 * 2);
  assert.equal(q8[31], 127 * 2);
  const q81 = decode(GgmlType.Q8_1, block(36, 0, { 1: 0x3c, 2: 0x12, 3: 0x34, 4: 0xfe }), 32); // d = 1, s ignored
  assert.equal(q81[0], -2);
});

test('Q4_0 quantizer: d = signed max / -8, quants truncate x/d + 8.5 and clamp at 15', () => {
  const x = new Float32Array(32);
  for (let j = 0; j < 16; j++) x[j] = j - 8; // -8 is the largest magnitude: d = 1
  x[16] = 7.4;
  x[17] = -7.6;
  const out = new Uint8Array(18);
  refQuantize(GgmlType.Q4_0, x, out, 32);
  assert.deepEqual([out[0], out[1]], [0x00, 0x3c]);
  for (let j = 0; j < 16; j++) assert.equal(out[2 + j] & 0xf, j);
  assert.equal(out[2] >> 4, 15); // 7.4 + 8.5 = 15.9 -> 15
  assert.equal(out[3] >> 4, 0); // -7.6 + 8.5 = 0.9 -> 0
  assert.equal(out[4] >> 4, 8); // 0 -> 8
});

test('Q8_0: reference quantizer rounds ties away from zero, the activation quantizer to even', () => {
  const x = new Float32Array(32);
  x.set([127, 0.5, 1.5, -2.5, 2.5, -0.5]); // amax 127: d = 1, quants = x exactly on ties
  const ref = new Uint8Array(34);
  refQuantize(GgmlType.Q8_0, x, ref, 32);
  assert.deepEqual([...ref.subarray(0, 8)], [0x00, 0x3c, 127, 1, 2, 0xfd, 3, 0xff]);
  const act = new Uint8Array(34);
  quantizeActivationQ8_0(x, 0, act, 0);
  assert.deepEqual([...act.subarray(0, 8)], [0x00, 0x3c, 127, 0, 2, 0xfe, 2, 0]);
});

test('Q8_1 stores s = d * sum of quants', () => {
  const x = new Float32Array(32).fill(1);
  x[0] = 127;
  x[1] = -63.5; // activation rule: tie to even -> -64
  const act = new Uint8Array(36);
  quantizeActivationQ8_1(x, 0, act, 0);
  const sum = 127 - 64 + 30;
  assert.deepEqual([act[0], act[1]], [0x00, 0x3c]); // d = 1
  const s = act[2] | (act[3] << 8);
  assert.equal(s, 0x55d0); // 93 in half precision
  assert.equal(sum, 93);
  const ref = new Uint8Array(36);
  refQuantize(GgmlType.Q8_1, x, ref, 32);
  assert.equal((ref[5] << 24) >> 24, -64); // reference rule: away from zero
  assert.equal(ref[2] | (ref[3] << 8), 0x55d0);
});

test('round trips of the 32-element formats stay within their quantization step', () => {
  let seed = 7;
  const rnd = (): number => ((seed = (seed * 48271) % 2147483647) / 2147483647) * 2 - 1;
  const n = 32 * 64;
  const x = new Float32Array(n).map(() => rnd() * 3);
  const steps: Array<[GgmlType, number, (amax: number, range: number) => number]> = [
    // Q4_0/Q5_0 clamp the end opposite the signed max at one full step; the rest err by half a step.
    [GgmlType.Q4_0, 18, (amax) => amax / 8],
    [GgmlType.Q4_1, 20, (_a, range) => range / 15 / 2],
    [GgmlType.Q5_0, 22, (amax) => amax / 16],
    [GgmlType.Q5_1, 24, (_a, range) => range / 31 / 2],
    [GgmlType.Q8_0, 34, (amax) => amax / 127 / 2],
    [GgmlType.Q8_1, 36, (amax) => amax / 127 / 2],
  ];
  for (const [type, bytes, step] of steps) {
    const q = new Uint8Array((n / 32) * bytes);
    refQuantize(type, x, q, n);
    const y = new Float32Array(n);
    refDequantize(type, q, y, n);
    for (let b = 0; b < n / 32; b++) {
      const blockX = x.subarray(32 * b, 32 * b + 32);
      const amax = Math.max(...blockX.map(Math.abs));
      const range = Math.max(...blockX) - Math.min(...blockX);
      // plus the f16 rounding of the scale (and of the min) across the whole range
      const tol = step(amax, range) + (amax + range) * 2 ** -10;
      for (let j = 0; j < 32; j++) {
        const err = Math.abs(y[32 * b + j] - blockX[j]);
        assert.ok(err <= tol, `${GgmlType[type]} block ${b} elem ${j}: error ${err} > ${tol}`);
      }
    }
  }
});

test('quantize and dequantize reject bad sizes and unsupported types', () => {
  assert.throws(() => refQuantize(GgmlType.Q8_0, new Float32Array(31), new Uint8Array(34), 31), /multiple of 32/);
  assert.throws(() => refQuantize(GgmlType.Q8_0, new Float32Array(32), new Uint8Array(33), 32), /need 34/);
  assert.throws(() => refDequantize(GgmlType.Q4_0, new Uint8Array(18), new Float32Array(31), 32), /need 32/);
  assert.throws(() => refDequantize(GgmlType.TQ1_0, new Uint8Array(54), new Float32Array(256), 256), /unsupported tensor type TQ1_0/);
  assert.throws(() => refDequantize(GgmlType.F32, new Uint8Array(4), new Float32Array(1), -1), /non-negative/);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GgmlType } from '../../../gguf/ggml-types.js';
import { refDequantize, refQuantize } from './codecs.js';

function decode(type: GgmlType, bytes: Uint8Array): Float32Array {
  const out = new Float32Array(256);
  refDequantize(type, bytes, out, 256);
  return out;
}

test('Q4_K block: six-bit scales and mins, sub-blocks 4-7 split across bytes', () => {
  const b = new Uint8Array(144);
  b.set([0x00, 0x3c], 0); // d = 1
  b.set([0x00, 0x38], 2); // dmin = 0.5
  const scales = 4;
  b[scales + 0] = 2; // sub-block 0 scale 2
  b[scales + 4] = 3; // sub-block 0 min 3
  // sub-block 5: scale 33 = 0b10_0001, min 17 = 0b01_0001: low nibbles in byte 9, top bits in bytes 1 and 5
  b[scales + 9] = 0x11;
  b[scales + 1] |= 0b10 << 6;
  b[scales + 5] |= 0b01 << 6;
  const qs = 16;
  b[qs + 0] = 0x07; // element 0 (sub-block 0, low nibble) = 7
  b[qs + 64 + 3] = 0xa0; // element 160 + 3 (sub-block 5 = high nibbles of bytes 64..95) = 10
  const x = decode(GgmlType.Q4_K, b);
  assert.equal(x[0], 1 * 2 * 7 - 0.5 * 3);
  assert.equal(x[1], -1.5);
  assert.equal(x[163], 33 * 10 - 0.5 * 17);
  assert.equal(x[160], -8.5);
  assert.equal(x[32], 0); // sub-block 1: scale and min 0 despite the top bits stored in its bytes
});

test('Q5_K block: the fifth bit of sub-block j sits in bit j of qh', () => {
  const b = new Uint8Array(176);
  b.set([0x00, 0x3c, 0x00, 0x00], 0); // d = 1, dmin = 0
  const scales = 4;
  b[scales + 3] = 1; // sub-block 3 scale 1
  b[scales + 11] = 0x02; // sub-block 7 scale: low nibble 2
  const qh = 16;
  const qs = 48;
  b[qh + 4] = 1 << 3; // element 96 + 4 (sub-block 3) gets +16
  b[qs + 32 + 4] = 0x05 << 4; // sub-block 3 = high nibbles of bytes 32..63
  b[qh + 31] = 1 << 7; // element 224 + 31 (sub-block 7) gets +16
  const x = decode(GgmlType.Q5_K, b);
  assert.equal(x[100], 21);
  assert.equal(x[255], 2 * 16);
  assert.equal(x[99], 0);
});

test('Q6_K block: 4 low bits in ql, 2 high bits in qh, signed 16-element scales, offset 32', () => {
  const b = new Uint8Array(210);
  const ql = 0;
  const qh = 128;
  const sc = 192;
  b.set([0x00, 0x34], 208); // d = 0.25 (stored last)
  b[sc + 0] = 0xfd; // group 0: -3
  b[sc + 9] = 5; // group 9 (elements 144..159)
  b[ql + 0] = 0x05; // element 0 low bits
  b[qh + 0] = 0b10; // element 0 high bits -> 37
  b[ql + 64 + 22] = 0x0f; // element 150 = half 1, first quarter, l = 22
  b[qh + 32 + 22] = 0b11; // -> 63
  b[ql + 32 + 1] = 0x90; // element 97 = half 0, fourth quarter (high nibble of ql[32 + l]), l = 1
  b[sc + 6] = 1;
  const x = decode(GgmlType.Q6_K, b);
  assert.equal(x[0], 0.25 * -3 * (37 - 32));
  assert.equal(x[150], 0.25 * 5 * (63 - 32));
  assert.equal(x[97], 0.25 * 1 * (9 - 32));
  assert.equal(x[1], 0.25 * -3 * -32);
});

test('Q8_K quantizer: scale from the signed max, ties to even, 16-element sums', () => {
  const x = new Float32Array(256);
  x[0] = -4; // max |x|: iscale = -127 / -4 = 31.75
  x[1] = 2; // 63.5 -> 64 (tie to even)
  x[2] = 1; // 31.75 -> 32
  x[17] = -1; // group 1
  const q = new Uint8Array(292);
  refQuantize(GgmlType.Q8_K, x, q, 256);
  const view = new DataView(q.buffer);
  assert.equal(view.getFloat32(0, true), Math.fround(1 / Math.fround(31.75)));
  assert.deepEqual([view.getInt8(4), view.getInt8(5), view.getInt8(6)], [-127, 64, 32]);
  assert.equal(view.getInt16(260, true), -127 + 64 + 32);
  assert.equal(view.getInt16(262, true), -32);
  const y = new Float32Array(256);
  refDequantize(GgmlType.Q8_K, q, y, 256);
  assert.ok(Math.abs(y[0] + 4) < 1e-6);
});

function gaussian(n: number, seed: number): Float32Array {
  let s = seed;
  const u = (): number => (s = (s * 48271) % 2147483647) / 2147483647;
  return new Float32Array(n).map(() => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));
}

test('K quantizers reach the error of their bit width and handle flat and zero blocks', () => {
  const cases: Array<[GgmlType, number, number]> = [
    [GgmlType.Q4_K, 144, 0.1], // relative RMS error bounds (llama-quantize gets ~0.085, 0.051, 0.031)
    [GgmlType.Q5_K, 176, 0.055],
    [GgmlType.Q6_K, 210, 0.034],
  ];
  const n = 256 * 32;
  const x = gaussian(n, 11);
  for (let i = 0; i < 256; i++) x[i] = 0; // an all-zero block
  for (let i = 256; i < 512; i++) x[i] = 0.75; // a flat block
  for (const [type, bytes, bound] of cases) {
    const q = new Uint8Array((n / 256) * bytes);
    refQuantize(type, x, q, n);
    const y = new Float32Array(n);
    refDequantize(type, q, y, n);
    for (let i = 0; i < 256; i++) assert.equal(y[i], 0, `${GgmlType[type]} zero block`);
    for (let i = 256; i < 512; i++) assert.ok(Math.abs(y[i] - 0.75) < 0.01, `${GgmlType[type]} flat block ${y[i]}`);
    let err = 0;
    let ref = 0;
    for (let i = 512; i < n; i++) {
      err += (y[i] - x[i]) ** 2;
      ref += x[i] ** 2;
    }
    const rel = Math.sqrt(err / ref);
    assert.ok(rel < bound, `${GgmlType[type]} relative RMS error ${rel} >= ${bound}`);
  }
});

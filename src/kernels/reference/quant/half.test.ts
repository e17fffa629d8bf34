import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bf16ToF32, f32ToBf16, f32ToFp16, fp16ToF32 } from './half.js';

test('f32 -> f16 rounds to nearest even at the edges of the format', () => {
  assert.equal(f32ToFp16(1), 0x3c00);
  assert.equal(f32ToFp16(-2), 0xc000);
  assert.equal(f32ToFp16(-0), 0x8000);
  assert.equal(f32ToFp16(65504), 0x7bff); // largest half
  assert.equal(f32ToFp16(65519), 0x7bff); // below the midpoint to infinity
  assert.equal(f32ToFp16(65520), 0x7c00); // midpoint rounds to even = infinity
  assert.equal(f32ToFp16(1 + 2 ** -11), 0x3c00); // tie, even mantissa kept
  assert.equal(f32ToFp16(1 + 3 * 2 ** -11), 0x3c02); // tie, rounds up to even
  assert.equal(f32ToFp16(2 ** -24), 0x0001); // smallest subnormal
  assert.equal(f32ToFp16(2 ** -25), 0x0000); // tie between 0 and the smallest subnormal
  assert.equal(f32ToFp16(3 * 2 ** -26), 0x0001);
  assert.equal(f32ToFp16(2 ** -14), 0x0400); // smallest normal
  assert.equal(f32ToFp16(2 ** -14 - 2 ** -25), 0x0400); // subnormal tie that carries into the exponent
  assert.equal(f32ToFp16(Infinity), 0x7c00);
  assert.equal(f32ToFp16(NaN) & 0x7e00, 0x7e00);
});

test('every finite half survives f16 -> f32 -> f16', () => {
  for (let h = 0; h < 65536; h++) {
    if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue; // NaN payloads
    assert.equal(f32ToFp16(fp16ToF32(h)), h, `half 0x${h.toString(16)}`);
  }
  assert.equal(fp16ToF32(0x3555), 0.333251953125);
  assert.equal(fp16ToF32(0x0001), 2 ** -24);
});

test('f32 -> bf16 rounds to nearest even and keeps NaN quiet', () => {
  assert.equal(f32ToBf16(1), 0x3f80);
  assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80); // tie, even kept
  assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82); // tie, rounds up to even
  assert.equal(f32ToBf16(1 + 2 ** -8 + 2 ** -20), 0x3f81);
  assert.equal(f32ToBf16(-3.5), 0xc060);
  assert.equal(f32ToBf16(NaN) & 0x7fc0, 0x7fc0);
  assert.equal(bf16ToF32(0x3f81), 1 + 2 ** -7);
  for (let h = 0; h < 65536; h += 7) {
    if ((h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0) continue;
    assert.equal(f32ToBf16(bf16ToF32(h)), h);
  }
});

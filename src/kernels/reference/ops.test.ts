/**
 * The reference float kernels against independent statements of what they compute: textbook
 * formulas in f64, invariants (softmax sums to 1, rotations keep lengths), and exact cases.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertClose, randomF32, seededRandom } from '../../../test/helpers/kernel-inputs.js';
import type { AttentionParams, KvType, RopeParams } from '../api.js';
import { geluF16Table, refAdd, refAttention, refGeglu, refRmsNorm, refRope, refSoftmax, refStoreKv, refSwiglu, roundToF16 } from './ops.js';

describe('reference float kernels', () => {
  it('roundToF16 rounds to the nearest half, ties to even', () => {
    assert.equal(roundToF16(1), 1);
    assert.equal(roundToF16(1 + 2 ** -11), 1, 'tie goes to the even mantissa');
    assert.equal(roundToF16(1 + 3 * 2 ** -11), 1 + 2 ** -9, 'tie goes up to the even mantissa');
    assert.equal(roundToF16(65504), 65504);
    assert.equal(roundToF16(65519), 65504);
    assert.equal(roundToF16(65520), Infinity);
    assert.equal(roundToF16(2 ** -24), 2 ** -24, 'smallest subnormal');
    assert.equal(roundToF16(2 ** -25), 0, 'half the smallest subnormal ties to zero');
    assert.equal(roundToF16(-0.1), -0.0999755859375);
  });

  it('rmsNorm scales rows to unit root mean square, then by the weight', () => {
    const rand = seededRandom(1);
    const rows = 3;
    const dim = 33;
    const x = randomF32(rows * dim, rand, 5);
    const w = randomF32(dim, rand);
    const out = new Float32Array(rows * dim);
    refRmsNorm(x, w, rows, dim, 1e-6, out);
    const want = new Float64Array(rows * dim);
    for (let r = 0; r < rows; r++) {
      let ss = 0;
      for (let i = 0; i < dim; i++) ss += x[r * dim + i] ** 2;
      const s = 1 / Math.sqrt(ss / dim + 1e-6);
      for (let i = 0; i < dim; i++) want[r * dim + i] = x[r * dim + i] * s * w[i];
    }
    assertClose(out, want, { rtol: 1e-6, atol: 1e-7 }, 'rmsNorm');
  });

  it('rope: identity at position 0; each pair turned by pos * freqScale * base^(-2i/nRot) / factor', () => {
    const headDim = 10;
    const nRot = 8;
    const factors = new Float32Array([1, 2, 4, 8]);
    for (const mode of ['normal', 'neox'] as const) {
      const p: RopeParams = { nRot, freqBase: 100, freqScale: 0.5, mode, freqFactors: factors };
      const x = randomF32(2 * headDim, seededRandom(2));
      const zero = x.slice();
      refRope(zero, 2, 1, headDim, new Int32Array([0, 0]), p);
      assert.deepEqual(zero, x, `${mode}: position 0 leaves x unchanged`);

      const pos = 7;
      const y = x.slice(0, headDim);
      refRope(y, 1, 1, headDim, new Int32Array([pos]), p);
      for (let i = 0; i < nRot / 2; i++) {
        const [a, b] = mode === 'neox' ? [i, i + nRot / 2] : [2 * i, 2 * i + 1];
        const angle = (pos * 0.5 * 100 ** ((-2 * i) / nRot)) / factors[i];
        const c = Math.cos(angle);
        const s = Math.sin(angle);
        assert.ok(Math.abs(y[a] - (x[a] * c - x[b] * s)) < 1e-6, `${mode} pair ${i} first`);
        assert.ok(Math.abs(y[b] - (x[a] * s + x[b] * c)) < 1e-6, `${mode} pair ${i} second`);
      }
      assert.deepEqual(y.subarray(nRot), x.subarray(nRot, headDim), `${mode}: dims past nRot pass through`);
    }
  });

  it('softmax rows are positive, sum to 1 and follow exp', () => {
    const cols = 31;
    const x = randomF32(2 * cols, seededRandom(3), 20);
    x[5] = -Infinity;
    const y = x.slice();
    refSoftmax(y, 2, cols);
    for (let r = 0; r < 2; r++) {
      const row = Array.from(x.subarray(r * cols, (r + 1) * cols));
      const max = Math.max(...row);
      const total = row.reduce((a, v) => a + Math.exp(v - max), 0);
      const want = row.map((v) => Math.exp(v - max) / total);
      // ggml rounds x - max to f32 before exp: up to 2^-19 absolute for |x - max| < 64, so about
      // 2e-6 relative in the result.
      assertClose(y.subarray(r * cols, (r + 1) * cols), want, { rtol: 4e-6, atol: 1e-30 }, `row ${r}`);
    }
    assert.equal(y[5], 0, 'a -Infinity score gets no weight');
  });

  it('swiglu is g * sigmoid(g) * u; geglu is the tanh gelu through f16, with its cut-offs', () => {
    const g = new Float32Array([-30, -10, -9.99, -1.5, 0, 0.25, 3, 9.99, 10, 25]);
    const u = new Float32Array([2, 2, 2, -1, 5, 4, 0.5, 1, 3, -2]);
    const n = g.length;
    const sw = new Float32Array(n);
    refSwiglu(g, u, n, sw);
    assertClose(
      sw,
      Array.from(g, (v, i) => (v / (1 + Math.exp(-v))) * u[i]),
      { rtol: 1e-6, atol: 1e-30 },
      'swiglu',
    );
    const ge = new Float32Array(n);
    refGeglu(g, u, n, ge);
    const gelu = (v: number): number => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
    // Inside (-10, 10) the input and the gelu value are each rounded to f16: about 2^-10 relative.
    assertClose(
      ge,
      Array.from(g, (v, i) => gelu(v) * u[i]),
      { rtol: 2e-3, atol: 1e-6 },
      'geglu',
    );
    assert.equal(ge[1], 0, 'gelu(-10) is exactly 0');
    assert.equal(ge[8], 30, 'gelu(10) is exactly 10');
    assert.equal(geluF16Table()[0x3c00], roundToF16(gelu(1)), 'table entry of 1.0');
    const sum = new Float32Array(n);
    refAdd(g, u, n, sum);
    assert.deepEqual(
      sum,
      Float32Array.from(g, (v, i) => v + u[i]),
    );
  });

  it('storeKv writes little-endian f32 or f16 rows at pos0', () => {
    const k = new Float32Array([1, -2, 0.1]);
    const v = new Float32Array([65504, 1e5, 2 ** -24]);
    const kc = new Uint8Array(4 * 3 * 2);
    const vc = new Uint8Array(4 * 3 * 2);
    refStoreKv(k, v, kc, vc, 1, 3, 2, 1, 1);
    assert.deepEqual(Array.from(kc.subarray(12, 18)), [0x00, 0x3c, 0x00, 0xc0, 0x66, 0x2e]);
    assert.deepEqual(Array.from(vc.subarray(12, 18)), [0xff, 0x7b, 0x00, 0x7c, 0x01, 0x00]);
    assert.ok(kc.subarray(0, 12).every((b) => b === 0) && kc.subarray(18).every((b) => b === 0), 'other rows untouched');
    const kf = new Uint8Array(4 * 3 * 4);
    refStoreKv(k, v, kf, new Uint8Array(4 * 3 * 4), 0, 3, 1, 1, 1);
    assert.deepEqual(new Float32Array(kf.buffer, 12, 3), k);
  });

  it('storeKv keeps each head of a row in its own stretch of the cache, the capacity apart', () => {
    // Rows of 3 heads of 2 into caches of 5 positions: head h of position i at (h * 5 + i) * 2.
    const k = Float32Array.from({ length: 2 * 6 }, (_, i) => i + 1);
    const v = Float32Array.from(k, (x) => -x);
    const kc = new Uint8Array(5 * 6 * 4);
    const vc = new Uint8Array(5 * 6 * 4);
    refStoreKv(k, v, kc, vc, 0, 6, 3, 2, 3);
    const kf = new Float32Array(kc.buffer);
    const vf = new Float32Array(vc.buffer);
    for (let t = 0; t < 2; t++) {
      for (let h = 0; h < 3; h++) {
        for (let i = 0; i < 2; i++) {
          assert.equal(kf[(h * 5 + 3 + t) * 2 + i], k[t * 6 + h * 2 + i], `k of token ${t}, head ${h}`);
          assert.equal(vf[(h * 5 + 3 + t) * 2 + i], v[t * 6 + h * 2 + i], `v of token ${t}, head ${h}`);
        }
      }
    }
    assert.equal(kf.filter((x) => x !== 0).length, 12, 'nothing else written');
  });

  it('attention: causal, grouped, and the weighted mean of V', () => {
    const headDim = 4;
    const nKvHead = 2;
    const nHead = 4;
    const ctx = 3;
    const row = nKvHead * headDim;
    for (const kvType of [0, 1] as KvType[]) {
      const size = kvType === 1 ? 2 : 4;
      const kc = new Uint8Array(ctx * row * size);
      const vc = new Uint8Array(ctx * row * size);
      // Keys all equal, so every visible position gets the same weight.
      const k = new Float32Array(ctx * row).fill(0.5);
      const v = Float32Array.from({ length: ctx * row }, (_, i) => (i % 7) - 3);
      refStoreKv(k, v, kc, vc, kvType, row, 0, ctx, nKvHead);
      const q = randomF32(ctx * nHead * headDim, seededRandom(4));
      const p: AttentionParams = { nTokens: ctx, nHead, nKvHead, headDim, pos0: 0, scale: 0.5, kvType };
      const out = new Float32Array(q.length);
      refAttention(q, kc, vc, p, out);
      for (let t = 0; t < ctx; t++) {
        for (let h = 0; h < nHead; h++) {
          const kvh = Math.floor(h / (nHead / nKvHead));
          for (let d = 0; d < headDim; d++) {
            let mean = 0;
            for (let j = 0; j <= t; j++) mean += v[j * row + kvh * headDim + d] / (t + 1);
            // With an F16 cache the weight 1/(t+1) is itself rounded to f16 (1/3 -> 0.33325...).
            const tol = kvType === 1 ? 3 * 2 ** -11 * 3 : 1e-6;
            assert.ok(Math.abs(out[(t * nHead + h) * headDim + d] - mean) <= tol, `kv${kvType} t${t} h${h} d${d}`);
          }
        }
      }
    }
  });
});

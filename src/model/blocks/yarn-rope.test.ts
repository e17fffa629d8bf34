/**
 * YaRN rope against a plain float64 reference written from the YaRN paper's formulation (as
 * Hugging Face's `_compute_yarn_parameters` computes it: interpolated and extrapolated inverse
 * frequencies mixed by a linear ramp over the correction range, cos/sin scaled by the attention
 * factor), against the plain rope kernel where the ramp is off, and the constants llama.cpp derives
 * for real models.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReferenceKernels } from '../../kernels/index.js';
import type { RopeMode } from '../../kernels/api.js';
import type { RopeConfig } from '../config.js';
import { Prng } from '../../util/prng.js';
import { Rope } from './rope.js';
import { YARN_BETA_FAST, YARN_BETA_SLOW, YarnRope, yarnAttnFactor, yarnCorrDims } from './yarn-rope.js';

/** YaRN in float64, from the formulas (not ggml's code): returns rotated copies of each head. */
function plainYarn(x: Float64Array, heads: number, headDim: number, pos: number, cfg: RopeConfig, magnitude: number): Float64Array {
  const y = cfg.yarn!;
  const dim = cfg.nRot;
  const factor = 1 / cfg.freqScale;
  const corr = (beta: number) => (dim * Math.log(y.origCtx / (beta * 2 * Math.PI))) / (2 * Math.log(cfg.freqBase));
  const low = Math.max(0, Math.floor(corr(y.betaFast)));
  const high = Math.min(dim - 1, Math.ceil(corr(y.betaSlow)));
  const out = Float64Array.from(x);
  for (let i = 0; i < dim / 2; i++) {
    const invExtra = 1 / Math.pow(cfg.freqBase, (2 * i) / dim);
    const invInter = invExtra / factor;
    const ramp = Math.min(1, Math.max(0, (i - low) / Math.max(0.001, high - low)));
    const extraWeight = (1 - ramp) * y.extFactor;
    const angle = pos * (invInter * (1 - extraWeight) + invExtra * extraWeight);
    const c = Math.cos(angle) * magnitude;
    const s = Math.sin(angle) * magnitude;
    for (let h = 0; h < heads; h++) {
      const a = h * headDim + (cfg.mode === 'neox' ? i : 2 * i);
      const b = a + (cfg.mode === 'neox' ? dim / 2 : 1);
      out[a] = x[a] * c - x[b] * s;
      out[b] = x[a] * s + x[b] * c;
    }
  }
  return out;
}

function yarnConfig(mode: RopeMode, nRot: number, freqBase: number, factor: number, origCtx: number, attnFactor: number): RopeConfig {
  return {
    mode,
    nRot,
    freqBase,
    freqScale: Math.fround(1 / factor),
    yarn: { extFactor: 1, attnFactor, betaFast: YARN_BETA_FAST, betaSlow: YARN_BETA_SLOW, origCtx },
  };
}

test('YaRN rotations equal the plain float64 formulation in both layouts, with partial rotation', () => {
  const rng = new Prng(3);
  const cases: [RopeMode, number, number, number, number, number][] = [
    // mode, headDim, nRot, base, factor, original context
    ['normal', 64, 64, 10000, 40, 4096], // DeepSeek V2/V3's rope part
    ['neox', 64, 64, 150000, 32, 4096], // gpt-oss
    ['neox', 48, 32, 1e6, 4, 256], // partial rotation, a short original context
    ['normal', 16, 16, 50000, 32, 64],
  ];
  for (const [mode, headDim, nRot, base, factor, origCtx] of cases) {
    const freqScale = Math.fround(1 / factor);
    const attnFactor = yarnAttnFactor({ freqScale, extFactor: 1 });
    const cfg = yarnConfig(mode, nRot, base, factor, origCtx, attnFactor);
    const rope = new YarnRope(cfg);
    // ggml's magnitude is YaRN's attention factor, 0.1 ln(factor) + 1, once the context's cancellation is undone.
    assert.ok(Math.abs(rope.magnitude - (0.1 * Math.log(factor) + 1)) < 1e-6, `magnitude ${rope.magnitude}`);
    const heads = 3;
    for (const pos of [0, 1, 7, 100, 1000]) {
      const x = Float32Array.from({ length: heads * headDim }, () => rng.next() * 2 - 1);
      const want = plainYarn(Float64Array.from(x), heads, headDim, pos, cfg, rope.magnitude);
      rope.apply(x, 1, heads, headDim, Int32Array.of(pos));
      // f32 angles drift by ~pos x 1e-7 rad from the float64 ones.
      const tol = 2e-6 + pos * 2e-7;
      for (let i = 0; i < x.length; i++) {
        assert.ok(Math.abs(x[i] - want[i]) <= tol, `${mode} d${headDim} r${nRot} pos ${pos} [${i}]: ${x[i]} vs ${want[i]}`);
      }
      for (let h = 0; h < heads; h++) {
        for (let i = nRot; i < headDim; i++)
          assert.equal(x[h * headDim + i], Math.fround(want[h * headDim + i]), 'unrotated dims pass through');
      }
    }
  }
});

test('without the ramp and with attention factor 1, the YaRN block is the rope kernel, bit for bit', () => {
  const kernels = new ReferenceKernels();
  const rng = new Prng(4);
  for (const mode of ['normal', 'neox'] as const) {
    const cfg: RopeConfig = {
      mode,
      nRot: 32,
      freqBase: 10000,
      freqScale: 0.25,
      yarn: { extFactor: 0, attnFactor: 1, betaFast: 32, betaSlow: 1, origCtx: 128 },
    };
    const n = 5;
    const x = Float32Array.from({ length: n * 2 * 40 }, () => rng.next() * 2 - 1);
    const positions = Int32Array.from([3, 4, 5, 90, 91]);
    const a = Float32Array.from(x);
    new YarnRope(cfg).apply(a, n, 2, 40, positions);
    const b = Float32Array.from(x);
    kernels.rope(b, n, 2, 40, positions, { mode, nRot: 32, freqBase: 10000, freqScale: 0.25 });
    assert.deepEqual(a, b);
  }
});

test('a strided layout rotates the same values as the contiguous one (the tail of MLA heads)', () => {
  const rng = new Prng(5);
  const cfg = yarnConfig('normal', 8, 10000, 40, 64, yarnAttnFactor({ freqScale: Math.fround(1 / 40), extFactor: 1 }));
  const n = 3;
  const heads = 2;
  const offset = 12;
  const headStride = 20;
  const tokenStride = heads * headStride + 4;
  const wide = Float32Array.from({ length: n * tokenStride }, () => rng.next());
  const packed = new Float32Array(n * heads * 8);
  for (let t = 0; t < n; t++)
    for (let h = 0; h < heads; h++)
      packed.set(
        wide.subarray(t * tokenStride + h * headStride + offset, t * tokenStride + h * headStride + offset + 8),
        (t * heads + h) * 8,
      );
  const before = Float32Array.from(wide);
  const positions = Int32Array.of(10, 11, 500);
  new YarnRope(cfg).applyAt(wide, n, heads, positions, { tokenStride, headStride, offset });
  new YarnRope(cfg).apply(packed, n, heads, 8, positions);
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < tokenStride; i++) {
      const h = Math.floor(i / headStride);
      const j = i - h * headStride - offset;
      const v = wide[t * tokenStride + i];
      if (h < heads && j >= 0 && j < 8) assert.equal(v, packed[(t * heads + h) * 8 + j]);
      else assert.equal(v, before[t * tokenStride + i], 'elements outside the rotated dims are untouched');
    }
  }
  assert.throws(
    () => new YarnRope(cfg).applyAt(wide, n + 1, heads, Int32Array.of(1, 2, 3, 4), { tokenStride, headStride, offset }),
    /too short/,
  );
});

test('the Rope block rotates through YaRN when the config has it, and through the kernel otherwise', () => {
  const kernels = new ReferenceKernels();
  const cfg = yarnConfig('neox', 16, 10000, 8, 32, 1);
  const x = Float32Array.from({ length: 16 }, (_, i) => i / 16);
  const viaRope = Float32Array.from(x);
  new Rope(cfg).apply(kernels, viaRope, 1, 1, 16, Int32Array.of(40));
  const direct = Float32Array.from(x);
  new YarnRope(cfg).apply(direct, 1, 1, 16, Int32Array.of(40));
  assert.deepEqual(viaRope, direct);
  const plain = Float32Array.from(x);
  new Rope({ ...cfg, yarn: undefined }).apply(kernels, plain, 1, 1, 16, Int32Array.of(40));
  assert.notDeepEqual(plain, direct, 'YaRN changes the rotation');
});

test("llama.cpp's constants for real models: correction dims, attention factor, rotation magnitude", () => {
  // DeepSeek V2/V3 (64 rope dims, base 10000, original 4096), Kimi K2 (base 50000), gpt-oss (base 150000).
  assert.deepEqual(yarnCorrDims(64, 4096, 10000, 32, 1), [10, 23]);
  assert.deepEqual(yarnCorrDims(64, 4096, 50000, 32, 1), [8, 20]);
  assert.deepEqual(yarnCorrDims(64, 4096, 150000, 32, 1), [8, 18]);
  const f = Math.fround;
  const ds = (factor: number, logMul: number) => yarnAttnFactor({ freqScale: f(1 / factor), extFactor: 1, logMul, deepseek2: true });
  // DeepSeek V3 (mscale_all_dim 1) and V2 (0.707, which llama.cpp takes as mscale too): the ratio is 1.
  assert.equal(ds(40, 1), f(1 / f(1 + f(f(0.1) * f(Math.log(40))))));
  assert.ok(Math.abs(ds(40, 1) - 0.73052001) < 1e-7);
  assert.equal(ds(40, f(f(0.0707) / f(0.1))), ds(40, 1));
  assert.ok(Math.abs(ds(32, 1) - 0.74262559) < 1e-7, 'Kimi K2');
  // A deepseek2 rope's cos/sin have magnitude 1: the attention factor undoes ggml's correction.
  const v3 = new YarnRope(yarnConfig('normal', 64, 10000, 40, 4096, ds(40, 1)));
  assert.ok(Math.abs(v3.magnitude - 1) < 1e-6);
  // Outside deepseek2 the log multiplier's mscale stays 1: 0.707 gives get_mscale(1)/get_mscale(0.707).
  const other = yarnAttnFactor({ freqScale: f(1 / 40), extFactor: 1, logMul: 0.707 });
  assert.ok(Math.abs(other * (1 + 0.1 * Math.log(40)) - (1 + 0.1 * Math.log(40)) / (1 + 0.0707 * Math.log(40))) < 1e-6);
  // gpt-oss: no multiplier, so the rope's magnitude is 1 + 0.1 ln 32.
  const oss = new YarnRope(yarnConfig('neox', 64, 150000, 32, 4096, yarnAttnFactor({ freqScale: f(1 / 32), extFactor: 1 })));
  assert.ok(Math.abs(oss.magnitude - 1.34657359) < 1e-6);
  // Without YaRN only rope.scaling.attn_factor remains.
  assert.equal(yarnAttnFactor({ freqScale: 0.25, extFactor: 0, ropeAttnFactor: 2 }), 2);
  assert.equal(yarnAttnFactor({ freqScale: 0.25, extFactor: 0 }), 1);
});

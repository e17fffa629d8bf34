/**
 * Attention with sinks and sliding windows against the attention kernel's reference twin: without
 * either it computes exactly what the kernel computes; a window is exactly the kernel run over the
 * window's rows; sinks match the softmax-with-an-extra-entry formula; the models' path through
 * matrix products (native and reference) agrees with it; and the layer pattern is llama.cpp's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GgmlType } from '../../gguf/ggml-types.js';
import type { AttentionParams, KvType } from '../../kernels/api.js';
import { ReferenceKernels } from '../../kernels/reference.js';
import { createKernels } from '../../kernels/index.js';
import { Prng } from '../../util/prng.js';
import { SinkAttention } from './attention-sinks.js';
import { firstVisible, isSlidingLayer } from './sliding-window.js';

const ref = new ReferenceKernels();
const NH = 4;
const NKV = 2;
const D = 8;
const ROW = NKV * D;

function random(n: number, seed: number, scale = 1): Float32Array {
  const rng = new Prng(seed);
  return Float32Array.from({ length: n }, () => scale * (2 * rng.next() - 1));
}

/** A cache of `n` positions of random keys and values, and `t` queries at its last positions. */
function setup(type: KvType, n: number, t: number) {
  const bytes = type === GgmlType.F16 ? 2 : 4;
  const kc = new Uint8Array(n * ROW * bytes);
  const vc = new Uint8Array(n * ROW * bytes);
  const keys = random(n * ROW, 1, 2);
  const values = random(n * ROW, 2);
  ref.storeKv(keys, values, kc, vc, type, ROW, 0, n, NKV);
  const q = random(t * NH * D, 3, 2);
  const p: AttentionParams = { nTokens: t, nHead: NH, nKvHead: NKV, headDim: D, pos0: n - t, scale: 1 / Math.sqrt(D), kvType: type };
  return { kc, vc, q, p, bytes, keys, values };
}

for (const type of [GgmlType.F32, GgmlType.F16] as const) {
  const name = type === GgmlType.F16 ? 'F16' : 'F32';

  test(`${name} cache: without sinks or window, exactly the attention kernel's result`, () => {
    const { kc, vc, q, p } = setup(type, 20, 6);
    const want = new Float32Array(q.length);
    ref.attention(q, kc, vc, p, want);
    const got = new Float32Array(q.length);
    new SinkAttention().attend(q, kc, vc, p, undefined, 0, got);
    assert.deepEqual(got, want);
  });

  test(`${name} cache: a window of w positions is the kernel over the last w rows (the query included)`, () => {
    const n = 20;
    const { kc, vc, q, p, bytes, keys, values } = setup(type, n, 6);
    const sa = new SinkAttention();
    for (const w of [1, 3, 7, 30]) {
      const got = new Float32Array(q.length);
      sa.attend(q, kc, vc, p, undefined, w, got);
      for (let t = 0; t < p.nTokens; t++) {
        const pos = p.pos0 + t;
        const first = firstVisible(pos, w);
        assert.equal(first, Math.max(0, pos - w + 1));
        const want = new Float32Array(NH * D);
        const one: AttentionParams = { ...p, nTokens: 1, pos0: pos - first };
        // A cache of only the positions the window shows.
        const seen = pos - first + 1;
        const wk = new Uint8Array(seen * ROW * bytes);
        const wv = new Uint8Array(seen * ROW * bytes);
        ref.storeKv(keys.subarray(first * ROW, (pos + 1) * ROW), values.subarray(first * ROW, (pos + 1) * ROW), wk, wv, type, ROW, 0, seen, NKV);
        ref.attention(q.subarray(t * NH * D, (t + 1) * NH * D), wk, wv, one, want);
        assert.deepEqual(got.subarray(t * NH * D, (t + 1) * NH * D), want, `window ${w}, token ${t}`);
      }
    }
  });
}

test('sinks: each head gives exp(sink) of the softmax mass to no value', () => {
  const { kc, vc, q, p, keys: k, values: v } = setup(GgmlType.F32, 12, 3);
  const sinks = Float32Array.from([-1, 0.5, 2, 6]);
  const got = new Float32Array(q.length);
  new SinkAttention().attend(q, kc, vc, p, sinks, 5, got);
  for (let t = 0; t < p.nTokens; t++) {
    const pos = p.pos0 + t;
    for (let h = 0; h < NH; h++) {
      const kv = Math.floor(h / (NH / NKV)) * D;
      const s: number[] = [];
      for (let j = pos - 4; j <= pos; j++) {
        let dot = 0;
        for (let i = 0; i < D; i++) dot += q[(t * NH + h) * D + i] * k[j * ROW + kv + i];
        s.push(dot * p.scale);
      }
      const z = s.reduce((a, x) => a + Math.exp(x), Math.exp(sinks[h]));
      for (let i = 0; i < D; i++) {
        let want = 0;
        s.forEach((x, jj) => (want += (Math.exp(x) / z) * v[(pos - 4 + jj) * ROW + kv + i]));
        const o = got[(t * NH + h) * D + i];
        assert.ok(Math.abs(o - want) < 1e-5, `token ${t} head ${h} dim ${i}: ${o} vs ${want}`);
      }
    }
  }
  // A sink far above every score takes (almost) all the weight.
  const big = new Float32Array(q.length);
  new SinkAttention().attend(q, kc, vc, p, new Float32Array(NH).fill(60), 0, big);
  assert.ok(big.every((x) => Math.abs(x) < 1e-20));
});

for (const [kname, kernels] of [
  ['native', createKernels()],
  ['reference', ref],
] as const) {
  test(`${kname} attention kernel: the same attention as the TypeScript twin, for every window, with and without sinks, one token or many`, () => {
    for (const type of [GgmlType.F32, GgmlType.F16] as const) {
      // 23 positions: not a multiple of any block of the kernel; 150 tokens after 10: windows that
      // start anywhere in the kernel's row blocks.
      for (const [n, t] of [
        [23, 1],
        [23, 5],
        [160, 150],
      ]) {
        const { kc, vc, q, p } = setup(type, n, t);
        for (const sinks of [undefined, Float32Array.from([-1, 0.5, 2, 6])]) {
          for (const w of [0, 1, 4, 30, 70]) {
            const want = new Float32Array(q.length);
            new SinkAttention().attend(q, kc, vc, p, sinks, w, want);
            const got = new Float32Array(q.length).fill(NaN);
            kernels.attention(q, kc, vc, { ...p, sinks, window: w }, got);
            // Only the summation order differs (and, rarely, an f16 rounding of a weight it moves).
            const tol = type === GgmlType.F16 ? 2e-3 : 1e-5;
            for (let i = 0; i < q.length; i++) {
              assert.ok(
                Math.abs(got[i] - want[i]) <= tol,
                `${name(type)} tokens ${t} window ${w} sinks ${!!sinks} [${i}]: ${got[i]} vs ${want[i]}`,
              );
            }
          }
        }
      }
    }
  });
}

function name(type: KvType): string {
  return type === GgmlType.F16 ? 'F16' : 'F32';
}

test('sliding layers follow llama.cpp pattern: all but the last of every period', () => {
  const layers = (period: number) => Array.from({ length: 6 }, (_, l) => isSlidingLayer({ size: 8, period }, l));
  assert.deepEqual(layers(2), [true, false, true, false, true, false]);
  assert.deepEqual(layers(3), [true, true, false, true, true, false]);
  assert.deepEqual(layers(1), [false, false, false, false, false, false]);
  assert.deepEqual(layers(0), [true, true, true, true, true, true]);
});

/**
 * The encoder's parts against plain TypeScript references written from the formulas (f64, one
 * loop per definition): LayerNorm, whole-sequence attention (bidirectional and causal, grouped
 * heads, more queries than one score chunk), pooling and normalization, and the whole BERT and
 * nomic-bert forward passes over random-weight files, on the native kernels and their TypeScript
 * twins. Packing sequences into one call gives what each gives alone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../../gguf/ggml-types.js';
import { Metadata } from '../../gguf/metadata.js';
import { readGguf } from '../../gguf/reader.js';
import type { Kernels } from '../../kernels/api.js';
import { createKernels } from '../../kernels/index.js';
import { ReferenceKernels } from '../../kernels/reference.js';
import { Prng } from '../../util/prng.js';
import { FullAttention } from '../blocks/full-attention.js';
import { layerNorm } from '../blocks/layer-norm.js';
import { l2Normalize, poolRows } from '../pooling.js';
import type { Matrix } from '../tensor-source.js';
import { writeSyntheticModel } from '../synthetic.js';
import { loadEncoder } from './build.js';
import type { EncoderConfig } from './config.js';
import { readEncoderFileConfig } from './registry.js';
import { declareEncoder, type EncoderWeights } from './weights.js';
import { GgufTensorSource } from '../gguf-tensor-source.js';
import { scratchDir } from '../../../test/helpers/paths.js';

const dir = scratchDir('encoders');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const KERNELS: [string, Kernels][] = [
  ['native', createKernels({ threads: 2 })],
  ['reference', new ReferenceKernels()],
];

function random(n: number, seed: number, scale = 1): Float32Array {
  const rng = new Prng(seed);
  return Float32Array.from({ length: n }, () => scale * (2 * rng.next() - 1));
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('layerNorm: (x - mean) / sqrt(var + eps) * w + b per row, in place too', () => {
  const rows = 5;
  const dim = 37;
  const x = random(rows * dim, 1, 3);
  for (let i = 0; i < dim; i++) x[i] += 10; // a row far from zero mean
  const w = { weight: random(dim, 2), bias: random(dim, 3) };
  const want = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    const row = Array.from(x.subarray(r * dim, (r + 1) * dim));
    const mean = row.reduce((a, b) => a + b, 0) / dim;
    const v = row.reduce((a, b) => a + (b - mean) ** 2, 0) / dim;
    for (let i = 0; i < dim; i++) want[r * dim + i] = ((row[i] - mean) / Math.sqrt(v + 1e-5)) * w.weight[i] + w.bias[i];
  }
  const out = new Float32Array(rows * dim);
  layerNorm(x, w, rows, dim, 1e-5, out);
  assert.ok(maxDiff(out, want) < 1e-5, `off by ${maxDiff(out, want)}`);
  layerNorm(x, w, rows, dim, 1e-5, x);
  assert.deepEqual(x, out);
});

/** Attention from its definition: each query's softmax over the (visible) keys of its KV head, times the values. */
function naiveAttention(q: Float32Array, k: Float32Array, v: Float32Array, n: number, nHead: number, nKv: number, hd: number, causal: boolean): Float64Array {
  const out = new Float64Array(n * nHead * hd);
  for (let h = 0; h < nHead; h++) {
    const kvh = Math.floor(h / (nHead / nKv));
    for (let t = 0; t < n; t++) {
      const scores: number[] = [];
      for (let s = 0; s < n; s++) {
        let d = 0;
        for (let i = 0; i < hd; i++) d += q[(t * nHead + h) * hd + i] * k[(s * nKv + kvh) * hd + i];
        scores.push(causal && s > t ? -Infinity : d / Math.sqrt(hd));
      }
      const m = Math.max(...scores);
      const e = scores.map((x) => Math.exp(x - m));
      const z = e.reduce((a, b) => a + b, 0);
      for (let s = 0; s < n; s++) for (let i = 0; i < hd; i++) out[(t * nHead + h) * hd + i] += (e[s] / z) * v[(s * nKv + kvh) * hd + i];
    }
  }
  return out;
}

for (const [name, kernels] of KERNELS) {
  for (const causal of [false, true]) {
    test(`FullAttention (${name}, ${causal ? 'causal' : 'bidirectional'}): the definition, over more queries than one score chunk, with grouped heads`, () => {
      const [nHead, nKv, hd] = [4, 2, 8];
      // The native run crosses the 256-query chunk; the slow reference twin a shorter sequence.
      const n = name === 'native' ? 300 : 40;
      const q = random(n * nHead * hd, 4, 2);
      const k = random(n * nKv * hd, 5, 2);
      const v = random(n * nKv * hd, 6);
      const att = new FullAttention({ nHead, nKvHead: nKv, headDim: hd }, n + 3, causal);
      const out = new Float32Array(n * nHead * hd);
      att.forward(kernels, q, k, v, n, 1 / Math.sqrt(hd), out);
      const want = naiveAttention(q, k, v, n, nHead, nKv, hd, causal);
      assert.ok(maxDiff(out, want) < 1e-5, `off by ${maxDiff(out, want)}`);
      if (causal) {
        // The first token sees only itself: its output is its own value row.
        for (let h = 0; h < nHead; h++) {
          const kvh = Math.floor(h / 2);
          assert.ok(maxDiff(out.subarray(h * hd, (h + 1) * hd), v.subarray(kvh * hd, (kvh + 1) * hd)) < 1e-6);
        }
      }
    });
  }
}

test('poolRows: mean of the rows, the first, the last; l2Normalize: unit length, zero stays zero', () => {
  const dim = 6;
  const h = random(7 * dim, 7);
  const out = new Float32Array(dim);
  poolRows(h, 2, 4, dim, 'mean', out);
  for (let i = 0; i < dim; i++) {
    const want = (h[2 * dim + i] + h[3 * dim + i] + h[4 * dim + i] + h[5 * dim + i]) / 4;
    assert.ok(Math.abs(out[i] - want) < 1e-6);
  }
  poolRows(h, 2, 4, dim, 'cls', out);
  assert.deepEqual(out, h.subarray(2 * dim, 3 * dim));
  poolRows(h, 2, 4, dim, 'last', out);
  assert.deepEqual(out, h.subarray(5 * dim, 6 * dim));
  assert.throws(() => poolRows(h, 5, 3, dim, 'mean', out), RangeError);
  const v = Float32Array.of(3, 4, 0);
  l2Normalize(v);
  assert.deepEqual(Array.from(v), [Math.fround(0.6), Math.fround(0.8), 0]);
  const z = new Float32Array(3);
  l2Normalize(z);
  assert.deepEqual(Array.from(z), [0, 0, 0]);
});

/** A matrix's f32 values (the test files are F32). */
function values(m: Matrix): Float32Array {
  assert.equal(m.type, GgmlType.F32);
  return new Float32Array(new Uint8Array(m.data).buffer); // a copy: a Buffer's slice() is a view
}

/** y = x W^T + b in f64. */
function lin(x: Float64Array, n: number, m: Matrix, bias?: Float32Array): Float64Array {
  const w = values(m);
  const y = new Float64Array(n * m.rows);
  for (let t = 0; t < n; t++)
    for (let r = 0; r < m.rows; r++) {
      let s = bias ? bias[r] : 0;
      for (let c = 0; c < m.cols; c++) s += x[t * m.cols + c] * w[r * m.cols + c];
      y[t * m.rows + r] = s;
    }
  return y;
}

function ln(x: Float64Array, n: number, d: number, w: { weight: Float32Array; bias: Float32Array }, eps: number): Float64Array {
  const y = new Float64Array(n * d);
  for (let t = 0; t < n; t++) {
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x[t * d + i] / d;
    let v = 0;
    for (let i = 0; i < d; i++) v += (x[t * d + i] - mean) ** 2 / d;
    for (let i = 0; i < d; i++) y[t * d + i] = ((x[t * d + i] - mean) / Math.sqrt(v + eps)) * w.weight[i] + w.bias[i];
  }
  return y;
}

/** NeoX rotation of the first nRot dims of each head (pairs i and i + nRot/2) at position p. */
function ropeNeox(x: Float64Array, n: number, heads: number, hd: number, nRot: number, base: number): void {
  for (let t = 0; t < n; t++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < nRot / 2; i++) {
        const th = t * Math.pow(base, (-2 * i) / nRot);
        const o = (t * heads + h) * hd;
        const [a, b] = [x[o + i], x[o + i + nRot / 2]];
        x[o + i] = a * Math.cos(th) - b * Math.sin(th);
        x[o + i + nRot / 2] = a * Math.sin(th) + b * Math.cos(th);
      }
}

const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
const silu = (x: number) => x / (1 + Math.exp(-x));

/** The encoder from its definition (llama.cpp's bert graph), one sequence, f64 throughout. */
function naiveEncoder(cfg: EncoderConfig, w: EncoderWeights, ids: number[]): Float64Array {
  const [n, D, F, hd] = [ids.length, cfg.nEmbd, cfg.nFf, cfg.headDim];
  const kvw = cfg.nKvHead * hd;
  const tok = values(w.tokens);
  const types = w.types ? values(w.types) : undefined;
  const pos = w.positions ? values(w.positions) : undefined;
  let x: Float64Array = new Float64Array(n * D);
  for (let t = 0; t < n; t++)
    for (let i = 0; i < D; i++) x[t * D + i] = tok[ids[t] * D + i] + (types ? types[i] : 0) + (pos ? pos[t * D + i] : 0);
  x = ln(x, n, D, w.inputNorm, cfg.normEps);
  for (const L of w.layers) {
    let q: Float64Array, k: Float64Array, v: Float64Array;
    if ('fused' in L.qkv) {
      const all = lin(x, n, L.qkv.fused.w, L.qkv.fused.bias);
      const W = D + 2 * kvw;
      q = new Float64Array(n * D);
      k = new Float64Array(n * kvw);
      v = new Float64Array(n * kvw);
      for (let t = 0; t < n; t++) {
        q.set(all.subarray(t * W, t * W + D), t * D);
        k.set(all.subarray(t * W + D, t * W + D + kvw), t * kvw);
        v.set(all.subarray(t * W + D + kvw, (t + 1) * W), t * kvw);
      }
    } else {
      q = lin(x, n, L.qkv.q.w, L.qkv.q.bias);
      k = lin(x, n, L.qkv.k.w, L.qkv.k.bias);
      v = lin(x, n, L.qkv.v.w, L.qkv.v.bias);
    }
    if (cfg.kind.positions === 'rope') {
      ropeNeox(q, n, cfg.nHead, hd, cfg.rope.nRot, cfg.rope.freqBase);
      ropeNeox(k, n, cfg.nKvHead, hd, cfg.rope.nRot, cfg.rope.freqBase);
    }
    const att = naiveAttention(Float32Array.from(q), Float32Array.from(k), Float32Array.from(v), n, cfg.nHead, cfg.nKvHead, hd, cfg.causal);
    const o = lin(att, n, L.out.w, L.out.bias);
    for (let i = 0; i < o.length; i++) o[i] += x[i];
    x = ln(o, n, D, L.attnNorm, cfg.normEps);
    const up = lin(x, n, L.up.w, L.up.bias);
    if (L.gate) {
      const g = lin(x, n, L.gate.w);
      for (let i = 0; i < up.length; i++) up[i] *= silu(g[i]);
    } else {
      for (let i = 0; i < up.length; i++) up[i] = gelu(up[i]);
    }
    assert.equal(up.length, n * F);
    const down = lin(up, n, L.down.w, L.down.bias);
    for (let i = 0; i < down.length; i++) down[i] += x[i];
    x = ln(down, n, D, L.outNorm, cfg.normEps);
  }
  return x;
}

for (const arch of ['bert', 'nomic-bert']) {
  const path = join(dir, `${arch}.gguf`);
  writeSyntheticModel(path, { arch, nEmbd: 64, nLayer: 2, nHead: 4, nKvHead: 4, nFf: 96, nVocab: 300, ctx: 64, quant: GgmlType.F32, seed: 3 }, () => {
    throw new Error('F32 needs no quantizer');
  });
  const file = readGguf(path);
  const cfg = readEncoderFileConfig(new Metadata(file));
  const bytes = readFileSync(path);
  for (const [name, kernels] of KERNELS) {
    test(`${arch} encoder (${name}): the definition's hidden states; sequences packed in one call are each as alone`, () => {
      const { encoder } = loadEncoder(file, cfg, (t) => bytes.subarray(t.offset, t.offset + t.byteLength), kernels, 40);
      const weights = declareEncoder(cfg, new GgufTensorSource(file, { bytesOf: (t) => bytes.subarray(t.offset, t.offset + t.byteLength), kernels }));
      const a = [101, 150, 151, 260, 170, 102];
      const b = [101, 201, 299, 105, 180, 181, 182, 140, 102];
      const alone = [a, b].map((ids) => encoder.forward(Int32Array.from(ids), [{ start: 0, n: ids.length }]).slice());
      for (const [i, ids] of [a, b].entries()) {
        const want = naiveEncoder(cfg, weights, ids);
        // ggml's GELU is a table of f16 values: its rounding (and f32 sums) leave ~1e-3 at most.
        assert.ok(maxDiff(alone[i], want) < 2e-3, `input ${i}: off by ${maxDiff(alone[i], want)}`);
      }
      const packed = encoder.forward(Int32Array.from([...a, ...b]), [
        { start: 0, n: a.length },
        { start: a.length, n: b.length },
      ]);
      assert.ok(maxDiff(packed.subarray(0, a.length * cfg.nEmbd), alone[0]) < 1e-5);
      assert.ok(maxDiff(packed.subarray(a.length * cfg.nEmbd), alone[1]) < 1e-5);
      assert.throws(() => encoder.forward(Int32Array.of(101, 300), [{ start: 0, n: 2 }]), /outside the vocabulary/);
      assert.throws(() => encoder.forward(new Int32Array(41), [{ start: 0, n: 41 }]), /1 to 40/);
    });
  }
}

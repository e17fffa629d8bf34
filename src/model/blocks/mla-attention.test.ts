/**
 * Multi-head latent attention in its absorbed form against a plain float64 reference of the naive
 * form (DeepSeek-V2 paper, eq. 9-19): per head, keys [W_UK c | k_pe] and values W_UV c
 * decompressed from every cached latent, ordinary softmax attention, no absorption. Also: the
 * cache holds the latent and the roped key part per token and nothing else, and DeepSeek's score
 * scale for real models' YaRN settings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GgmlType, ggmlRowBytes } from '../../gguf/ggml-types.js';
import { createKernels, ReferenceKernels } from '../../kernels/index.js';
import type { Kernels } from '../../kernels/api.js';
import type { RopeConfig } from '../config.js';
import { KvCache } from '../kv-cache.js';
import type { ExpertBank, Matrix } from '../tensor-source.js';
import { Prng } from '../../util/prng.js';
import { MlaAttention, mlaKqScale, mlaKvRow, mlaSplitKvB, type MlaShape, type MlaWeights } from './mla-attention.js';
import type { StepContext } from './types.js';
import { Workspace } from './workspace.js';
import { YARN_BETA_FAST, YARN_BETA_SLOW, yarnAttnFactor } from './yarn-rope.js';

const f = Math.fround;

function yarnRope(nRot: number, factor: number, origCtx: number, logMul: number): RopeConfig {
  const freqScale = f(1 / factor);
  const attnFactor = yarnAttnFactor({ freqScale, extFactor: 1, logMul, deepseek2: true });
  return {
    mode: 'normal',
    nRot,
    freqBase: 10000,
    freqScale,
    yarn: { extFactor: 1, attnFactor, betaFast: YARN_BETA_FAST, betaSlow: YARN_BETA_SLOW, origCtx },
  };
}

function shapeOf(qLora: number, rope: RopeConfig, logMul: number): MlaShape {
  const nope = 16;
  const ropeDim = 8;
  return {
    nEmbd: 48,
    nHead: 3,
    qLora,
    kvLora: 32,
    nope,
    ropeDim,
    vDim: 12,
    rmsEps: 1e-6,
    rope,
    kqScale: mlaKqScale(rope, nope + ropeDim, logMul),
  };
}

/** Random f32 weights, kept as numbers for the reference. */
class Weights {
  private readonly rng: Prng;
  constructor(seed: number) {
    this.rng = new Prng(seed);
  }
  values(n: number, std: number, mean = 0): Float32Array {
    return Float32Array.from({ length: n }, () => mean + std * Math.sqrt(3) * (2 * this.rng.next() - 1));
  }
  matrix(rows: number, cols: number): Matrix {
    const v = this.values(rows * cols, 1 / Math.sqrt(cols));
    return { name: 'w', type: GgmlType.F32, rows, cols, data: new Uint8Array(v.buffer) };
  }
  bank(count: number, rows: number, cols: number): ExpertBank {
    const v = this.values(count * rows * cols, 1 / Math.sqrt(cols));
    return { name: 'b', type: GgmlType.F32, rows, cols, count, expertBytes: rows * cols * 4, data: new Uint8Array(v.buffer) };
  }
}

function makeWeights(s: MlaShape, seed: number): MlaWeights {
  const r = new Weights(seed);
  const qk = s.nope + s.ropeDim;
  const lora = s.qLora > 0;
  return {
    q: lora ? undefined : r.matrix(s.nHead * qk, s.nEmbd),
    qA: lora ? r.matrix(s.qLora, s.nEmbd) : undefined,
    qANorm: lora ? r.values(s.qLora, 0.1, 1) : undefined,
    qB: lora ? r.matrix(s.nHead * qk, s.qLora) : undefined,
    kvA: r.matrix(s.kvLora + s.ropeDim, s.nEmbd),
    kvANorm: r.values(s.kvLora, 0.1, 1),
    kB: r.bank(s.nHead, s.kvLora, s.nope),
    vB: r.bank(s.nHead, s.vDim, s.kvLora),
    o: r.matrix(s.nEmbd, s.nHead * s.vDim),
  };
}

// ---- the naive reference, float64 throughout ----

const f32 = (m: { data: Uint8Array }) => new Float32Array(m.data.buffer, m.data.byteOffset, m.data.byteLength / 4);

/** y = W x for a rows x cols f32 matrix at element offset `off`. */
function matVec(w: Float32Array, rows: number, cols: number, x: ArrayLike<number>, off = 0): Float64Array {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    for (let c = 0; c < cols; c++) acc += w[off + r * cols + c] * x[c];
    y[r] = acc;
  }
  return y;
}

function rmsNorm(x: ArrayLike<number>, g: Float32Array, eps: number): Float64Array {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
  const k = 1 / Math.sqrt(ss / x.length + eps);
  return Float64Array.from({ length: x.length }, (_, i) => x[i] * k * g[i]);
}

/** YaRN's rotation of adjacent pairs, from its formulas (frequencies mixed by the ramp, magnitude 1 + 0.1 ln factor). */
function ropeRef(x: Float64Array, pos: number, cfg: RopeConfig): Float64Array {
  const y = cfg.yarn!;
  const dim = cfg.nRot;
  const factor = 1 / cfg.freqScale;
  const corr = (beta: number) => (dim * Math.log(y.origCtx / (beta * 2 * Math.PI))) / (2 * Math.log(cfg.freqBase));
  const low = Math.max(0, Math.floor(corr(y.betaFast)));
  const high = Math.min(dim - 1, Math.ceil(corr(y.betaSlow)));
  const magnitude = y.attnFactor * (1 + 0.1 * Math.log(factor));
  const out = Float64Array.from(x);
  for (let i = 0; i < dim / 2; i++) {
    const extra = 1 / Math.pow(cfg.freqBase, (2 * i) / dim);
    const ramp = Math.min(1, Math.max(0, (i - low) / Math.max(0.001, high - low)));
    const angle = pos * ((extra / factor) * ramp + extra * (1 - ramp));
    const c = Math.cos(angle) * magnitude;
    const sn = Math.sin(angle) * magnitude;
    out[2 * i] = x[2 * i] * c - x[2 * i + 1] * sn;
    out[2 * i + 1] = x[2 * i] * sn + x[2 * i + 1] * c;
  }
  return out;
}

/** One sequence's naive MLA: decompressed per-head keys and values of every position so far. */
class NaiveMla {
  private readonly latents: Float64Array[] = [];
  private readonly kPes: Float64Array[] = [];
  constructor(
    private readonly s: MlaShape,
    private readonly w: MlaWeights,
  ) {}

  /** The cached row the absorbed form should hold for this token: [normed latent | roped k_pe]. */
  cacheRow(i: number): Float64Array {
    const r = new Float64Array(this.s.kvLora + this.s.ropeDim);
    r.set(this.latents[i]);
    r.set(this.kPes[i], this.s.kvLora);
    return r;
  }

  step(x: ArrayLike<number>, pos: number): Float64Array {
    const { s, w } = this;
    const qk = s.nope + s.ropeDim;
    const q = w.q
      ? matVec(f32(w.q), s.nHead * qk, s.nEmbd, x)
      : matVec(f32(w.qB!), s.nHead * qk, s.qLora, rmsNorm(matVec(f32(w.qA!), s.qLora, s.nEmbd, x), w.qANorm!, s.rmsEps));
    const ckv = matVec(f32(w.kvA), s.kvLora + s.ropeDim, s.nEmbd, x);
    this.latents.push(rmsNorm(ckv.subarray(0, s.kvLora), w.kvANorm, s.rmsEps));
    this.kPes.push(ropeRef(ckv.slice(s.kvLora), pos, s.rope));
    const kB = f32(w.kB!);
    const vB = f32(w.vB!);
    const heads = new Float64Array(s.nHead * s.vDim);
    for (let h = 0; h < s.nHead; h++) {
      const qNope = q.subarray(h * qk, h * qk + s.nope);
      const qPe = ropeRef(q.slice(h * qk + s.nope, (h + 1) * qk), pos, s.rope);
      // W_UK[h] (nope x kvLora) is k_b[h] (kvLora x nope) transposed; W_UV[h] (vDim x kvLora) is v_b[h].
      const scores = this.latents.map((c, j) => {
        let dot = 0;
        for (let d = 0; d < s.nope; d++) {
          let k = 0;
          for (let a = 0; a < s.kvLora; a++) k += kB[(h * s.kvLora + a) * s.nope + d] * c[a];
          dot += qNope[d] * k;
        }
        for (let d = 0; d < s.ropeDim; d++) dot += qPe[d] * this.kPes[j][d];
        return dot * s.kqScale;
      });
      const max = Math.max(...scores);
      const e = scores.map((v) => Math.exp(v - max));
      const sum = e.reduce((a, b) => a + b, 0);
      this.latents.forEach((c, j) => {
        const v = matVec(vB, s.vDim, s.kvLora, c, h * s.vDim * s.kvLora);
        for (let i = 0; i < s.vDim; i++) heads[h * s.vDim + i] += (e[j] / sum) * v[i];
      });
    }
    return matVec(f32(w.o), s.nEmbd, s.nHead * s.vDim, heads);
  }
}

// ---- the block under test ----

function runBlock(
  kernels: Kernels,
  s: MlaShape,
  kv: KvCache,
  block: MlaAttention,
  x: Float32Array,
  spans: StepContext['spans'],
  positions: Int32Array,
): Float32Array {
  const n = positions.length;
  const out = new Float32Array(n * s.nEmbd);
  block.forward(x, out, { kernels, kv, n, spans, positions, layer: 0 });
  return out;
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(got.length, want.length, what);
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i] - want[i]) <= tol * scale, `${what} [${i}]: ${got[i]} vs ${want[i]} (scale ${scale})`);
  }
}

for (const kernelName of ['native', 'reference'] as const) {
  for (const qLora of [0, 24]) {
    test(`absorbed MLA equals naive MLA (${kernelName} kernels, ${qLora ? 'query bottleneck' : 'direct queries'}): prefill, then decode, two sequences in one batch`, () => {
      const kernels = kernelName === 'native' ? createKernels() : new ReferenceKernels();
      const logMul = 0.707;
      const s = shapeOf(qLora, yarnRope(8, 40, 16, logMul), logMul);
      const w = makeWeights(s, 7 + qLora);
      const ws = new Workspace(16);
      const block = new MlaAttention(s, w, ws);
      ws.allocate();
      const kv = new KvCache([mlaKvRow(s)], 2, 32, GgmlType.F32);
      const refs = [new NaiveMla(s, w), new NaiveMla(s, w)];
      const rng = new Weights(100 + qLora);
      // Sequence 0: 5 prompt tokens at once; sequence 1: 3, in the same batch.
      const x = rng.values(8 * s.nEmbd, 1);
      const positions = Int32Array.of(0, 1, 2, 3, 4, 0, 1, 2);
      const out = runBlock(
        kernels,
        s,
        kv,
        block,
        x,
        [
          { slot: 0, pos0: 0, start: 0, n: 5 },
          { slot: 1, pos0: 0, start: 5, n: 3 },
        ],
        positions,
      );
      for (let t = 0; t < 8; t++) {
        const ref = refs[t < 5 ? 0 : 1].step(x.subarray(t * s.nEmbd, (t + 1) * s.nEmbd), positions[t]);
        assertClose(out.subarray(t * s.nEmbd, (t + 1) * s.nEmbd), ref, 2e-5, `prefill token ${t}`);
      }
      // Then decode steps, each sequence one token per step, past YaRN's short original context.
      for (let i = 0; i < 20; i++) {
        const xd = rng.values(2 * s.nEmbd, 1);
        const pos = Int32Array.of(5 + i, 3 + i);
        const o = runBlock(
          kernels,
          s,
          kv,
          block,
          xd,
          [
            { slot: 0, pos0: 5 + i, start: 0, n: 1 },
            { slot: 1, pos0: 3 + i, start: 1, n: 1 },
          ],
          pos,
        );
        for (let q = 0; q < 2; q++) {
          assertClose(
            o.subarray(q * s.nEmbd, (q + 1) * s.nEmbd),
            refs[q].step(xd.subarray(q * s.nEmbd, (q + 1) * s.nEmbd), pos[q]),
            2e-5,
            `decode ${i} seq ${q}`,
          );
        }
      }
      // The cache holds [normed latent | roped k_pe] per position and no values.
      const row = s.kvLora + s.ropeDim;
      const keys = kv.keys(0, 0);
      const cached = new Float32Array(keys.buffer, keys.byteOffset, 25 * row);
      for (let t = 0; t < 25; t++) assertClose(cached.subarray(t * row, (t + 1) * row), refs[0].cacheRow(t), 1e-5, `cached row ${t}`);
      assert.equal(kv.values(0, 0).length, 0, 'no value cache');
    });
  }
}

test('an F16 cache gives the naive result up to f16 rounding of the cache, the queries and the weights', () => {
  const kernels = createKernels();
  const s = shapeOf(
    24,
    {
      mode: 'normal',
      nRot: 8,
      freqBase: 10000,
      freqScale: 1,
      yarn: { extFactor: 0, attnFactor: 1, betaFast: 32, betaSlow: 1, origCtx: 64 },
    },
    0,
  );
  // ropeRef needs yarn parameters; extFactor 0 and factor 1 make it the plain rotation.
  const w = makeWeights(s, 3);
  const ws = new Workspace(8);
  const block = new MlaAttention(s, w, ws);
  ws.allocate();
  const kv = new KvCache([mlaKvRow(s)], 1, 16, GgmlType.F16);
  const ref = new NaiveMla(s, w);
  const rng = new Weights(5);
  for (let t = 0; t < 10; t++) {
    const x = rng.values(s.nEmbd, 1);
    const o = runBlock(kernels, s, kv, block, x, [{ slot: 0, pos0: t, start: 0, n: 1 }], Int32Array.of(t));
    assertClose(o, ref.step(x, t), 5e-3, `token ${t}`);
  }
});

test('the KV cache holds the latent and the rope part per token: (kvLora + rope) f16 per layer', () => {
  // DeepSeek V3's attention: 128 heads of 192 (128 + 64 rope) keys and 128 values, latent 512.
  const s = { kvLora: 512, ropeDim: 64 };
  const layers = 3;
  const kv = new KvCache(
    Array.from({ length: layers }, () => mlaKvRow(s)),
    2,
    64,
    GgmlType.F16,
  );
  const perToken = kv.bytes / (2 * 64);
  assert.equal(perToken, layers * 1152, 'llama.cpp caches 1152 bytes per token per layer');
  // Measured from the storage itself: each slot's key buffer, and no value buffer.
  let held = 0;
  for (let l = 0; l < layers; l++) for (let slot = 0; slot < 2; slot++) held += kv.keys(l, slot).byteLength + kv.values(l, slot).byteLength;
  assert.equal(held / (2 * 64), perToken);
  const decompressed = 128 * (192 + 128) * 2;
  assert.ok(perToken / layers < decompressed / 50, `${perToken / layers} bytes against ${decompressed} for full keys and values`);
});

test("DeepSeek's score scale for real models' YaRN settings (llama.cpp's values)", () => {
  const scale = (factor: number, logMul: number) => mlaKqScale(yarnRope(64, factor, 4096, logMul), 192, logMul);
  assert.ok(Math.abs(scale(40, 1) - 0.13523377) < 1e-7, 'DeepSeek V3/R1');
  assert.ok(Math.abs(scale(40, f(f(0.0707) / f(0.1))) - 0.1147214) < 1e-7, 'DeepSeek V2 / V2-Lite');
  assert.ok(Math.abs(scale(32, 1) - 0.13086081) < 1e-7, 'Kimi K2');
  const plain: RopeConfig = { mode: 'normal', nRot: 64, freqBase: 10000, freqScale: 1 };
  assert.equal(mlaKqScale(plain, 192, 0), f(1 / f(Math.sqrt(192))), 'no scaling: 1/sqrt(key head size)');
});

test("older converters' unsplit attn_kv_b, split at load, computes what k_b and v_b compute", () => {
  const kernels = createKernels();
  const logMul = 1;
  const s = shapeOf(24, yarnRope(8, 40, 16, logMul), logMul);
  const w = makeWeights(s, 11);
  // attn_kv_b: per head, W_UK (nope rows of kvLora; k_b transposed), then W_UV (v_b as it is).
  const per = s.nope + s.vDim;
  const kB = f32(w.kB!);
  const vB = f32(w.vB!);
  const kvB = new Float32Array(s.nHead * per * s.kvLora);
  for (let h = 0; h < s.nHead; h++) {
    for (let d = 0; d < s.nope; d++)
      for (let c = 0; c < s.kvLora; c++) kvB[(h * per + d) * s.kvLora + c] = kB[(h * s.kvLora + c) * s.nope + d];
    kvB.set(vB.subarray(h * s.vDim * s.kvLora, (h + 1) * s.vDim * s.kvLora), (h * per + s.nope) * s.kvLora);
  }
  const unsplit: MlaWeights = {
    ...w,
    kB: undefined,
    vB: undefined,
    kvB: { name: 'kv_b', type: GgmlType.F32, rows: s.nHead * per, cols: s.kvLora, data: new Uint8Array(kvB.buffer) },
  };
  const run = (weights: MlaWeights, shape: MlaShape) => {
    const ws = new Workspace(8);
    const block = new MlaAttention(shape, weights, ws);
    ws.allocate();
    const kv = new KvCache([mlaKvRow(shape)], 1, 16, GgmlType.F16);
    const rng = new Weights(8);
    const outs: number[] = [];
    const x = rng.values(4 * s.nEmbd, 1);
    outs.push(...runBlock(kernels, shape, kv, block, x, [{ slot: 0, pos0: 0, start: 0, n: 4 }], Int32Array.of(0, 1, 2, 3)));
    for (let t = 4; t < 12; t++) {
      outs.push(...runBlock(kernels, shape, kv, block, rng.values(s.nEmbd, 1), [{ slot: 0, pos0: t, start: 0, n: 1 }], Int32Array.of(t)));
    }
    return outs;
  };
  assert.deepEqual(run(unsplit, { ...s, unsplit: true }), run(w, s));
  // The memory estimate counts the split copies: what the unsplit file's block holds beyond the other's.
  const aside = (weights: MlaWeights, shape: MlaShape) => {
    const ws = new Workspace(8);
    new MlaAttention(shape, weights, ws);
    return ws.asideBytes;
  };
  assert.equal(
    aside(unsplit, { ...s, unsplit: true }) - aside(w, s),
    s.nHead * (s.kvLora * s.nope * 4 + s.vDim * s.kvLora * 4),
    'W_UK transposed as f32 and W_UV copied, per head',
  );

  // Quantized: W_UV's rows are copied as they are, W_UK's dequantized into the f32 transpose.
  const rows = s.nHead * per;
  const q8 = new Uint8Array(ggmlRowBytes(GgmlType.Q8_0, s.kvLora) * rows);
  kernels.quantize(GgmlType.Q8_0, kvB, q8, kvB.length);
  const split = mlaSplitKvB({ name: 'kv_b', type: GgmlType.Q8_0, rows, cols: s.kvLora, data: q8 }, s);
  const deq = new Float32Array(kvB.length);
  kernels.dequantize(GgmlType.Q8_0, q8, deq, deq.length);
  const rb = ggmlRowBytes(GgmlType.Q8_0, s.kvLora);
  assert.equal(split.vB.type, GgmlType.Q8_0);
  assert.deepEqual(
    split.vB.data.subarray(rb * s.vDim, 2 * rb * s.vDim),
    q8.subarray((per + s.nope) * rb, 2 * per * rb),
    "head 1's W_UV rows",
  );
  const kT = f32(split.kB);
  assert.equal(kT[(1 * s.kvLora + 5) * s.nope + 3], deq[(1 * per + 3) * s.kvLora + 5], "head 1's W_UK[3][5]");
  // A dry build (no data) gets empty banks of the right shape.
  const dry = mlaSplitKvB({ name: 'kv_b', type: GgmlType.Q8_0, rows, cols: s.kvLora, data: new Uint8Array(0) }, s);
  assert.equal(dry.kB.data.length + dry.vB.data.length, 0);
  assert.throws(
    () => mlaSplitKvB({ name: 'kv_b', type: GgmlType.F32, rows: rows - 1, cols: s.kvLora, data: new Uint8Array(0) }, s),
    /not the heads/,
  );
});

/**
 * The MoE FFN block against a plain reference built from the dense path: per token, per chosen
 * expert, ordinary matmuls over that expert's matrix (a view of the bank), the gated unit, the
 * down product, weighted and summed in the router's order, then the shared experts. The block's
 * grouped expert products (one activation conversion per token, tokens grouped by expert) must give
 * the same result, for prefill batches and single tokens, in every weight type mix.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GgmlType, ggmlRowBytes } from '../../gguf/ggml-types.js';
import { createKernels } from '../../kernels/index.js';
import { Prng } from '../../util/prng.js';
import { expertMatrix, type ExpertBank, type Matrix } from '../tensor-source.js';
import { MoeFfn, SWIGLU_OAI, type MoeActivation, type MoeFfnWeights } from './moe-ffn.js';
import type { MoeRouting } from './moe-router.js';
import type { StepContext } from './types.js';
import { Workspace } from './workspace.js';
import { expertBatchBytes } from '../../kernels/expert-batch-bytes.js';

const kernels = createKernels();
const f = Math.fround;

function encode(type: GgmlType, v: Float32Array): Uint8Array {
  if (type === GgmlType.F32) return new Uint8Array(v.buffer.slice(0));
  const out = new Uint8Array(ggmlRowBytes(type, v.length));
  kernels.quantize(type, v, out, v.length);
  return out;
}

function randoms(rng: Prng, n: number, std: number): Float32Array {
  return new Float32Array(n).map(() => rng.normal() * std);
}

function matrix(rng: Prng, name: string, type: GgmlType, rows: number, cols: number): Matrix {
  return { name, type, rows, cols, data: encode(type, randoms(rng, rows * cols, 1 / Math.sqrt(cols))) };
}

function bank(rng: Prng, name: string, type: GgmlType, count: number, rows: number, cols: number): ExpertBank {
  const data = encode(type, randoms(rng, count * rows * cols, 1 / Math.sqrt(cols)));
  return { name, type, rows, cols, count, expertBytes: data.length / count, data };
}

interface Case {
  readonly nEmbd: number;
  readonly width: number;
  readonly routing: MoeRouting;
  readonly types: { gate?: GgmlType; up: GgmlType; down: GgmlType; shared?: GgmlType };
  readonly activation?: MoeActivation;
  readonly sharedWidth?: number;
  readonly sharedGated?: boolean;
  readonly biases?: boolean;
}

function weightsFor(c: Case, seed: number): MoeFfnWeights {
  const rng = new Prng(seed);
  const { nEmbd: d, width: w } = c;
  const E = c.routing.experts;
  const gate = matrix(rng, 'router', GgmlType.F32, E, d);
  const shared =
    c.sharedWidth && c.types.shared !== undefined
      ? {
          gate: matrix(rng, 'sh.gate', c.types.shared, c.sharedWidth, d),
          up: matrix(rng, 'sh.up', c.types.shared, c.sharedWidth, d),
          down: matrix(rng, 'sh.down', c.types.shared, d, c.sharedWidth),
        }
      : undefined;
  return {
    router: { gate },
    gate: c.types.gate !== undefined ? bank(rng, 'gate', c.types.gate, E, w, d) : undefined,
    up: bank(rng, 'up', c.types.up, E, w, d),
    down: bank(rng, 'down', c.types.down, E, d, w),
    gateBias: c.biases && c.types.gate !== undefined ? randoms(rng, E * w, 0.3) : undefined,
    upBias: c.biases ? randoms(rng, E * w, 0.3) : undefined,
    downBias: c.biases ? randoms(rng, E * d, 0.3) : undefined,
    shared,
    sharedGate: shared && c.sharedGated ? matrix(rng, 'sh.gate_inp', GgmlType.F32, 1, d) : undefined,
  };
}

function block(c: Case, w: MoeFfnWeights, maxBatch: number): MoeFfn {
  const ws = new Workspace(maxBatch);
  const b = new MoeFfn(
    {
      nEmbd: c.nEmbd,
      width: c.width,
      routing: c.routing,
      activation: c.activation ?? 'silu',
      sharedWidth: c.sharedWidth ?? 0,
      sharedGated: c.sharedGated ?? false,
    },
    w,
    ws,
  );
  ws.allocate();
  return b;
}

const silu = (x: number) => f(x / f(1 + f(Math.exp(-x))));

function mm(m: Matrix, x: Float32Array): Float32Array {
  const y = new Float32Array(m.rows);
  kernels.matmul(m.data, m.type, m.rows, m.cols, x, 1, y);
  return y;
}

/** One token through the layer the plain way; the router's choice comes from `ids` / `weights`. */
function referenceToken(c: Case, w: MoeFfnWeights, h: Float32Array, ids: Int32Array, weights: Float32Array): Float32Array {
  const out = new Float32Array(c.nEmbd);
  for (let j = 0; j < ids.length; j++) {
    const e = ids[j];
    const u = mm(expertMatrix(w.up, e), h);
    if (w.upBias) for (let i = 0; i < c.width; i++) u[i] = f(u[i] + w.upBias[e * c.width + i]);
    const act = new Float32Array(c.width);
    if (w.gate) {
      const g = mm(expertMatrix(w.gate, e), h);
      if (w.gateBias) for (let i = 0; i < c.width; i++) g[i] = f(g[i] + w.gateBias[e * c.width + i]);
      if (c.activation === 'swiglu-oai') {
        const { alpha, limit } = SWIGLU_OAI;
        for (let i = 0; i < c.width; i++) {
          const x = Math.min(g[i], limit);
          const y = Math.min(Math.max(u[i], -limit), limit);
          act[i] = f(f(x / f(1 + f(Math.exp(f(alpha) * -x)))) * f(y + 1));
        }
      } else for (let i = 0; i < c.width; i++) act[i] = f(silu(g[i]) * u[i]);
    } else for (let i = 0; i < c.width; i++) act[i] = silu(u[i]);
    const y = mm(expertMatrix(w.down, e), act);
    if (w.downBias) for (let i = 0; i < c.nEmbd; i++) y[i] = f(y[i] + w.downBias[e * c.nEmbd + i]);
    for (let i = 0; i < c.nEmbd; i++) out[i] = j === 0 ? f(y[i] * weights[j]) : f(out[i] + f(y[i] * weights[j]));
  }
  if (w.shared) {
    const g = mm(w.shared.gate, h);
    const u = mm(w.shared.up, h);
    const act = g.map((v, i) => f(silu(v) * u[i]));
    const sh = mm(w.shared.down, act);
    let gate = 1;
    if (w.sharedGate) {
      const s = mm(w.sharedGate, h)[0];
      gate = f(silu(s) / s);
    }
    for (let i = 0; i < c.nEmbd; i++) out[i] = f(out[i] + (w.sharedGate ? f(sh[i] * gate) : sh[i]));
  }
  return out;
}

function step(n: number): StepContext {
  return { kernels, n } as unknown as StepContext;
}

/** Runs n tokens as one batch and one by one; both must equal the reference. */
function check(c: Case, n: number, seed: number, tolerance = 1e-5): void {
  const w = weightsFor(c, seed);
  const b = block(c, w, n);
  const rng = new Prng(seed + 1000);
  const h = randoms(rng, n * c.nEmbd, 1);
  const out = new Float32Array(n * c.nEmbd);
  b.forward(h, out, step(n));
  const k = c.routing.used;
  const ids = new Int32Array(k);
  const weights = new Float32Array(k);
  const used = new Set<number>();
  for (let t = 0; t < n; t++) {
    const row = h.subarray(t * c.nEmbd, (t + 1) * c.nEmbd);
    b.router!.route(row, 1, kernels, ids, weights);
    ids.forEach((e) => used.add(e));
    const want = referenceToken(c, w, row, ids, weights);
    const one = new Float32Array(c.nEmbd);
    b.forward(row, one, step(1));
    for (let i = 0; i < c.nEmbd; i++) {
      const got = out[t * c.nEmbd + i];
      const tol = tolerance * Math.max(1, Math.abs(want[i]));
      assert.ok(Math.abs(got - want[i]) <= tol, `token ${t} of ${n}, element ${i}: batch ${got}, reference ${want[i]}`);
      assert.ok(Math.abs(one[i] - want[i]) <= tol, `token ${t} alone, element ${i}: ${one[i]}, reference ${want[i]}`);
    }
  }
  if (n > 1) assert.ok(used.size > k, 'the batch spreads over more experts than one token uses');
}

const softmaxNorm = (experts: number, used: number): MoeRouting => ({
  experts,
  used,
  gating: 'softmax',
  normalize: true,
  scale: 0,
  groups: 0,
  groupsUsed: 0,
});

test('F32 experts (Mixtral routing): a prefill batch and single tokens equal per-expert matmuls', () => {
  check({ nEmbd: 64, width: 96, routing: softmaxNorm(8, 2), types: { gate: GgmlType.F32, up: GgmlType.F32, down: GgmlType.F32 } }, 9, 1);
});

test('Q8_0 experts: the activation is quantized once and shared by gate and up', () => {
  check(
    { nEmbd: 128, width: 64, routing: softmaxNorm(16, 4), types: { gate: GgmlType.Q8_0, up: GgmlType.Q8_0, down: GgmlType.Q8_0 } },
    12,
    2,
  );
});

test('a K-quant mix whose gate and up take different activation forms (Q8_0 gate, Q4_K up, Q6_K down)', () => {
  check(
    { nEmbd: 256, width: 256, routing: softmaxNorm(8, 3), types: { gate: GgmlType.Q8_0, up: GgmlType.Q4_K, down: GgmlType.Q6_K } },
    6,
    3,
  );
  check({ nEmbd: 256, width: 256, routing: softmaxNorm(8, 2), types: { gate: GgmlType.F16, up: GgmlType.Q5_K, down: GgmlType.F32 } }, 5, 4);
});

test('Llama experts without a gate tensor: the unit is silu(up)', () => {
  check({ nEmbd: 64, width: 64, routing: softmaxNorm(4, 2), types: { up: GgmlType.Q8_0, down: GgmlType.F32 } }, 5, 5);
});

test('shared experts are added after the routed sum, ungated (DeepSeek, GLM) or behind a sigmoid gate (Qwen2-MoE)', () => {
  const sig: MoeRouting = { experts: 16, used: 4, gating: 'sigmoid', normalize: true, scale: 2.5, groups: 0, groupsUsed: 0 };
  check(
    {
      nEmbd: 64,
      width: 32,
      routing: sig,
      sharedWidth: 64,
      types: { gate: GgmlType.Q8_0, up: GgmlType.Q8_0, down: GgmlType.Q8_0, shared: GgmlType.Q8_0 },
    },
    7,
    6,
  );
  const soft: MoeRouting = { experts: 12, used: 4, gating: 'softmax', normalize: false, scale: 0, groups: 0, groupsUsed: 0 };
  check(
    {
      nEmbd: 64,
      width: 32,
      routing: soft,
      sharedWidth: 96,
      sharedGated: true,
      types: { gate: GgmlType.F32, up: GgmlType.F32, down: GgmlType.F32, shared: GgmlType.F32 },
    },
    7,
    7,
  );
});

test('gpt-oss experts: per-expert biases and swiglu_oai, softmax over the chosen', () => {
  const r: MoeRouting = { experts: 8, used: 4, gating: 'softmax-selected', normalize: false, scale: 0, groups: 0, groupsUsed: 0 };
  check(
    {
      nEmbd: 64,
      width: 64,
      routing: r,
      activation: 'swiglu-oai',
      biases: true,
      types: { gate: GgmlType.MXFP4, up: GgmlType.MXFP4, down: GgmlType.MXFP4 },
    },
    6,
    8,
  );
});

test('the shared gate and the routed weights matter: dropping either changes the output', () => {
  const c: Case = {
    nEmbd: 32,
    width: 32,
    routing: { experts: 4, used: 2, gating: 'softmax', normalize: false, scale: 0, groups: 0, groupsUsed: 0 },
    sharedWidth: 32,
    sharedGated: true,
    types: { gate: GgmlType.F32, up: GgmlType.F32, down: GgmlType.F32, shared: GgmlType.F32 },
  };
  const w = weightsFor(c, 9);
  const h = randoms(new Prng(3), 32, 1);
  const full = new Float32Array(32);
  block(c, w, 1).forward(h, full, step(1));
  const ungated = new Float32Array(32);
  block({ ...c, sharedGated: false }, { ...w, sharedGate: undefined }, 1).forward(h, ungated, step(1));
  const normalized = new Float32Array(32);
  block({ ...c, routing: { ...c.routing, normalize: true } }, w, 1).forward(h, normalized, step(1));
  assert.notDeepEqual(full, ungated);
  assert.notDeepEqual(full, normalized);
});

test("the block counts its shard's expert batches in the workspace, at the bytes the kernels then allocate", () => {
  const c: Case = {
    nEmbd: 256,
    width: 96,
    routing: { experts: 6, used: 2, gating: 'softmax', normalize: false, scale: 1, groups: 0, groupsUsed: 0 },
    types: { gate: GgmlType.Q8_0, up: GgmlType.Q4_K, down: GgmlType.F16 },
  };
  const made: number[] = [];
  const recording = Object.create(kernels) as typeof kernels;
  recording.createExpertBatch = (...a: Parameters<typeof kernels.createExpertBatch>) => {
    const b = kernels.createExpertBatch(...a);
    made.push(expertBatchBytes(...a));
    // The native kernels' batch is the size the estimate computes.
    if ('buffer' in b) assert.equal((b as { buffer: Uint8Array }).buffer.byteLength, made[made.length - 1]);
    return b;
  };
  const ws = new Workspace(5);
  const shape = { nEmbd: c.nEmbd, width: c.width, routing: c.routing, activation: 'silu' as const, sharedWidth: 0, sharedGated: false };
  const b = new MoeFfn(shape, weightsFor(c, 11), ws);
  // A second block of the shard shares its batches: nothing more is counted.
  const reserved = ws.asideBytes;
  new MoeFfn(shape, weightsFor(c, 12), ws);
  assert.equal(ws.asideBytes, reserved);
  ws.allocate();
  b.forward(randoms(new Prng(3), 3 * c.nEmbd, 1), new Float32Array(3 * c.nEmbd), { kernels: recording, n: 3 } as unknown as StepContext);
  // Q8_0 gate and Q4_K up take quantized activations over the same columns (one batch); the F16 down another.
  assert.equal(made.length, 2);
  assert.equal(reserved, made[0] + made[1]);
});

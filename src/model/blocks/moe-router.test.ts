/**
 * The router against a plain TypeScript reference of llama.cpp's build_moe_ffn routing (written
 * from the steps of llama-graph.cpp, one token at a time, with a plain stable sort): every gating
 * and weighting variant, the score-correction bias that chooses but does not weigh, and
 * group-limited selection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GgmlType } from '../../gguf/ggml-types.js';
import { createKernels } from '../../kernels/index.js';
import { Prng } from '../../util/prng.js';
import { MOE_WEIGHT_SUM_MIN, MoeRouter, checkMoeRouting, type MoeRouterWeights, type MoeRouting } from './moe-router.js';
import { Workspace } from './workspace.js';

const kernels = createKernels();
const f = Math.fround;

/** One token's experts and weights, step by step as llama.cpp's graph computes them. */
function reference(logits: readonly number[], r: MoeRouting, selectionBias?: Float32Array): { ids: number[]; weights: number[] } {
  const E = r.experts;
  let p: number[];
  if (r.gating === 'softmax') {
    const m = Math.max(...logits);
    const e = logits.map((l) => f(Math.exp(f(l - m))));
    const inv = f(1 / e.reduce((a, b) => a + b, 0));
    p = e.map((v) => f(v * inv));
  } else if (r.gating === 'sigmoid') p = logits.map((l) => f(1 / f(1 + f(Math.exp(-l)))));
  else p = [...logits];
  const s = p.map((v, i) => (selectionBias ? f(v + selectionBias[i]) : v));
  if (r.groups > 1) {
    const per = E / r.groups;
    const groupScore = (g: number) => {
      const top = s.slice(g * per, (g + 1) * per).sort((a, b) => b - a);
      return f(top[0] + top[1]);
    };
    const ranked = [...Array(r.groups).keys()].sort((a, b) => groupScore(b) - groupScore(a));
    const keep = new Set(ranked.slice(0, r.groupsUsed));
    for (let i = 0; i < E; i++) if (!keep.has(Math.floor(i / per))) s[i] = -Infinity;
  }
  const ids = [...Array(E).keys()].sort((a, b) => s[b] - s[a]).slice(0, r.used);
  let w = ids.map((i) => p[i]);
  if (r.gating === 'softmax-selected') {
    const m = Math.max(...w);
    const e = w.map((v) => f(Math.exp(f(v - m))));
    const inv = f(1 / e.reduce((a, b) => a + b, 0));
    w = e.map((v) => f(v * inv));
  }
  if (r.normalize) {
    const sum = Math.max(f(w.reduce((a, b) => a + b, 0)), MOE_WEIGHT_SUM_MIN);
    w = w.map((v) => f(v / sum));
  }
  if (r.scale !== 0 && r.scale !== 1) w = w.map((v) => f(v * f(r.scale)));
  return { ids, weights: w };
}

/** A router with an F32 gate of experts x nEmbd. */
function makeRouter(r: MoeRouting, nEmbd: number, gate: Float32Array, extra: Partial<MoeRouterWeights> = {}, maxBatch = 8): MoeRouter {
  const ws = new Workspace(maxBatch);
  const w: MoeRouterWeights = {
    gate: { name: 'gate', type: GgmlType.F32, rows: r.experts, cols: nEmbd, data: new Uint8Array(gate.buffer) },
    ...extra,
  };
  const router = new MoeRouter(r, w, ws);
  ws.allocate();
  return router;
}

/** Routes n random logit rows both ways and compares: ids exactly, weights to f32 rounding of exp. */
function compare(r: MoeRouting, n: number, seed: number, extra: Partial<MoeRouterWeights> = {}, logitScale = 2): void {
  const rng = new Prng(seed);
  const logits = new Float32Array(n * r.experts).map(() => (rng.next() * 2 - 1) * logitScale);
  const router = makeRouter(r, 1, new Float32Array(r.experts), extra);
  const ids = new Int32Array(n * r.used);
  const weights = new Float32Array(n * r.used);
  const expected = [...Array(n).keys()].map((t) =>
    reference([...logits.subarray(t * r.experts, (t + 1) * r.experts)], r, extra.selectionBias),
  );
  router.routeLogits(logits, n, kernels, ids, weights);
  for (let t = 0; t < n; t++) {
    const k = r.used;
    assert.deepEqual([...ids.subarray(t * k, (t + 1) * k)], expected[t].ids, `token ${t}: experts and their order`);
    for (let j = 0; j < k; j++) {
      const got = weights[t * k + j];
      const want = expected[t].weights[j];
      assert.ok(Math.abs(got - want) <= 2e-7 * Math.max(1, Math.abs(want)), `token ${t} slot ${j}: weight ${got}, expected ${want}`);
    }
  }
}

const base = { normalize: false, scale: 0, groups: 0, groupsUsed: 0 };

test('softmax over all experts, top k renormalized (Mixtral, Qwen3-MoE)', () => {
  compare({ ...base, experts: 8, used: 2, gating: 'softmax', normalize: true }, 6, 1);
  compare({ ...base, experts: 128, used: 8, gating: 'softmax', normalize: true }, 4, 2);
});

test('softmax without normalization (Qwen2-MoE): the weights are the chosen probabilities', () => {
  const r: MoeRouting = { ...base, experts: 60, used: 4, gating: 'softmax' };
  compare(r, 5, 3);
  const router = makeRouter(r, 1, new Float32Array(60));
  const logits = new Float32Array(60).map((_, i) => Math.sin(i));
  const ids = new Int32Array(4);
  const w = new Float32Array(4);
  router.routeLogits(logits, 1, kernels, ids, w);
  const sum = w.reduce((a, b) => a + b, 0);
  assert.ok(sum < 0.5, `4 of 60 probabilities do not sum to 1 (got ${sum})`);
});

test('sigmoid with a score-correction bias, normalized and scaled (DeepSeek-V3, GLM-4.5)', () => {
  const bias = new Float32Array(16).map((_, i) => Math.cos(i * 1.7) * 0.3);
  compare({ ...base, experts: 16, used: 4, gating: 'sigmoid', normalize: true, scale: 2.5 }, 6, 4, { selectionBias: bias });
  compare({ ...base, experts: 256, used: 8, gating: 'sigmoid', normalize: true, scale: 2.5 }, 3, 5, {
    selectionBias: new Float32Array(256).map((_, i) => Math.sin(i) * 0.2),
  });
});

test('the score-correction bias chooses the experts but does not weigh them', () => {
  const r: MoeRouting = { ...base, experts: 8, used: 2, gating: 'sigmoid', normalize: true, scale: 2.5 };
  const logits = [2, 1.5, 1, 0.5, 0, -0.5, -1, -1.5];
  // A large bias on expert 7 (the lowest logit) makes it chosen first.
  const bias = new Float32Array(8);
  bias[7] = 5;
  const router = makeRouter(r, 1, new Float32Array(8), { selectionBias: bias });
  const ids = new Int32Array(2);
  const w = new Float32Array(2);
  router.routeLogits(Float32Array.from(logits), 1, kernels, ids, w);
  assert.deepEqual([...ids], [7, 0]);
  const sig = (x: number) => f(1 / f(1 + f(Math.exp(-x))));
  const sum = f(sig(-1.5) + sig(2));
  assert.equal(w[0], f(f(sig(-1.5) / sum) * 2.5), 'weight of the biased expert from its unbiased probability');
  assert.equal(w[1], f(f(sig(2) / sum) * 2.5));
});

test('group-limited selection: groups ranked by the sum of their two best scores, the others masked', () => {
  compare({ ...base, experts: 16, used: 4, gating: 'sigmoid', normalize: true, scale: 2.5, groups: 4, groupsUsed: 2 }, 8, 6, {
    selectionBias: new Float32Array(16).map((_, i) => Math.sin(i * 3) * 0.1),
  });
  compare({ ...base, experts: 64, used: 6, gating: 'softmax', scale: 16, groups: 8, groupsUsed: 3 }, 5, 7);
  // Group 0 has the single best expert but group 1 the best pair: the top-2-sum rule takes group 1 (a group-max rule would take 0).
  const r: MoeRouting = { ...base, experts: 8, used: 2, gating: 'softmax-selected', groups: 2, groupsUsed: 1 };
  const router = makeRouter(r, 1, new Float32Array(8));
  const ids = new Int32Array(2);
  const w = new Float32Array(2);
  router.routeLogits(Float32Array.from([3, -3, -3, -3, 2, 2, 0, 0]), 1, kernels, ids, w);
  assert.deepEqual([...ids], [4, 5]);
});

test("gpt-oss: experts by raw logit (plus the router's bias), weights a softmax over the chosen", () => {
  compare({ ...base, experts: 32, used: 4, gating: 'softmax-selected' }, 6, 8, {}, 5);
  const nEmbd = 4;
  const gate = new Float32Array(8 * nEmbd).map((_, i) => Math.sin(i * 0.37));
  const logitBias = new Float32Array(8).map((_, i) => i * 0.25);
  const r: MoeRouting = { ...base, experts: 8, used: 3, gating: 'softmax-selected' };
  const router = makeRouter(r, nEmbd, gate, { logitBias });
  const h = Float32Array.from([0.5, -1, 0.25, 2]);
  const ids = new Int32Array(3);
  const w = new Float32Array(3);
  router.route(h, 1, kernels, ids, w);
  const logits = [...Array(8).keys()].map((e) =>
    f(f(gate.subarray(e * nEmbd, (e + 1) * nEmbd).reduce((a, g, i) => a + g * h[i], 0)) + logitBias[e]),
  );
  const want = reference(logits, r);
  assert.deepEqual([...ids], want.ids);
  for (let j = 0; j < 3; j++) assert.ok(Math.abs(w[j] - want.weights[j]) < 1e-6);
  assert.ok(Math.abs(w[0] + w[1] + w[2] - 1) < 1e-6, 'a softmax over the chosen sums to 1');
});

test('normalization divides by the sum clamped at the smallest normal f16, as llama.cpp does', () => {
  const r: MoeRouting = { ...base, experts: 4, used: 2, gating: 'sigmoid', normalize: true };
  const router = makeRouter(r, 1, new Float32Array(4));
  const ids = new Int32Array(2);
  const w = new Float32Array(2);
  router.routeLogits(Float32Array.from([-20, -21, -30, -30]), 1, kernels, ids, w);
  const sig = (x: number) => f(1 / f(1 + f(Math.exp(-x))));
  assert.deepEqual([...ids], [0, 1]);
  assert.equal(w[0], f(sig(-20) / MOE_WEIGHT_SUM_MIN));
  assert.ok(w[0] + w[1] < 1e-3, 'tiny weights stay tiny (no division by their own tiny sum)');
});

test('a batch routes each token as it would alone; NaN logits sort last instead of breaking the order', () => {
  const r: MoeRouting = { ...base, experts: 32, used: 4, gating: 'softmax', normalize: true };
  const rng = new Prng(9);
  const nEmbd = 8;
  const gate = new Float32Array(32 * nEmbd).map(() => rng.next() - 0.5);
  const router = makeRouter(r, nEmbd, gate);
  const h = new Float32Array(5 * nEmbd).map(() => rng.next() * 4 - 2);
  const ids = new Int32Array(20);
  const w = new Float32Array(20);
  router.route(h, 5, kernels, ids, w);
  for (let t = 0; t < 5; t++) {
    const one = new Int32Array(4);
    const ow = new Float32Array(4);
    router.route(h.slice(t * nEmbd, (t + 1) * nEmbd), 1, kernels, one, ow);
    assert.deepEqual([...one], [...ids.subarray(t * 4, t * 4 + 4)]);
    assert.deepEqual([...ow], [...w.subarray(t * 4, t * 4 + 4)]);
  }
  const sr: MoeRouting = { ...base, experts: 4, used: 2, gating: 'sigmoid' };
  const nanRouter = makeRouter(sr, 1, new Float32Array(4));
  nanRouter.routeLogits(Float32Array.from([NaN, 1, NaN, 0.5]), 1, kernels, ids, w);
  assert.deepEqual([...ids.subarray(0, 2)], [1, 3]);
});

test('routing rules llama.cpp refuses are refused by name', () => {
  const ok: MoeRouting = { ...base, experts: 16, used: 4, gating: 'sigmoid', groups: 4, groupsUsed: 2 };
  checkMoeRouting(ok, 'm.gguf');
  const bad: [Partial<MoeRouting>, RegExp][] = [
    [{ experts: 0 }, /0 experts/],
    [{ experts: 2000 }, /2000 experts/],
    [{ used: 17 }, /17 experts used/],
    [{ used: 0 }, /0 experts used/],
    [{ groups: 3 }, /do not form 3 groups/],
    [{ groups: 16 }, /do not form 16 groups/],
    [{ groupsUsed: 4 }, /4 expert groups used of 4/],
    [{ groupsUsed: 0 }, /0 expert groups used/],
    [{ used: 9, groupsUsed: 2 }, /cannot supply 9/],
    [{ scale: NaN }, /scale/],
  ];
  for (const [change, msg] of bad) assert.throws(() => checkMoeRouting({ ...ok, ...change }, 'm.gguf'), msg, JSON.stringify(change));
});

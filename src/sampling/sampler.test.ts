import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCairnError } from '../util/errors.js';
import type { SamplerOptions } from './options.js';
import { Sampler } from './sampler.js';

/** Logits whose softmax is exactly `probs` (up to float rounding). */
const logitsOf = (probs: number[]): Float32Array => Float32Array.from(probs, (p) => Math.log(p));

/** Every filter off: a plain draw from softmax(logits / temperature). */
const plain: SamplerOptions = { topK: 0, topP: 1, minP: 0, temperature: 1 };

function frequencies(sampler: Sampler, logits: Float32Array, draws: number): number[] {
  const counts = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < draws; i++) counts[sampler.sample(logits)]++;
  return counts.map((c) => c / draws);
}

/** Asserts each frequency is within `tol` of the expected probability. */
function assertClose(got: number[], want: number[], tol: number): void {
  got.forEach((g, i) => assert.ok(Math.abs(g - want[i]) <= tol, `token ${i}: ${g} vs ${want[i]}`));
}

test('temperature 0 picks the argmax, ties to the lowest id', () => {
  const s = new Sampler({ temperature: 0 });
  assert.equal(s.sample(Float32Array.from([0.1, 3, -2, 2.9])), 1);
  assert.equal(s.sample(Float32Array.from([1, 5, 5, 0])), 1);
});

test('top-k = 1 is greedy at any temperature', () => {
  const s = new Sampler({ topK: 1, temperature: 5, seed: 1 });
  const logits = Float32Array.from([0.5, 0.4, 0.6, 0.55]);
  for (let i = 0; i < 200; i++) assert.equal(s.sample(logits), 2);
});

test('draws follow softmax(logits) at temperature 1', () => {
  const probs = [0.5, 0.3, 0.2];
  const got = frequencies(new Sampler({ ...plain, seed: 7 }), logitsOf(probs), 20000);
  assertClose(got, probs, 0.02);
});

test('temperature reshapes the distribution as p^(1/T)', () => {
  const probs = [0.6, 0.3, 0.1];
  const t = 2;
  const powered = probs.map((p) => p ** (1 / t));
  const z = powered.reduce((a, b) => a + b);
  const got = frequencies(new Sampler({ ...plain, temperature: t, seed: 8 }), logitsOf(probs), 20000);
  assertClose(got, powered.map((p) => p / z), 0.02);
});

test('top-k keeps only the k most likely tokens', () => {
  const probs = [0.1, 0.4, 0.2, 0.3];
  const got = frequencies(new Sampler({ ...plain, topK: 2, seed: 9 }), logitsOf(probs), 20000);
  assert.equal(got[0], 0);
  assert.equal(got[2], 0);
  assertClose(got, [0, 4 / 7, 0, 3 / 7], 0.02);
});

test('top-p keeps the smallest prefix reaching p', () => {
  const probs = [0.5, 0.3, 0.15, 0.05];
  const got = frequencies(new Sampler({ ...plain, topP: 0.75, seed: 10 }), logitsOf(probs), 20000);
  assert.equal(got[2], 0);
  assert.equal(got[3], 0);
  assertClose(got, [0.625, 0.375, 0, 0], 0.02);
});

test('min-p drops tokens below minP times the best probability', () => {
  const probs = [0.5, 0.3, 0.15, 0.05];
  const got = frequencies(new Sampler({ ...plain, minP: 0.2, seed: 11 }), logitsOf(probs), 20000);
  assert.equal(got[3], 0);
  assertClose(got, [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0], 0.02);
});

test('top-p and min-p see the temperature-1 distribution (llama.cpp order)', () => {
  // At T = 100 the distribution is nearly flat, but the nucleus was fixed at T = 1.
  const probs = [0.5, 0.3, 0.2];
  const s = new Sampler({ ...plain, topP: 0.75, temperature: 100, seed: 12 });
  const got = frequencies(s, logitsOf(probs), 5000);
  assert.equal(got[2], 0);
  assert.ok(got[1] > 0.4, 'the kept tokens are close to uniform at high temperature');
});

test('top-p over a large unsorted vocabulary never draws outside the nucleus', () => {
  let state = 5;
  const rand = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  for (const spread of [8, 1]) {
    // spread 8: a nucleus of a few tokens; spread 1: thousands, past the first partial-sort window.
    const n = 30000;
    const logits = Float32Array.from({ length: n }, () => rand() * spread * 3);
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
    const max = logits[order[0]];
    const weights = order.map((id) => Math.exp(logits[id] - max));
    const total = weights.reduce((a, b) => a + b);
    let cum = 0;
    let size = 0;
    while (cum < 0.9 * total) cum += weights[size++];
    const nucleus = new Set(order.slice(0, size));
    const s = new Sampler({ ...plain, topP: 0.9, seed: 13 });
    for (let i = 0; i < 2000; i++) assert.ok(nucleus.has(s.sample(logits)), `spread ${spread}`);
    if (spread === 1) assert.ok(size > 256, `nucleus of ${size} should exceed the first window`);
  }
});

test('the same seed gives the same tokens; reset replays them', () => {
  const logits = logitsOf([0.25, 0.25, 0.25, 0.25]);
  const run = (s: Sampler): number[] => Array.from({ length: 100 }, () => s.sample(logits));
  const a = new Sampler({ ...plain, seed: 2024 });
  const first = run(a);
  assert.deepEqual(run(new Sampler({ ...plain, seed: 2024 })), first);
  assert.notDeepEqual(run(new Sampler({ ...plain, seed: 2025 })), first);
  a.reset();
  assert.deepEqual(run(a), first);
});

test('no seed (or -1) draws a random one and reports it', () => {
  const a = new Sampler({ ...plain });
  const b = new Sampler({ ...plain, seed: -1 });
  assert.ok(Number.isSafeInteger(a.seed) && Number.isSafeInteger(b.seed));
  const logits = logitsOf([0.25, 0.25, 0.25, 0.25]);
  const replay = new Sampler({ ...plain, seed: a.seed });
  for (let i = 0; i < 20; i++) assert.equal(replay.sample(logits), a.sample(logits));
});

test('sample leaves the caller logits untouched', () => {
  const logits = Float32Array.from([1, 2, 3]);
  const copy = logits.slice();
  new Sampler({ repeatPenalty: 1.5, logitBias: { 0: 5 }, seed: 1 }).sample(logits, [2, 2]);
  assert.deepEqual(logits, copy);
});

test('repeat penalty in the chain turns the greedy choice away from a repeated token', () => {
  const logits = Float32Array.from([2, 1.9, 0]);
  assert.equal(new Sampler({ temperature: 0 }).sample(logits, [0]), 0);
  assert.equal(new Sampler({ temperature: 0, repeatPenalty: 1.1 }).sample(logits, [0]), 1);
  // Outside the window the penalty does not apply.
  assert.equal(new Sampler({ temperature: 0, repeatPenalty: 1.1, repeatLastN: 1 }).sample(logits, [0, 2]), 0);
});

test('presence and frequency penalties in the chain', () => {
  const logits = Float32Array.from([1, 0.9]);
  assert.equal(new Sampler({ temperature: 0, presencePenalty: 0.2 }).sample(logits, [0]), 1);
  assert.equal(new Sampler({ temperature: 0, frequencyPenalty: 0.05 }).sample(logits, [0]), 0);
  assert.equal(new Sampler({ temperature: 0, frequencyPenalty: 0.05 }).sample(logits, [0, 0, 0]), 1);
});

test('logit bias forces and bans tokens; banning everything is an error', () => {
  const logits = Float32Array.from([5, 1, 0]);
  assert.equal(new Sampler({ temperature: 0, logitBias: { '2': 10 } }).sample(logits), 2);
  const banned = new Sampler({ ...plain, logitBias: new Map([[0, -Infinity]]), seed: 3 });
  for (let i = 0; i < 500; i++) assert.notEqual(banned.sample(logits), 0);
  const none = new Sampler({ logitBias: { 0: -Infinity, 1: -Infinity, 2: -Infinity } });
  assert.throws(() => none.sample(logits), (e) => isCairnError(e, 'BAD_ARGUMENT'));
});

test('NaN logits are never chosen', () => {
  const logits = Float32Array.from([NaN, 0, NaN, 0]);
  const s = new Sampler({ ...plain, seed: 4 });
  for (let i = 0; i < 200; i++) assert.ok([1, 3].includes(s.sample(logits)));
});

test('greedy picks the highest logit, ties to the lowest id, never NaN; a row of NaN and -Infinity is an error', () => {
  // The plain greedy path (no bias, no penalties) and the path through the working copy agree.
  for (const opts of [{ temperature: 0 }, { temperature: 0, logitBias: { 0: 0 } }, { temperature: 0, repeatPenalty: 1.1 }]) {
    const s = new Sampler(opts);
    assert.equal(s.sample(Float32Array.from([NaN, 2, 7, NaN, 7, -1])), 2);
    assert.equal(s.sample(Float32Array.from([-Infinity, NaN, -5])), 2);
    assert.throws(() => s.sample(Float32Array.from([NaN, -Infinity, NaN])), (e) => isCairnError(e, 'BAD_ARGUMENT'));
  }
});

test('bad options and inputs raise BAD_ARGUMENT', () => {
  const bad = (e: unknown): boolean => isCairnError(e, 'BAD_ARGUMENT');
  assert.throws(() => new Sampler({ temperature: -1 }), bad);
  assert.throws(() => new Sampler({ topP: 1.5 }), bad);
  assert.throws(() => new Sampler({ minP: -0.1 }), bad);
  assert.throws(() => new Sampler({ topK: 2.5 }), bad);
  assert.throws(() => new Sampler({ repeatPenalty: 0 }), bad);
  assert.throws(() => new Sampler({ repeatLastN: -2 }), bad);
  assert.throws(() => new Sampler({ seed: 1.5 }), bad);
  assert.throws(() => new Sampler({ temperature: Number.NaN }), bad);
  assert.throws(() => new Sampler({ logitBias: { abc: 1 } }), bad);
  assert.throws(() => new Sampler().sample(new Float32Array(0)), bad);
  assert.throws(() => new Sampler({ logitBias: { 9: 1 } }).sample(new Float32Array(3)), bad);
});

test('the defaults follow llama.cpp', () => {
  const o = new Sampler().options;
  assert.equal(o.temperature, 0.8);
  assert.equal(o.topK, 40);
  assert.equal(o.topP, 0.95);
  assert.equal(o.minP, 0.05);
  assert.equal(o.repeatPenalty, 1);
  assert.equal(o.repeatLastN, 64);
});

test('a sampler adapts when the vocabulary size changes', () => {
  const s = new Sampler({ temperature: 0 });
  assert.equal(s.sample(Float32Array.from([0, 1])), 1);
  assert.equal(s.sample(Float32Array.from([0, 1, 0, 4])), 3);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCairnError } from '../util/errors.js';
import { logSumExp, stepLogprobs } from './logprobs.js';

test('logprobs of all tokens sum to 1 in probability space', () => {
  const logits = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 10);
  const lse = logSumExp(logits);
  let total = 0;
  for (const x of logits) total += Math.exp(x - lse);
  assert.ok(Math.abs(total - 1) < 1e-9);
});

test('logprobs match a hand computation', () => {
  // softmax([ln 1, ln 2, ln 5]) = [0.125, 0.25, 0.625]
  const logits = Float32Array.from([Math.log(1), Math.log(2), Math.log(5)]);
  const r = stepLogprobs(logits, 1, 2);
  assert.equal(r.id, 1);
  assert.ok(Math.abs(r.logprob - Math.log(0.25)) < 1e-6);
  assert.deepEqual(r.top.map((t) => t.id), [2, 1]);
  assert.ok(Math.abs(r.top[0].logprob - Math.log(0.625)) < 1e-6);
  assert.ok(Math.abs(r.top[1].logprob - Math.log(0.25)) < 1e-6);
});

test('large logits do not overflow', () => {
  const logits = Float32Array.from([1000, 1000]);
  const r = stepLogprobs(logits, 0, 1);
  assert.ok(Math.abs(r.logprob - Math.log(0.5)) < 1e-9);
});

test('top alternatives are sorted descending and capped at 20', () => {
  const logits = Float32Array.from({ length: 50 }, (_, i) => (i * 7) % 50);
  const r = stepLogprobs(logits, 0, 20);
  assert.equal(r.top.length, 20);
  for (let i = 1; i < r.top.length; i++) assert.ok(r.top[i - 1].logprob >= r.top[i].logprob);
  assert.equal(r.top[0].id, logits.indexOf(49));
  assert.throws(() => stepLogprobs(logits, 0, 21), (e) => isCairnError(e, 'BAD_ARGUMENT'));
  assert.throws(() => stepLogprobs(logits, 50, 1), (e) => isCairnError(e, 'BAD_ARGUMENT'));
});

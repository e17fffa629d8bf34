import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCairnError } from '../util/errors.js';
import { cpuInfo, forceIsa, isNativeAvailable, nativeLogSumExp } from '../kernels/native.js';
import { logSumExp, logSumExpReference, stepLogprobs } from './logprobs.js';

test('logprobs of all tokens sum to 1 in probability space', () => {
  const logits = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 10);
  // The exact twin to double precision; the native path (f32 exponentials) to single.
  for (const [lse, tolerance] of [
    [logSumExpReference(logits), 1e-12],
    [logSumExp(logits), 1e-6],
  ]) {
    let total = 0;
    for (const x of logits) total += Math.exp(x - lse);
    assert.ok(Math.abs(total - 1) < tolerance, `${total}`);
  }
});

test('log-sum-exp matches its exact twin at awkward lengths on every native path, and leaves NaN and infinite rows to it', { skip: !isNativeAvailable() && 'the native library is not built' }, () => {
  try {
    for (const isa of cpuInfo().availableIsas) {
      forceIsa(isa);
      checkNativeLogSumExp();
    }
  } finally {
    forceIsa(null);
  }
});

function checkNativeLogSumExp(): void {
  for (const n of [256, 257, 1000, 1023, 1024, 1025, 4097, 32000, 151936]) {
    for (const scale of [0.01, 3, 50]) {
      const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.7 + n) * scale + (i % 13) * scale * 0.1);
      const exact = logSumExpReference(x);
      // The native path (f32 exponentials summed in f64): close to the twin, and what logSumExp
      // answers for a finite row of this length.
      const fast = nativeLogSumExp(x);
      assert.ok(Math.abs(fast - exact) < 1e-6 * Math.max(1, Math.abs(exact)), `${n} x ${scale}: ${fast} vs ${exact}`);
      assert.equal(logSumExp(x), fast);
      // A NaN or an infinite maximum anywhere in the row: the exact twin's answer.
      for (const bad of [NaN, Infinity]) {
        const y = x.slice();
        y[(n * 7) >> 3] = bad;
        assert.ok(Number.isNaN(nativeLogSumExp(y)), `${n}: ${bad}`);
        assert.equal(logSumExp(y), logSumExpReference(y));
      }
      const negInf = x.slice();
      negInf[n - 1] = -Infinity;
      assert.ok(Math.abs(logSumExp(negInf) - logSumExpReference(negInf)) < 1e-6 * Math.max(1, Math.abs(exact)));
    }
  }
  assert.equal(logSumExp(new Float32Array(300).fill(-Infinity)), -Infinity);
  assert.equal(logSumExp(new Float32Array(300).fill(NaN)), -Infinity);
}

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

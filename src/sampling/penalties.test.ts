import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCairnError } from '../util/errors.js';
import { applyLogitBias, applyPenalties, PenaltyScratch, type PenaltyParams } from './penalties.js';

const f32 = (x: number): number => Math.fround(x);

test('repeat penalty divides positive logits and multiplies non-positive ones, only for seen tokens', () => {
  const logits = Float32Array.from([2, -1, 0, 3, 1.5]);
  const params: PenaltyParams = { repeatPenalty: 1.25, repeatLastN: 64, presencePenalty: 0, frequencyPenalty: 0 };
  applyPenalties(logits, [0, 1, 2, 0], params, new PenaltyScratch(5));
  assert.equal(logits[0], f32(2 / 1.25));
  assert.equal(logits[1], f32(-1 * 1.25));
  assert.equal(logits[2], 0);
  assert.equal(logits[3], 3);
  assert.equal(logits[4], 1.5);
});

test('presence and frequency penalties follow the OpenAI formula', () => {
  const logits = Float32Array.from([1, 1, 1, 1]);
  const params: PenaltyParams = { repeatPenalty: 1, repeatLastN: -1, presencePenalty: 0.5, frequencyPenalty: 0.25 };
  // Token 0 seen 3 times, token 2 once, tokens 1 and 3 never.
  applyPenalties(logits, [0, 2, 0, 0], params, new PenaltyScratch(4));
  assert.equal(logits[0], f32(1 - (3 * 0.25 + 0.5)));
  assert.equal(logits[1], 1);
  assert.equal(logits[2], f32(1 - (1 * 0.25 + 0.5)));
  assert.equal(logits[3], 1);
});

test('only the last repeatLastN history tokens count', () => {
  const logits = Float32Array.from([4, 4, 4]);
  const params: PenaltyParams = { repeatPenalty: 2, repeatLastN: 2, presencePenalty: 0, frequencyPenalty: 1 };
  applyPenalties(logits, [0, 0, 0, 1, 2], params, new PenaltyScratch(3));
  assert.equal(logits[0], 4);
  assert.equal(logits[1], 4 / 2 - 1);
  assert.equal(logits[2], 4 / 2 - 1);
});

test('the scratch is clean after a call, so repeated calls give the same answer', () => {
  const scratch = new PenaltyScratch(3);
  const params: PenaltyParams = { repeatPenalty: 1, repeatLastN: -1, presencePenalty: 0, frequencyPenalty: 1 };
  const a = Float32Array.from([0, 0, 0]);
  const b = Float32Array.from([0, 0, 0]);
  applyPenalties(a, [1, 1], params, scratch);
  applyPenalties(b, [1, 1], params, scratch);
  assert.deepEqual(a, b);
  assert.equal(a[1], -2);
  assert.ok(scratch.counts.every((c) => c === 0));
});

test('out-of-vocabulary history tokens and bias ids are reported', () => {
  const params: PenaltyParams = { repeatPenalty: 1.1, repeatLastN: -1, presencePenalty: 0, frequencyPenalty: 0 };
  const scratch = new PenaltyScratch(3);
  assert.throws(
    () => applyPenalties(new Float32Array(3), [0, 3], params, scratch),
    (e) => isCairnError(e, 'BAD_ARGUMENT'),
  );
  assert.ok(scratch.counts.every((c) => c === 0));
  assert.throws(
    () => applyLogitBias(new Float32Array(3), Int32Array.from([5]), Float32Array.from([1])),
    (e) => isCairnError(e, 'BAD_ARGUMENT'),
  );
});

test('logit bias adds to the named tokens only', () => {
  const logits = Float32Array.from([1, 2, 3]);
  applyLogitBias(logits, Int32Array.from([0, 2]), Float32Array.from([10, -Infinity]));
  assert.deepEqual(Array.from(logits), [11, 2, -Infinity]);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expertsRead, placeExperts, touchProbability } from './experts.js';

test('experts are placed in runs sized by the shares', () => {
  assert.deepEqual(placeExperts(8, [1, 1]), [
    [0, 4],
    [4, 8],
  ]);
  assert.deepEqual(placeExperts(256, [3, 1]), [
    [0, 192],
    [192, 256],
  ]);
  assert.equal(placeExperts(2, [1, 1, 1]), undefined);
});

test('the chance a token needs a node follows from experts used per token', () => {
  // Two of eight experts used (Mixtral): a node with four of them is needed unless both picks are elsewhere.
  assert.ok(Math.abs(touchProbability(8, 4, 2) - (1 - (4 / 8) * (3 / 7))) < 1e-12);
  assert.equal(touchProbability(8, 0, 2), 0);
  assert.equal(touchProbability(8, 7, 2), 1);
  // One expert used: the chance is the node's part of the experts.
  assert.ok(Math.abs(touchProbability(128, 32, 1) - 0.25) < 1e-12);
});

test('a batch reads each expert once: one token reads used/E of them, many tokens nearly all', () => {
  assert.ok(Math.abs(expertsRead(256, 256, 8, 1) - 8) < 1e-9);
  assert.ok(Math.abs(expertsRead(256, 128, 8, 1) - 4) < 1e-9);
  assert.ok(expertsRead(256, 256, 8, 512) > 255);
  assert.equal(expertsRead(256, 0, 8, 4), 0);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WHOLE, heldBytes, stepWork } from './layer-work.js';
import type { LayerShape, ModelShape } from './types.js';

const dense: LayerShape = {
  attentionBytes: 200,
  kvProjectionBytes: 100,
  denseFfnBytes: 600,
  expertBytes: 0,
  experts: 0,
  expertsUsed: 0,
  sharedExpertBytes: 0,
  replicatedBytes: 10,
  activeParameters: 910,
  ffnWidth: 64,
  weightType: 'Q8_0',
};
const moe: LayerShape = {
  ...dense,
  denseFfnBytes: 0,
  expertBytes: 8000,
  experts: 8,
  expertsUsed: 2,
  sharedExpertBytes: 100,
  activeParameters: 2410,
};
const shape: ModelShape = {
  nEmbd: 32,
  nHead: 4,
  nKvHead: 2,
  headDim: 8,
  nVocab: 100,
  blockSize: 32,
  layers: [dense],
  headParameters: 3200,
  headWeightType: 'Q8_0',
};

test('a whole dense layer: held = read = every byte; 2 FLOPs per parameter', () => {
  assert.equal(heldBytes(dense, WHOLE), 910);
  const w = stepWork(shape, dense, 0, WHOLE, 1, 0);
  assert.equal(w.bytes, 910);
  assert.equal(w.flops, 2 * 910);
});

test('a tensor rank holds its heads, KV heads, columns and experts; replicated parts whole', () => {
  const half = { heads: 0.5, kv: 0.5, columns: 0.5, experts: 0.5, attention: true };
  assert.equal(heldBytes(dense, half), 100 + 50 + 10 + 300);
  // Half the experts, half the shared experts' columns.
  assert.equal(heldBytes(moe, half), 100 + 50 + 10 + 50 + 4000);
  // One token reads 2 of 8 experts: 1 of them, on average, among this rank's 4.
  assert.equal(stepWork(shape, moe, 0, half, 1, 0).bytes, 100 + 50 + 10 + 50 + 1000);
});

test('an expert node holds and reads only its experts; a batch reads more experts; context reads the KV cache', () => {
  const quarter = { heads: 0, kv: 0, columns: 1, experts: 0.25, attention: false };
  assert.equal(heldBytes(moe, quarter), 2000);
  const one = stepWork(shape, moe, 0, quarter, 1, 0);
  assert.ok(Math.abs(one.bytes - 0.5 * 1000) < 1e-9, String(one.bytes));
  const many = stepWork(shape, moe, 0, quarter, 64, 0);
  assert.ok(many.bytes > 1990 && many.bytes <= 2000);
  const ctx = stepWork(shape, dense, 16, WHOLE, 1, 100);
  assert.equal(ctx.bytes, 910 + 1600);
  assert.equal(ctx.flops, 2 * 910 + 4 * 4 * 8 * 100);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allReduce, allReduceSeconds, exchangeBytes } from './all-reduce.js';

const near = (a: number, b: number) => Math.abs(a - b) <= 1e-12 + 1e-9 * Math.abs(b);

test('exchange bytes: f32, f16 half, Q8_0 blocks 34 bytes per 32 values', () => {
  assert.equal(exchangeBytes(4096, 'f32'), 16384);
  assert.equal(exchangeBytes(4096, 'f16'), 8192);
  assert.equal(exchangeBytes(4096, 'q8'), 4352);
});

test('direct, ring and star costs', () => {
  const link = { latencySeconds: 1e-4, bytesPerSecond: 1e8 };
  const B = 1e5; // 1 ms on the wire
  assert.equal(allReduceSeconds('direct', 1, B, link), 0);
  assert.ok(near(allReduceSeconds('direct', 4, B, link), 1e-4 + 3e-3));
  assert.ok(near(allReduceSeconds('ring', 4, B, link), 6 * (1e-4 + 0.25e-3)));
  assert.ok(near(allReduceSeconds('star', 4, B, link), 2 * (1e-4 + 3e-3)));
  assert.ok(near(allReduceSeconds('star', 2, B, link), 2 * (1e-4 + 1e-3)));
});

test('auto: direct for small vectors, ring for large ones, and says which', () => {
  const link = { latencySeconds: 50e-6, bytesPerSecond: 1e9 };
  const small = allReduce(4, 16384, link);
  assert.equal(small.algorithm, 'direct');
  assert.ok(near(small.seconds, 50e-6 + (3 * 16384) / 1e9));
  const large = allReduce(8, 64 << 20, link);
  assert.equal(large.algorithm, 'ring');
  assert.ok(large.seconds < allReduceSeconds('direct', 8, 64 << 20, link));
  assert.equal(allReduce(4, 16384, link, 'star').algorithm, 'star');
});

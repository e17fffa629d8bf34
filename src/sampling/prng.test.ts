import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomSeed, Xoshiro128 } from './prng.js';

test('xoshiro128** matches the reference C implementation from a known state', () => {
  // First outputs of the authors' xoshiro128starstar.c started from s = {1, 2, 3, 4}.
  const g = Xoshiro128.fromState([1, 2, 3, 4]);
  const got = Array.from({ length: 5 }, () => g.nextUint32());
  assert.deepEqual(got, [11520, 0, 5927040, 70819200, 2031721883]);
});

test('the same seed gives the same stream; different seeds differ', () => {
  const a = new Xoshiro128(42);
  const b = new Xoshiro128(42);
  const c = new Xoshiro128(43);
  const sa = Array.from({ length: 50 }, () => a.nextUint32());
  const sb = Array.from({ length: 50 }, () => b.nextUint32());
  const sc = Array.from({ length: 50 }, () => c.nextUint32());
  assert.deepEqual(sa, sb);
  assert.notDeepEqual(sa, sc);
});

test('seeds that differ only above bit 32 give different streams', () => {
  const a = new Xoshiro128(7);
  const b = new Xoshiro128(7 + 2 ** 32);
  assert.notEqual(a.nextUint32(), b.nextUint32());
});

test('nextFloat is in [0, 1) and roughly uniform', () => {
  const g = new Xoshiro128(123);
  const bins = new Array<number>(10).fill(0);
  const n = 100_000;
  for (let i = 0; i < n; i++) {
    const x = g.nextFloat();
    assert.ok(x >= 0 && x < 1);
    bins[Math.floor(x * 10)]++;
  }
  // Each bin expects 10000 with sd ~95; 600 is over 6 sd.
  for (const count of bins) assert.ok(Math.abs(count - n / 10) < 600, `bin count ${count}`);
});

test('bad seeds are rejected; random seeds are safe integers', () => {
  assert.throws(() => new Xoshiro128(-1), RangeError);
  assert.throws(() => new Xoshiro128(1.5), RangeError);
  assert.throws(() => Xoshiro128.fromState([0, 0, 0, 0]), RangeError);
  const s = randomSeed();
  assert.ok(Number.isSafeInteger(s) && s >= 0);
});

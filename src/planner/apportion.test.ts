import { test } from 'node:test';
import assert from 'node:assert/strict';
import { apportion, cappedShares, proportionalCuts } from './apportion.js';

test('units follow the shares, nearest whole unit, at least one each', () => {
  assert.deepEqual(apportion(32, [1, 1]), [16, 16]);
  assert.deepEqual(apportion(32, [2, 1, 1]), [16, 8, 8]);
  // An uneven three-way split of 32 heads: cumulative points 10.67 and 21.33 round to 11 and 21.
  assert.deepEqual(apportion(32, [1, 1, 1]), [11, 10, 11]);
  assert.deepEqual(proportionalCuts(10, [100, 1, 1]), [0, 8, 9, 10]);
  assert.equal(apportion(2, [1, 1, 1]), undefined);
  assert.deepEqual(apportion(3, [1, 0, 1], 0), [2, 0, 1]);
});

test('capped shares: a rank that cannot hold its part passes the rest to the others by weight', () => {
  assert.deepEqual(cappedShares([1, 1], [1, 1]), [0.5, 0.5]);
  const s = cappedShares([2, 1, 1], [0.25, 1, 1])!;
  assert.ok(Math.abs(s[0] - 0.25) < 1e-12 && Math.abs(s[1] - 0.375) < 1e-12 && Math.abs(s[2] - 0.375) < 1e-12, String(s));
  assert.equal(cappedShares([1, 1], [0.4, 0.5]), undefined);
});

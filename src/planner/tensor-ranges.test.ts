import { test } from 'node:test';
import assert from 'node:assert/strict';
import { columnRanges, headRanges, splitAlignment } from './tensor-ranges.js';

test('column ranges land on 256-element units where there are enough, else 32, never below the block size', () => {
  assert.equal(splitAlignment(11008, 2), 256);
  assert.equal(splitAlignment(96, 2), 32);
  assert.deepEqual(columnRanges(11008, [1, 1]), [
    [0, 5632],
    [5632, 11008],
  ]);
  // A faster rank gets more columns: 43 units of 256 split 2:1.
  assert.deepEqual(columnRanges(11008, [2, 1]), [
    [0, 7424],
    [7424, 11008],
  ]);
  assert.deepEqual(columnRanges(100, [1, 1]), undefined, '100 columns have no 32-element boundary for two ranks');
  assert.deepEqual(columnRanges(96, [1, 1, 1], 32), [
    [0, 32],
    [32, 64],
    [64, 96],
  ]);
  assert.equal(columnRanges(512, [1, 1, 1], 256), undefined, 'two 256-blocks cannot serve three ranks');
});

test('an uneven three-rank head split keeps whole KV groups', () => {
  // Llama-3-8B attention: 32 heads of 128 in 8 KV groups of 4.
  const r = headRanges(32, 8, 128, [1, 1, 1])!;
  assert.deepEqual(
    r.map((x) => x.heads),
    [
      [0, 12],
      [12, 20],
      [20, 32],
    ],
  );
  assert.deepEqual(
    r.map((x) => x.kvHeads),
    [
      [0, 3],
      [3, 5],
      [5, 8],
    ],
  );
  // Shares follow speed: the first rank twice as fast.
  const fast = headRanges(32, 8, 128, [2, 1, 1])!;
  assert.deepEqual(
    fast.map((x) => x.heads[1] - x.heads[0]),
    [16, 8, 8],
  );
});

test('more ranks than KV heads: ranks share (replicate) a KV head, splitting its query heads', () => {
  // 8 query heads, 2 KV heads, 4 ranks: two ranks per group, each with 2 query heads of its group.
  const r = headRanges(8, 2, 64, [1, 1, 1, 1])!;
  assert.deepEqual(
    r.map((x) => [x.heads, x.kvHeads]),
    [
      [
        [0, 2],
        [0, 1],
      ],
      [
        [2, 4],
        [0, 1],
      ],
      [
        [4, 6],
        [1, 2],
      ],
      [
        [6, 8],
        [1, 2],
      ],
    ],
  );
  // Six ranks over 32 heads and 32 KV heads: any count works.
  assert.equal(headRanges(32, 32, 128, [1, 1, 1, 1, 1, 1])!.length, 6);
  assert.equal(headRanges(4, 1, 64, [1, 1, 1, 1, 1]), undefined, 'five ranks cannot share four heads');
});

/**
 * Which experts win a tie, and the order of the chosen, are those of llama.cpp's std::sort. The
 * expected orders below are what libstdc++'s std::sort gives for
 *   std::sort(idx.begin(), idx.end(), [&](int a, int b) { return s[a] > s[b]; });
 * (g++ -O2; printed by a ten-line C++ program over the same score patterns).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from '../../util/prng.js';
import { TopKScratch, sortIndicesDescending, topKDescending } from './expert-sort.js';

const PATTERNS: Record<number, (i: number) => number> = {
  0: (i) => (i * 7) % 5,
  1: (i) => ((i * i + 3 * i) % 6) * 0.5,
};

const STD_SORT: [number, number, number[]][] = [
  [16, 0, [2, 7, 12, 4, 9, 14, 1, 6, 11, 3, 8, 13, 0, 5, 10, 15]],
  [16, 1, [1, 2, 4, 5, 7, 8, 10, 11, 13, 14, 0, 3, 6, 9, 12, 15]],
  [17, 0, [2, 12, 7, 14, 4, 9, 1, 16, 11, 6, 8, 13, 3, 10, 5, 15, 0]],
  [17, 1, [8, 16, 14, 13, 11, 10, 7, 5, 4, 2, 1, 6, 0, 9, 12, 3, 15]],
  [
    40,
    0,
    [
      17, 2, 37, 22, 7, 32, 27, 12, 9, 24, 14, 29, 19, 34, 4, 39, 21, 1, 26, 31, 36, 16, 11, 6, 18, 23, 38, 13, 28, 3, 8, 33, 0, 20, 5, 35,
      10, 30, 15, 25,
    ],
  ],
  [
    40,
    1,
    [
      1, 38, 37, 35, 34, 32, 31, 29, 28, 26, 25, 23, 22, 20, 19, 17, 16, 14, 13, 2, 11, 10, 4, 8, 7, 5, 39, 0, 36, 3, 33, 6, 30, 27, 9, 24,
      12, 21, 18, 15,
    ],
  ],
  [
    64,
    0,
    [
      47, 32, 27, 37, 22, 42, 17, 12, 52, 62, 7, 2, 57, 44, 34, 29, 39, 24, 4, 59, 9, 19, 49, 14, 54, 46, 41, 1, 61, 36, 51, 56, 6, 26, 11,
      21, 31, 16, 48, 63, 3, 58, 8, 53, 13, 18, 33, 43, 23, 28, 38, 55, 0, 30, 60, 5, 35, 45, 10, 25, 40, 50, 15, 20,
    ],
  ],
  [
    64,
    1,
    [
      44, 26, 28, 29, 31, 32, 34, 35, 37, 38, 40, 41, 43, 1, 46, 47, 49, 50, 52, 53, 55, 56, 58, 59, 61, 62, 19, 14, 13, 25, 16, 5, 17, 7,
      4, 20, 11, 8, 22, 2, 23, 10, 51, 45, 54, 6, 57, 3, 60, 0, 63, 9, 48, 12, 42, 15, 39, 18, 36, 33, 21, 30, 24, 27,
    ],
  ],
];

function scores(n: number, pat: number): Float32Array {
  return new Float32Array(n).map((_, i) => PATTERNS[pat](i));
}

test("tied scores sort exactly as libstdc++'s std::sort sorts them (insertion sort up to 16, introsort beyond)", () => {
  for (const [n, pat, expected] of STD_SORT) {
    const idx = new Int32Array(n).map((_, i) => i);
    sortIndicesDescending(idx, n, scores(n, pat));
    assert.deepEqual([...idx], expected, `n=${n}, pattern ${pat}`);
  }
});

test('the top k are the first k of that order, ties or not', () => {
  for (const [n, pat, expected] of STD_SORT) {
    for (const k of [1, 2, 4, 8, n]) {
      const out = new Int32Array(k + 3).fill(-1);
      topKDescending(scores(n, pat), n, k, out, 3, new TopKScratch(n, k));
      assert.deepEqual([...out.subarray(3)], expected.slice(0, k), `n=${n}, pattern ${pat}, k=${k}`);
    }
  }
  // Untied scores (the fast path) against a plain sort.
  const rng = new Prng(5);
  for (const n of [8, 60, 128, 256]) {
    const s = new Float32Array(n).map(() => rng.next() * 4 - 2);
    const k = 8;
    const out = new Int32Array(k);
    topKDescending(s, n, k, out, 0, new TopKScratch(n, k));
    const plain = [...s.keys()].sort((a, b) => s[b] - s[a]).slice(0, k);
    assert.deepEqual([...out], plain, `n=${n}`);
  }
});

test('a long sorted run and a reversed one (introsort depth, heap sort fallback) still sort correctly', () => {
  for (const n of [100, 300]) {
    for (const s of [new Float32Array(n).map((_, i) => i % 3), new Float32Array(n).map((_, i) => -i), new Float32Array(n).fill(1)]) {
      const idx = new Int32Array(n).map((_, i) => i);
      sortIndicesDescending(idx, n, s);
      assert.deepEqual(
        [...idx].sort((a, b) => a - b),
        [...Array(n).keys()],
        'a permutation',
      );
      for (let i = 1; i < n; i++) assert.ok(s[idx[i - 1]] >= s[idx[i]], `descending at ${i}`);
    }
  }
});

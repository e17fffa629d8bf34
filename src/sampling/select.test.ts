import { test } from 'node:test';
import assert from 'node:assert/strict';
import { argmax, selectTop, sortByRank } from './select.js';

/** Reference ranking by a full sort: higher value first, ties to the lower id. */
function sortedIds(values: ArrayLike<number>): number[] {
  const key = (i: number): number => (Number.isNaN(values[i]) ? -Infinity : values[i]);
  return Array.from({ length: values.length }, (_, i) => i).sort((a, b) => key(b) - key(a) || a - b);
}

test('argmax picks the largest value, ties to the lowest id', () => {
  assert.equal(argmax([1, 5, 3]), 1);
  assert.equal(argmax([2, 7, 7, 1]), 1);
  assert.equal(argmax([NaN, -1, -2]), 1);
  assert.equal(argmax([-Infinity, -Infinity]), 0);
  assert.throws(() => argmax([]), RangeError);
});

test('selectTop agrees with a full sort on random data with ties', () => {
  let state = 99;
  const rand = (): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state / 2 ** 32;
  };
  for (const n of [1, 2, 7, 100, 1000]) {
    // Values on a coarse grid so ties are common.
    const values = Float32Array.from({ length: n }, () => Math.round(rand() * 20) / 4);
    const expected = sortedIds(values);
    for (const k of [1, 3, 40, n, n + 5]) {
      const out = new Int32Array(Math.min(k, n));
      const m = selectTop(values, k, out);
      assert.equal(m, Math.min(k, n));
      assert.deepEqual(Array.from(out.subarray(0, m)), expected.slice(0, m), `n=${n} k=${k}`);
    }
  }
});

test('selectTop ranks NaN last and handles k = 0', () => {
  const values = [NaN, 1, NaN, 3];
  const out = new Int32Array(4);
  assert.equal(selectTop(values, 4, out), 4);
  assert.deepEqual(Array.from(out), [3, 1, 0, 2]);
  assert.equal(selectTop(values, 0, out), 0);
});

test('sortByRank orders ids as a full sort does: ties, signed zeros, infinities, NaN, both key paths', () => {
  let state = 7;
  const rand = (): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state / 2 ** 32;
  };
  const special = [0, -0, Infinity, -Infinity, Number.NaN, 1e-45, -1e-45, 3.4e38, -3.4e38];
  // 2^21 + 5 entries take the comparator; the others the numeric keys.
  for (const n of [1, 9, 500, 20000, (1 << 21) + 5]) {
    const values = Float32Array.from({ length: n }, (_, i) =>
      i < special.length ? special[i] : rand() < 0.05 ? special[Math.floor(rand() * special.length)] : Math.round(rand() * 40 - 20) / 8,
    );
    const expected = sortedIds(values);
    // A subset of ids in scrambled order, as a caller hands them in.
    const chosen = [...new Set(Array.from({ length: Math.min(n, 3000) }, (_, j) => (j * 7919 + 13) % n))];
    const ids = Int32Array.from(chosen);
    sortByRank(values, ids, ids.length, new Float64Array(ids.length));
    const picked = new Set(chosen);
    const want = expected.filter((id) => picked.has(id));
    assert.deepEqual(Array.from(ids), want, `n=${n}`);
  }
});

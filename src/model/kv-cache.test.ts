/**
 * A KV cache whose layers have different row shapes (as latent attention and mixed layer kinds
 * will give): sizes, and prefix copies, snapshots and restores that keep every layer's rows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GgmlType } from '../gguf/ggml-types.js';
import { KvCache } from './kv-cache.js';

const ROWS = [
  { k: 8, v: 8 },
  { k: 12, v: 0 },
  { k: 4, v: 6 },
];

function fill(kv: KvCache, slot: number, seed: number): void {
  for (let i = 0; i < ROWS.length; i++) {
    kv.keys(i, slot).forEach((_, j, a) => (a[j] = (seed + 3 * i + j) & 0xff));
    kv.values(i, slot).forEach((_, j, a) => (a[j] = (seed + 7 * i + 5 * j) & 0xff));
  }
}

const firstRows = (kv: KvCache, slot: number, n: number) =>
  ROWS.map((r, i) => [kv.keys(i, slot).slice(0, n * r.k * 4), kv.values(i, slot).slice(0, n * r.v * 4)]);

test('each layer holds its own row shape; bytes add up per layer', () => {
  const kv = new KvCache(ROWS, 3, 10, GgmlType.F32);
  assert.equal(kv.bytes, 3 * 10 * 4 * (16 + 12 + 10));
  ROWS.forEach((r, i) => {
    assert.equal(kv.keys(i, 2).length, 10 * r.k * 4);
    assert.equal(kv.values(i, 2).length, 10 * r.v * 4);
  });
  assert.equal(new KvCache(ROWS, 1, 10, GgmlType.F16).bytes, 10 * 2 * (16 + 12 + 10));
});

test("prefix copies, snapshots and restores move every layer's rows, and only the first n positions", () => {
  const kv = new KvCache(ROWS, 3, 10, GgmlType.F32);
  fill(kv, 0, 1);
  fill(kv, 1, 100);
  const before = firstRows(kv, 1, 10);
  kv.copyPrefix(0, 1, 4);
  assert.deepEqual(firstRows(kv, 1, 4), firstRows(kv, 0, 4));
  ROWS.forEach((r, i) =>
    assert.deepEqual(kv.keys(i, 1).slice(4 * r.k * 4), before[i][0].slice(4 * r.k * 4), `layer ${i} beyond the prefix`),
  );

  const snap = kv.snapshot(0, 6);
  assert.deepEqual(
    snap.layers.map((l) => l.length),
    ROWS.map((r) => 6 * (r.k + r.v) * 4),
  );
  fill(kv, 2, 50);
  kv.restore(snap, 2);
  assert.deepEqual(firstRows(kv, 2, 6), firstRows(kv, 0, 6));

  const other = new KvCache([ROWS[0], ROWS[0], ROWS[2]], 1, 10, GgmlType.F32);
  assert.throws(() => other.restore(snap, 0), RangeError, 'a snapshot of other row shapes does not fit');
});

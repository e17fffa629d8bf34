/**
 * A KV cache whose layers have different row shapes (as latent attention and mixed layer kinds
 * will give): sizes, and prefix copies, snapshots and restores that keep every layer's rows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GgmlType } from '../gguf/ggml-types.js';
import { rearrangeKv, rearrangeKvLayer } from '../kernels/kv-layout.js';
import { KvCache } from './kv-cache.js';

const ROWS = [
  { k: 8, v: 8, heads: 2 },
  { k: 12, v: 0, heads: 1 },
  { k: 4, v: 6, heads: 2 },
];

function fill(kv: KvCache, slot: number, seed: number): void {
  for (let i = 0; i < ROWS.length; i++) {
    kv.keys(i, slot).forEach((_, j, a) => (a[j] = (seed + 3 * i + j) & 0xff));
    kv.values(i, slot).forEach((_, j, a) => (a[j] = (seed + 7 * i + 5 * j) & 0xff));
  }
}

/** The first n positions of a part stored head by head (`elems` per position, stretches of `ctx` positions), each head's in turn. */
function firstOfHeads(buf: Uint8Array, elems: number, heads: number, ctx: number, n: number): number[] {
  const head = (elems / heads) * 4;
  return Array.from({ length: heads }, (_, h) => [...buf.subarray(h * ctx * head, h * ctx * head + n * head)]).flat();
}

const firstRows = (kv: KvCache, slot: number, n: number) =>
  ROWS.map((r, i) => [firstOfHeads(kv.keys(i, slot), r.k, r.heads, kv.ctxPerSlot, n), firstOfHeads(kv.values(i, slot), r.v, r.heads, kv.ctxPerSlot, n)]);

/** Positions [n, ctx) of every head of every layer's keys. */
const beyond = (kv: KvCache, slot: number, n: number) =>
  ROWS.map((r, i) => {
    const head = (r.k / r.heads) * 4;
    const all = kv.keys(i, slot);
    return Array.from({ length: r.heads }, (_, h) => [...all.subarray((h * kv.ctxPerSlot + n) * head, (h + 1) * kv.ctxPerSlot * head)]).flat();
  });

test('each layer holds its own row shape; bytes add up per layer', () => {
  const kv = new KvCache(ROWS, 3, 10, GgmlType.F32);
  assert.equal(kv.bytes, 3 * 10 * 4 * (16 + 12 + 10));
  ROWS.forEach((r, i) => {
    assert.equal(kv.keys(i, 2).length, 10 * r.k * 4);
    assert.equal(kv.values(i, 2).length, 10 * r.v * 4);
  });
  assert.equal(new KvCache(ROWS, 1, 10, GgmlType.F16).bytes, 10 * 2 * (16 + 12 + 10));
});

test('the layers share arenas from the allocator given, each part of each slot a stretch of its own', () => {
  const asked: number[] = [];
  const kv = new KvCache(ROWS, 3, 10, GgmlType.F32, { allocate: (bytes) => (asked.push(bytes), new ArrayBuffer(bytes)) });
  assert.equal(asked.length, 1, 'one arena for a small cache');
  const views = ROWS.flatMap((_, i) => [0, 1, 2].flatMap((s) => [kv.keys(i, s), kv.values(i, s)]));
  assert.ok(views.every((v) => v.buffer === views[0].buffer));
  // Written in turn, no view's bytes land in another's.
  views.forEach((v, n) => v.fill(n + 1));
  views.forEach((v, n) => assert.ok(v.every((b) => b === n + 1), `view ${n} kept its bytes`));
  assert.ok(asked[0] >= kv.bytes);
  // A snapshot's layers come from the allocator too, one arena for all, and restore as they were.
  const before = asked.length;
  const snap = kv.snapshot(1, 7);
  assert.equal(asked.length, before + 1);
  assert.ok(snap.layers.every((l) => l.buffer === snap.layers[0].buffer));
  kv.restore(snap, 2);
  assert.deepEqual(firstRows(kv, 2, 7), firstRows(kv, 1, 7));
  // An allocator that declines (undefined) leaves ordinary memory.
  const plain = new KvCache(ROWS, 1, 10, GgmlType.F16, { allocate: () => undefined });
  assert.equal(plain.keys(0, 0).length, 10 * 8 * 2);
  assert.ok(plain.keys(0, 0).every((b) => b === 0));
});

test("a snapshot's arenas are faulted in before the copy fills them, the cache's own are not", () => {
  const populated: { arena: ArrayBuffer; zero: boolean }[] = [];
  const populate = (arena: ArrayBuffer): void => {
    populated.push({ arena, zero: new Uint8Array(arena).every((b) => b === 0) });
  };
  const kv = new KvCache(ROWS, 2, 10, GgmlType.F32, { allocate: (bytes) => new ArrayBuffer(bytes), populate });
  assert.equal(populated.length, 0, 'the cache itself is faulted in by the load, where it should be');
  kv.keys(0, 0).fill(3);
  const snap = kv.snapshot(0, 6);
  assert.equal(populated.length, 1);
  assert.equal(populated[0].arena, snap.layers[0].buffer);
  assert.ok(populated[0].zero, 'populated before the copy');
  assert.ok(snap.layers[0].some((b) => b === 3));
});

test("prefix copies, snapshots and restores move every layer's rows, and only the first n positions", () => {
  const kv = new KvCache(ROWS, 3, 10, GgmlType.F32);
  fill(kv, 0, 1);
  fill(kv, 1, 100);
  const before = beyond(kv, 1, 4);
  kv.copyPrefix(0, 1, 4);
  assert.deepEqual(firstRows(kv, 1, 4), firstRows(kv, 0, 4));
  assert.notDeepEqual(firstRows(kv, 1, 5), firstRows(kv, 0, 5), 'the fifth position was not copied');
  assert.deepEqual(beyond(kv, 1, 4), before, 'every head beyond the prefix untouched');

  const snap = kv.snapshot(0, 6);
  assert.deepEqual(
    snap.layers.map((l) => l.length),
    ROWS.map((r) => 6 * (r.k + r.v) * 4),
  );
  fill(kv, 2, 50);
  kv.restore(snap, 2);
  assert.deepEqual(firstRows(kv, 2, 6), firstRows(kv, 0, 6));

  // The same positions with every head of a position side by side (a GPU cache's snapshot, or a
  // prompt-cache file of an earlier version) restore to the same cache.
  const asRows = {
    ...snap,
    layout: 'rows' as const,
    layers: snap.layers.map((l, i) => rearrangeKvLayer(l, 6, ROWS[i].heads, (ROWS[i].k / ROWS[i].heads) * 4, (ROWS[i].v / ROWS[i].heads) * 4, 'heads', 'rows')),
  };
  assert.notDeepEqual(asRows.layers[0], snap.layers[0], 'two heads: the orders differ');
  fill(kv, 2, 77);
  kv.restore(asRows, 2);
  assert.deepEqual(firstRows(kv, 2, 6), firstRows(kv, 0, 6));

  const other = new KvCache([ROWS[0], ROWS[0], ROWS[2]], 1, 10, GgmlType.F32);
  assert.throws(() => other.restore(snap, 0), RangeError, 'a snapshot of other row shapes does not fit');
});

test('rearrangeKv moves each head of each position between the two orders and back', () => {
  // 3 positions of 2 heads of 2 bytes: rows [p0h0 p0h1 p1h0 p1h1 p2h0 p2h1] <-> heads [p0h0 p1h0 p2h0 p0h1 p1h1 p2h1].
  const rows = Uint8Array.from({ length: 12 }, (_, i) => i);
  const heads = rearrangeKv(rows, 3, 2, 2, 'rows', 'heads');
  assert.deepEqual([...heads], [0, 1, 4, 5, 8, 9, 2, 3, 6, 7, 10, 11]);
  assert.deepEqual([...rearrangeKv(heads, 3, 2, 2, 'heads', 'rows')], [...rows]);
  assert.equal(rearrangeKv(rows, 3, 1, 4, 'rows', 'heads'), rows, 'one head: the same bytes');
  assert.throws(() => rearrangeKv(rows, 4, 2, 2, 'rows', 'heads'), RangeError);
});

test('rows that do not hold whole heads are refused', () => {
  assert.throws(() => new KvCache([{ k: 9, v: 9, heads: 2 }], 1, 4, GgmlType.F32), /whole heads/);
  assert.throws(() => new KvCache([{ k: 64, v: 64, heads: 4 }], 1, 4, GgmlType.Q8_0), /whole blocks of 32/);
});

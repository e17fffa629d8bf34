/** Where a KV cache's stretches go: in order, aligned, arenas begun only where the next would overflow. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { layoutArenas } from './kv-arenas.js';

test('stretches go one after another, each at a multiple of the alignment', () => {
  const { arenas, places } = layoutArenas([100, 4096, 0, 5000, 1], 1 << 20, 4096);
  assert.deepEqual(arenas, [4 * 4096 + 1]);
  assert.deepEqual(
    places.map((p) => p.offset),
    [0, 4096, 8192, 8192, 16384],
  );
  assert.ok(places.every((p) => p.arena === 0));
});

test('a stretch that would pass the limit begins a new arena; one larger than the limit gets its own', () => {
  const { arenas, places } = layoutArenas([600, 300, 200, 5000, 100], 1024, 256);
  // 300 at 768 would end at 1068; 200 fits after 300 at 512; 100 does not fit after 5000.
  assert.deepEqual(places, [
    { arena: 0, offset: 0 },
    { arena: 1, offset: 0 },
    { arena: 1, offset: 512 },
    { arena: 2, offset: 0 },
    { arena: 3, offset: 0 },
  ]);
  assert.deepEqual(arenas, [600, 712, 5000, 100]);
  // No stretch overlaps another or leaves its arena.
  places.forEach((p, i) => assert.ok(p.offset + [600, 300, 200, 5000, 100][i] <= arenas[p.arena]));
});

test('no stretches, no arenas', () => {
  assert.deepEqual(layoutArenas([]), { arenas: [], places: [] });
});

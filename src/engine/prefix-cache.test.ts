import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PrefixCache } from './prefix-cache.js';
import type { ForwardRunner } from './runner.js';
import { CairnError } from '../util/errors.js';

/** A runner whose saves fail with `err`, or hold 100 bytes when it is undefined. */
function runnerSaving(err?: Error, dropped: number[] = []): ForwardRunner {
  const runner: Partial<ForwardRunner> = {
    saveSlot: async () => {
      if (err) throw err;
      return 100;
    },
    dropSaved: async (key: number) => {
      dropped.push(key);
    },
  };
  return runner as ForwardRunner;
}

const tokens = Array.from({ length: 32 }, (_, i) => i);

test('a save a stage refuses (its memory bound) leaves the prefix uncached instead of failing the request', async () => {
  const dropped: number[] = [];
  const cache = new PrefixCache(runnerSaving(new CairnError('BAD_ARGUMENT', 'KV prefix 1 refused: more than the node offers'), dropped), { budgetBytes: 1 << 20 });
  await cache.save(0, tokens);
  assert.equal(cache.size, 0);
  assert.equal(cache.bytes, 0);
  assert.equal(dropped.length, 1, 'what part of it was kept is dropped');
});

test('a save that fails for another reason (a lost node) still fails, so the engine can re-plan', async () => {
  const cache = new PrefixCache(runnerSaving(new CairnError('CLUSTER_CLOSED', 'node gone')), { budgetBytes: 1 << 20 });
  await assert.rejects(cache.save(0, tokens), /node gone/);
});

test('a save that succeeds is cached', async () => {
  const cache = new PrefixCache(runnerSaving(), { budgetBytes: 1 << 20 });
  await cache.save(0, tokens);
  assert.equal(cache.size, 1);
  assert.equal(cache.bytes, 100);
});

test('the entry about to be loaded is not evicted to make room for the slot it goes into', async () => {
  const dropped: number[] = [];
  const cache = new PrefixCache(runnerSaving(undefined, dropped), { budgetBytes: 150 });
  await cache.save(0, tokens);
  const kept = cache.best(tokens)!;
  // The slot's other prefix does not fit beside it: that one goes, not the entry being loaded.
  await cache.save(0, [...tokens].reverse(), kept.key);
  assert.equal(cache.best(tokens)?.key, kept.key);
  assert.equal(cache.bytes, 100);
  assert.equal(dropped.length, 1);
  // Unprotected, the older entry makes room as before.
  await cache.save(0, [...tokens].reverse());
  assert.equal(cache.best(tokens)?.length ?? 0, 0);
  assert.equal(cache.bytes, 100);
});

test('a prefix larger than the budget is saved as far as it fits, where the runner knows the size beforehand', async () => {
  const saved: number[] = [];
  const runner = {
    savedBytes: (n: number) => 16 * Math.ceil(n / 16) * 10,
    saveSlot: async (_slot: number, n: number) => {
      saved.push(n);
      return 16 * Math.ceil(n / 16) * 10;
    },
    dropSaved: async () => {},
  } as Partial<ForwardRunner> as ForwardRunner;
  const cache = new PrefixCache(runner, { budgetBytes: 500 });
  const long = Array.from({ length: 100 }, (_, i) => i);
  await cache.save(0, long);
  assert.deepEqual(saved, [48], 'only what fits was copied (48 positions: 480 bytes; 49 would take 640)');
  assert.equal(cache.best(long)?.length, 48);
});

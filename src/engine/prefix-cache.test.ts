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

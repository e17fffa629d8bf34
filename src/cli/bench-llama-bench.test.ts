/** llama-bench's time allowance grows with the depth it fills. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { llamaBenchTimeoutMs } from './bench-llama-bench.js';

test('a llama-bench run may take 30 minutes, and 2 more per 1024 tokens of depth', () => {
  assert.equal(llamaBenchTimeoutMs(0), 30 * 60_000);
  assert.equal(llamaBenchTimeoutMs(4096), 38 * 60_000);
  assert.ok(llamaBenchTimeoutMs(32768) >= 90 * 60_000, 'a 32k fill, which took over 30 minutes here, fits');
});

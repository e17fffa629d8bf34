/** This machine's sample: a load share between 0 and 1 (or null), power null or not negative, memory. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MachineSampler } from './machine.js';

test('load, power and memory of this machine are in range', async () => {
  const m = new MachineSampler();
  await new Promise((r) => setTimeout(r, 50));
  const s = m.sample();
  assert.ok(s.cpuLoad === null || (s.cpuLoad >= 0 && s.cpuLoad <= 1), `${s.cpuLoad}`);
  assert.ok(s.powerWatts === null || s.powerWatts >= 0, `${s.powerWatts}`);
  assert.ok(s.totalMemoryBytes > 0 && s.freeMemoryBytes <= s.totalMemoryBytes);
});

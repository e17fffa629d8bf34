/** Terminal number formats: three significant digits, and never an exponent (1010 MiB, not 1.01e+3). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, formatCount } from './format.js';

test('formatBytes: units of 1024, no exponent between 1000 and 1023 of a unit', () => {
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.50 KiB');
  assert.equal(formatBytes(723 * 2 ** 20), '723 MiB');
  assert.equal(formatBytes(1010 * 2 ** 20), '1010 MiB');
  assert.equal(formatBytes(12.34 * 2 ** 30), '12.3 GiB');
});

test('formatCount: units of 1000, a count that rounds up to 1000 stays plain', () => {
  assert.equal(formatCount(999), '999');
  assert.equal(formatCount(1234), '1.23K');
  assert.equal(formatCount(999_600), '1000K');
  assert.equal(formatCount(45_600_000), '45.6M');
});

/**
 * The free memory a load may commit: what the OS reports, and no more than a cgroup limit leaves
 * (a container's limit, which os.freemem does not see).
 */
import assert from 'node:assert/strict';
import { freemem } from 'node:os';
import { test } from 'node:test';
import { freeMemoryBytes } from './free-memory.js';

/** Runs fn with process.constrainedMemory reporting `limit`. */
function withLimit<T>(limit: number | undefined, fn: () => T): T {
  const original = Object.getOwnPropertyDescriptor(process, 'constrainedMemory');
  Object.defineProperty(process, 'constrainedMemory', { value: () => limit, configurable: true, writable: true });
  try {
    return fn();
  } finally {
    if (original) Object.defineProperty(process, 'constrainedMemory', original);
    else delete (process as { constrainedMemory?: unknown }).constrainedMemory;
  }
}

test('without a limit (none, 0, or 2^64) it is what the OS reports free', () => {
  for (const limit of [undefined, 0, 2 ** 64]) {
    const got = withLimit(limit, freeMemoryBytes);
    assert.ok(Math.abs(got - freemem()) < 256 * 2 ** 20, `${limit}: ${got} against ${freemem()}`);
  }
});

test('under a limit it is what the limit leaves above the resident set, never below 0', () => {
  const rss = process.memoryUsage.rss();
  const leaves = withLimit(rss + 64 * 2 ** 20, freeMemoryBytes);
  assert.ok(leaves <= 64 * 2 ** 20 && leaves > 32 * 2 ** 20, `${leaves}`);
  assert.equal(withLimit(rss / 2, freeMemoryBytes), 0);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_FLOPS_PER_BYTE, machineShare, ratesOf, workSeconds } from './rates.js';
import type { NodeInfo } from './types.js';

const n = (id: string, extra: Partial<NodeInfo> = {}): NodeInfo => ({ id, memoryBytes: 1e9, bytesPerSecond: 10e9, ...extra });

test('nodes on one machine share it while both compute, in proportion to their cores', () => {
  const a = n('a', { machine: 'box', cores: 1 });
  const b = n('b', { machine: 'box', cores: 1 });
  const c = n('c', { machine: 'other' });
  assert.equal(machineShare(a, [a, b, c]), 0.5);
  assert.equal(machineShare(a, [a, c]), 1, 'alone on its machine');
  assert.equal(machineShare(c, [a, b, c]), 1);
  const big = n('big', { machine: 'm', cores: 3 });
  const small = n('small', { machine: 'm', cores: 1 });
  assert.equal(machineShare(big, [big, small]), 0.75);
  assert.equal(ratesOf(a, [a, b]).read('Q8_0'), 5e9);
  assert.equal(ratesOf(a, [a, b]).flops, 5e9 * DEFAULT_FLOPS_PER_BYTE);
});

test("where the machine's own speed is known, nodes on it are slowed only as far as their speeds exceed it", () => {
  // Two one-thread nodes of 9 GB/s on a box that reads 15 GB/s with all its cores: each keeps 15/18.
  const a = n('a', { machine: 'box', cores: 1, bytesPerSecond: 9e9, machineBytesPerSecond: 15e9 });
  const b = n('b', { machine: 'box', cores: 1, bytesPerSecond: 9e9, machineBytesPerSecond: 15e9 });
  assert.ok(Math.abs(machineShare(a, [a, b]) - 15 / 18) < 1e-12);
  // Together below the machine: nothing shared that either lacks.
  const slow = n('slow', { machine: 'box', bytesPerSecond: 4e9, machineBytesPerSecond: 15e9 });
  assert.equal(machineShare(slow, [slow, a]), 1);
  // Two nodes that each use the whole machine (all its cores): half each, as by cores.
  const w1 = n('w1', { machine: 'm', cores: 2, bytesPerSecond: 15e9, machineBytesPerSecond: 15e9 });
  const w2 = n('w2', { machine: 'm', cores: 2, bytesPerSecond: 15e9, machineBytesPerSecond: 15e9 });
  assert.equal(machineShare(w1, [w1, w2]), 0.5);
  // One node that does not know its machine's speed: the rule by cores for all of them.
  const old = n('old', { machine: 'box', cores: 1, bytesPerSecond: 9e9 });
  assert.equal(machineShare(a, [a, old]), 0.5);
});

test('read speed by weight type, else the node speed; work is the slower of reading and computing', () => {
  const r = ratesOf(n('a', { bytesPerSecondByType: { Q4_K: 5e9 }, flopsPerSecond: 1e11 }));
  assert.equal(r.read('Q4_K'), 5e9);
  assert.equal(r.read('Q8_0'), 10e9);
  // 1 GB at 10 GB/s = 0.1 s; 2e9 FLOPs at 1e11 = 0.02 s: memory-bound.
  assert.equal(workSeconds(r, 'Q8_0', 1e9, 2e9), 0.1);
  // The same bytes for 512 tokens: 1.024e12 FLOPs = 10.24 s: compute-bound.
  assert.ok(Math.abs(workSeconds(r, 'Q8_0', 1e9, 512 * 2e9) - 10.24) < 1e-9);
});

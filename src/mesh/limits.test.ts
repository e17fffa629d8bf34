/**
 * Frame limits follow the loaded model: what carries a step's activations (forward frames, partial
 * sums, expert requests and their answers) may be as large as a step's tokens need, on whichever
 * side receives it; everything else stays small. (A group's answers of a long prompt once exceeded
 * the small limit and broke every plan.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameFlags } from '../cluster/index.js';
import { coordinatorReceiveLimit, nodeReceiveLimit, type StageSizes } from './limits.js';
import { MeshFrame } from './protocol.js';

const sizes: StageSizes = { maxBatch: 512, nEmbd: 4096, nVocab: 151936, slots: 4, kvBytesPerSlot: 1 << 26 };
const step = sizes.maxBatch * sizes.nEmbd * 4;
const response = FrameFlags.response;

test("a node takes a whole step's activations in forward frames, partial sums, expert requests and expert answers", () => {
  assert.ok(nodeReceiveLimit(MeshFrame.forward, 0, sizes) >= step);
  assert.ok(nodeReceiveLimit(MeshFrame.partial, 0, sizes) >= step);
  assert.ok(nodeReceiveLimit(MeshFrame.experts, 0, sizes) >= step + sizes.maxBatch * 8 * 8, 'inputs plus 8 experts and weights a token');
  assert.ok(nodeReceiveLimit(MeshFrame.experts, response, sizes) >= step);
  // Before a shard is loaded no activations (a forward frame's head at most), and anything else small.
  for (const type of [MeshFrame.forward, MeshFrame.partial, MeshFrame.experts]) assert.ok(nodeReceiveLimit(type, 0, undefined) <= 2 << 20);
  assert.ok(nodeReceiveLimit(MeshFrame.experts, response, undefined) <= 64 * 1024);
  assert.ok(nodeReceiveLimit(MeshFrame.seqEnd, 0, sizes) <= 64 * 1024);
  assert.ok(nodeReceiveLimit(MeshFrame.forward, response, sizes) <= 64 * 1024);
});

test("the coordinator, as rank 0 of a group, takes a whole step's partial sums and expert answers", () => {
  assert.ok(coordinatorReceiveLimit(MeshFrame.partial, 0, sizes) >= step);
  assert.ok(coordinatorReceiveLimit(MeshFrame.experts, response, sizes) >= step);
  assert.ok(coordinatorReceiveLimit(MeshFrame.result, 0, sizes) >= sizes.slots * sizes.nVocab * 4);
  assert.ok(coordinatorReceiveLimit(MeshFrame.kv, response, sizes) >= sizes.kvBytesPerSlot);
  assert.ok(coordinatorReceiveLimit(MeshFrame.forward, 0, sizes) <= 64 * 1024);
  assert.ok(coordinatorReceiveLimit(MeshFrame.experts, 0, sizes) <= 64 * 1024, 'nodes send the coordinator no expert requests');
});

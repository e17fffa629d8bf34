import { test } from 'node:test';
import assert from 'node:assert/strict';
import { groupStep, makeGroup } from './group.js';
import { scoreGroups } from './score.js';
import type { ModelMeta, NodeInfo, PlanRequest } from './types.js';

const near = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));
const model: ModelMeta = {
  nLayer: 4,
  layerBytes: Array(4).fill(100e6),
  layerActiveBytes: Array(4).fill(100e6),
  embedBytes: 0,
  headBytes: 0,
  headActiveBytes: 0,
  kvBytesPerToken: Array(4).fill(0),
  activationBytesPerToken: 4096,
  workingBytes: 0,
};
const node = (id: string): NodeInfo => ({ id, memoryBytes: 1e9, bytesPerSecond: 1e9, flopsPerSecond: 1e12, stepOverheadSeconds: 1e-3 });
const nodes = [node('a'), node('b')];
const req = (extra: Partial<PlanRequest> = {}): PlanRequest => ({
  model,
  nodes,
  links: [],
  kvTokens: 0,
  defaultLink: { latencySeconds: 1e-4, bytesPerSecond: 1e8 },
  ...extra,
});

test('one sequence: every stage in turn, the hidden state forward and the token id back', () => {
  const r = req({ batch: 1 });
  const groups = [makeGroup(r, [nodes[0]], 'tensor', 0, 2), makeGroup(r, [nodes[1]], 'tensor', 2, 4)];
  const c = scoreGroups(r, 'pipeline', 'pipeline x2', groups);
  const stage = 0.2 + 1e-3;
  const forward = 1e-4 + 8192 / 1e8; // f32: twice the f16 bytes
  const back = 1e-4 + 4 / 1e8;
  assert.equal(c.activationDtype, 'f32');
  assert.ok(near(1 / c.decodeTokensPerSecond, 2 * stage + forward + back), String(1 / c.decodeTokensPerSecond));
  assert.ok(near(c.breakdown.compute, 0.4) && near(c.breakdown.overhead, 2e-3));
  assert.deepEqual(
    c.stages.map((s) => [s.nodeId, s.layerStart, s.layerEnd, s.stage]),
    [
      ['a', 0, 2, 0],
      ['b', 2, 4, 1],
    ],
  );
});

test('many sequences: micro-batches overlap, bounded by the busiest stage', () => {
  const r = req({ batch: 8 });
  const groups = [makeGroup(r, [nodes[0]], 'tensor', 0, 2), makeGroup(r, [nodes[1]], 'tensor', 2, 4)];
  const c = scoreGroups(r, 'pipeline', 'pipeline x2', groups);
  // Two micro-batches of 4: each stage reads its 200 MB once per micro-batch.
  const t = groupStep(r, groups[0], 4, nodes).seconds;
  const hop = 1e-4 + (4 * 8192) / 1e8;
  assert.ok(near(c.aggregateTokensPerSecond, 8 / (2 * (t + hop))), `${c.aggregateTokensPerSecond}`);
  assert.ok(c.aggregateTokensPerSecond > 7 * c.decodeTokensPerSecond);
});

test('f16 hidden states where the f32 bytes would cost over 5% of a token', () => {
  const slow = req({ batch: 1, defaultLink: { latencySeconds: 1e-4, bytesPerSecond: 1e5 } });
  const groups = [makeGroup(slow, [nodes[0]], 'tensor', 0, 2), makeGroup(slow, [nodes[1]], 'tensor', 2, 4)];
  assert.equal(scoreGroups(slow, 'pipeline', 'p', groups).activationDtype, 'f16');
});

test('prefill: the prompt as one batch through every stage, compute-bound', () => {
  const r = req({ promptTokens: 1000 });
  const groups = [makeGroup(r, [nodes[0]], 'tensor', 0, 4)];
  const c = scoreGroups(r, 'pipeline', 'p', groups);
  // 1000 tokens x 2 FLOPs x 400e6 parameters (one per byte here) at 1 TFLOP/s = 0.8 s, plus attention
  // over half the prompt (4 x 500 FLOPs a token) and the step overhead; one stage, no hop.
  const seconds = 0.8 + (1000 * 4 * 4 * 500) / 1e12 + 1e-3;
  assert.ok(Math.abs(c.prefillTokensPerSecond - 1000 / seconds) < 1e-6 * c.prefillTokensPerSecond, String(c.prefillTokensPerSecond));
});

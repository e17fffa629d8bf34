import { test } from 'node:test';
import assert from 'node:assert/strict';
import { groupMemory, groupStep, makeGroup, rankOrder } from './group.js';
import type { LayerShape, ModelMeta, NodeInfo, PlanRequest } from './types.js';

const near = (a: number, b: number, tol = 1e-9) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

// Two layers of 100 MB: 20 MB query-head, 10 MB KV-head, 70 MB dense FFN of width 1024; 1 byte a weight.
const layer: LayerShape = {
  attentionBytes: 20e6,
  kvProjectionBytes: 10e6,
  denseFfnBytes: 70e6,
  expertBytes: 0,
  experts: 0,
  expertsUsed: 0,
  sharedExpertBytes: 0,
  replicatedBytes: 0,
  activeParameters: 100e6,
  ffnWidth: 1024,
  weightType: 'Q8_0',
};
const model: ModelMeta = {
  nLayer: 2,
  layerBytes: [100e6, 100e6],
  layerActiveBytes: [100e6, 100e6],
  embedBytes: 30e6,
  headBytes: 40e6,
  headActiveBytes: 40e6,
  kvBytesPerToken: [1000, 1000],
  activationBytesPerToken: 2048,
  workingBytes: 5e6,
  shape: {
    nEmbd: 1024,
    nHead: 8,
    nKvHead: 4,
    headDim: 128,
    nVocab: 1000,
    blockSize: 32,
    layers: [layer, layer],
    headParameters: 40e6,
    headWeightType: 'Q8_0',
  },
};
const node = (id: string, extra: Partial<NodeInfo> = {}): NodeInfo => ({
  id,
  memoryBytes: 1e9,
  bytesPerSecond: 1e9,
  flopsPerSecond: 1e12,
  stepOverheadSeconds: 0,
  ...extra,
});
const link = { latencySeconds: 1e-4, bytesPerSecond: 1e9 };
const req = (nodes: NodeInfo[], extra: Partial<PlanRequest> = {}): PlanRequest => ({
  model,
  nodes,
  links: [],
  kvTokens: 1000,
  defaultLink: link,
  ...extra,
});

test('ranks: the coordinator first, then the fastest', () => {
  assert.deepEqual(
    rankOrder([node('b'), node('c', { bytesPerSecond: 2e9 }), node('a', { coordinator: true })]).map((n) => n.id),
    ['a', 'c', 'b'],
  );
});

test('one node: the whole layers, the embedding and head; a step reads every byte once', () => {
  const g = makeGroup(req([node('a')]), [node('a')], 'tensor', 0, 2);
  assert.equal(g.problem, undefined);
  assert.deepEqual(groupMemory(req([node('a')]), g), [5e6 + 2 * 100e6 + 2 * 1000 * 1000 + 30e6 + 40e6]);
  const s = groupStep(req([node('a')]), g, 1, [node('a')]);
  assert.ok(near(s.compute, (200e6 + 40e6) / 1e9));
  assert.equal(s.exchange, 0);
  assert.equal(s.allReduce, undefined);
});

test('two equal ranks: half of each split part, two all-reduces per layer, the input sent to rank 1', () => {
  const nodes = [node('a', { coordinator: true }), node('b')];
  const r = req(nodes);
  const g = makeGroup(r, nodes, 'tensor', 0, 2);
  assert.deepEqual(g.shares, [0.5, 0.5]);
  assert.deepEqual(
    g.heads!.map((h) => h.heads),
    [
      [0, 4],
      [4, 8],
    ],
  );
  const mem = groupMemory(r, g);
  // Each rank: half of 100 MB per layer, half the KV cache; rank 0 also the embedding and head.
  assert.equal(mem[1], 5e6 + 2 * 50e6 + 2 * 500 * 1000);
  assert.equal(mem[0], mem[1] + 70e6);
  const s = groupStep(r, g, 1, nodes);
  assert.ok(near(s.compute, (2 * 50e6 + 40e6) / 1e9), String(s.compute));
  // All-reduce of 1024 f32 values: direct, 1e-4 + 4096 / 1e9; and the input to rank 1 once.
  const ar = 1e-4 + 4096 / 1e9;
  assert.equal(s.allReduce?.algorithm, 'direct');
  assert.ok(near(s.exchange, 2 * 2 * ar + (1e-4 + 4096 / 1e9)));
});

test('a rank whose memory is short takes less; a cut that cannot be made is a problem', () => {
  const nodes = [node('a', { coordinator: true }), node('b', { memoryBytes: 60e6, bytesPerSecond: 4e9 })];
  const g = makeGroup(req(nodes), nodes, 'tensor', 0, 2);
  assert.equal(g.problem, undefined);
  assert.ok(groupMemory(req(nodes), g)[1] <= 60e6);
  const many = Array.from({ length: 9 }, (_, i) => node(`n${i}`));
  assert.match(makeGroup(req(many), many, 'tensor', 0, 2).problem ?? '', /heads .* cannot be split over 9 ranks/);
  // An FFN width no multiple of the unit a split cuts at: the unit named is that one, not the block size.
  const odd: ModelMeta = { ...model, shape: { ...model.shape!, blockSize: 1, layers: [{ ...layer, ffnWidth: 172 }, { ...layer, ffnWidth: 172 }] } };
  const two = [node('a', { coordinator: true }), node('b')];
  assert.match(makeGroup(req(two, { model: odd }), two, 'tensor', 0, 2).problem ?? '', /an FFN width of 172 cannot be split over 2 ranks at 32-element boundaries/);
});

test('an expert group: the home runs attention and routes; others hold experts; only routed tokens travel', () => {
  const moeLayer: LayerShape = {
    ...layer,
    denseFfnBytes: 0,
    expertBytes: 64e6,
    experts: 8,
    expertsUsed: 2,
    activeParameters: 46e6,
    ffnWidth: 0,
  };
  const m: ModelMeta = {
    ...model,
    layerBytes: [94e6, 94e6],
    layerActiveBytes: [46e6, 46e6],
    shape: { ...model.shape!, layers: [moeLayer, moeLayer] },
  };
  const nodes = [node('a', { coordinator: true }), node('b')];
  const r: PlanRequest = { ...req(nodes), model: m };
  const g = makeGroup(r, nodes, 'expert', 0, 2);
  assert.deepEqual(g.experts, [
    [0, 4],
    [4, 8],
  ]);
  const mem = groupMemory(r, g);
  assert.equal(mem[1], 5e6 + 2 * 32e6);
  const s = groupStep(r, g, 1, nodes);
  // Home: 30 MB of attention per layer + head; experts: 1 of 2 used on each node on average, 8 MB each.
  assert.ok(near(s.compute, (2 * (30e6 + 8e6) + 40e6) / 1e9), String(s.compute));
  // Node b is needed unless both picks are at home: 1 - (4/8)(3/7); its tokens go and come back.
  const p = 1 - (4 / 8) * (3 / 7);
  assert.ok(near(s.exchange, 2 * (2 * 1e-4 * p + (2 * p * 4096) / 1e9)), String(s.exchange));
});

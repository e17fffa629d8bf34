/**
 * The coordinator's choice of plan: `auto` keeps the pipeline over every node unless a plan with
 * tensor-parallel groups is predicted clearly faster (fast links between separate machines), the
 * coordinator is only ever rank 0 of the first stage, `tensor` splits every layer over every node
 * that computes, and a cluster that cannot hold the model gets makePlan's shortfall.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LinkInfo, ModelMeta, NodeInfo, PlanRequest } from '../planner/types.js';
import { isCairnError } from '../util/errors.js';
import { chooseRunnable } from './plan-choice.js';

const GB = 1e9;
const L = 32;
// Llama 3 8B-like: 32 layers of ~218 MB (Q8_0), 32 heads of 128 in 8 KV groups, FFN 14336.
const model: ModelMeta = {
  nLayer: L,
  layerBytes: Array(L).fill(218e6),
  layerActiveBytes: Array(L).fill(218e6),
  embedBytes: 545e6,
  headBytes: 545e6,
  headActiveBytes: 545e6,
  kvBytesPerToken: Array(L).fill(4096),
  activationBytesPerToken: 4096 * 4,
  workingBytes: 64e6,
  shape: {
    nEmbd: 4096,
    nHead: 32,
    nKvHead: 8,
    headDim: 128,
    nVocab: 128256,
    blockSize: 32,
    headParameters: 4096 * 128256,
    headWeightType: 'Q8_0',
    layers: Array.from({ length: L }, () => ({
      attentionBytes: 71e6,
      kvProjectionBytes: 18e6,
      denseFfnBytes: 187e6,
      expertBytes: 0,
      experts: 0,
      expertsUsed: 0,
      sharedExpertBytes: 0,
      replicatedBytes: 32e3,
      activeParameters: 218e6,
      ffnWidth: 14336,
      weightType: 'Q8_0',
    })),
  },
};

const node = (id: string, coordinator = false): NodeInfo => ({
  id,
  memoryBytes: 64 * GB,
  bytesPerSecond: 100 * GB,
  cores: 8,
  machine: id,
  ...(coordinator ? { coordinator: true } : {}),
});

function request(ids: string[], latencySeconds: number, bytesPerSecond: number): PlanRequest {
  const nodes = [node('coord', true), ...ids.map((id) => node(id))];
  const links: LinkInfo[] = [];
  for (const a of nodes) for (const b of nodes) if (a.id < b.id) links.push({ from: a.id, to: b.id, latencySeconds, bytesPerSecond });
  return { model, nodes, links, kvTokens: 4096 };
}

test('auto keeps the pipeline over every node on slow links', () => {
  // 3 ms a hop (a Wi-Fi link): two exchanges per layer would cost more than the split saves.
  const plan = chooseRunnable(request(['a', 'b', 'c'], 3e-3, 50e6), 'coord', 'auto');
  assert.ok(plan.stages.every((s) => s.splitCount === 1));
  assert.deepEqual(new Set(plan.stages.map((s) => s.nodeId)), new Set(['coord', 'a', 'b', 'c']));
});

test('auto takes tensor-parallel groups where fast links make them clearly faster, the coordinator only as rank 0 of the first stage', () => {
  const plan = chooseRunnable(request(['a', 'b', 'c'], 3e-6, 50 * GB), 'coord', 'auto');
  assert.ok(
    plan.stages.some((s) => s.splitCount > 1),
    `a plan with groups: ${JSON.stringify(plan.stages.map((s) => [s.nodeId, s.splitRank, s.splitCount]))}`,
  );
  assert.ok(plan.stages.every((s, i) => s.nodeId !== 'coord' || (i === 0 && s.splitRank === 0)));
  assert.deepEqual(new Set(plan.stages.map((s) => s.nodeId)), new Set(['coord', 'a', 'b', 'c']), 'every node is used');
  const pipeline = chooseRunnable(request(['a', 'b', 'c'], 3e-3, 50e6), 'coord', 'auto');
  assert.ok(plan.predictedTokensPerSecond > pipeline.predictedTokensPerSecond);
});

test('tensor splits every layer over every node that computes, the coordinator as rank 0, and needs two of them', () => {
  const plan = chooseRunnable(request(['a', 'b', 'c'], 300e-6, 110e6), 'coord', 'tensor');
  assert.deepEqual(
    plan.stages.map((s) => [s.nodeId, s.layerStart, s.layerEnd, s.splitRank, s.splitCount]),
    [
      ['coord', 0, L, 0, 4],
      ['a', 0, L, 1, 4],
      ['b', 0, L, 2, 4],
      ['c', 0, L, 3, 4],
    ],
  );
  // Without local compute the coordinator is not among the nodes: the remote ones split it.
  const remote = request(['a', 'b'], 300e-6, 110e6);
  const noLocal = chooseRunnable({ ...remote, nodes: remote.nodes.filter((n) => n.id !== 'coord') }, 'coord', 'tensor');
  assert.deepEqual(
    noLocal.stages.map((s) => [s.nodeId, s.splitRank]),
    [
      ['a', 0],
      ['b', 1],
    ],
  );
  assert.throws(
    () => chooseRunnable(request([], 300e-6, 110e6), 'coord', 'tensor'),
    (e) => isCairnError(e, 'CLUSTER_PLAN') && /at least 2 nodes/.test(e.message),
  );
});

test('a cluster too small for the model gets the shortfall of every node', () => {
  const small = request(['a'], 300e-6, 110e6);
  const tiny = { ...small, nodes: small.nodes.map((n) => ({ ...n, memoryBytes: 1 * GB })) };
  assert.throws(
    () => chooseRunnable(tiny, 'coord', 'auto'),
    (e) => isCairnError(e, 'CLUSTER_PLAN') && /short by/.test(e.message),
  );
});

test("hybrid: the coordinator's stage, then a group of the other nodes", () => {
  const plan = chooseRunnable(request(['a', 'b'], 300e-6, 110e6), 'coord', 'hybrid');
  assert.equal(plan.stages[0].nodeId, 'coord');
  assert.equal(plan.stages[0].splitCount, 1);
  assert.deepEqual(
    plan.stages.slice(1).map((s) => [s.splitRank, s.splitCount, s.layerStart, s.layerEnd]),
    [
      [0, 2, plan.stages[0].layerEnd, L],
      [1, 2, plan.stages[0].layerEnd, L],
    ],
  );
  assert.throws(() => chooseRunnable(request(['a'], 300e-6, 110e6), 'coord', 'hybrid'), /at least 2 nodes/);
});

// A Mixture-of-Experts model of the same size: each layer's FFN is 64 routed experts (8 used).
const moeModel: ModelMeta = {
  ...model,
  layerActiveBytes: Array(L).fill(71e6 + 187e6 / 8),
  shape: {
    ...model.shape!,
    layers: model.shape!.layers.map((l) => ({ ...l, denseFfnBytes: 0, expertBytes: 187e6, experts: 64, expertsUsed: 8, ffnWidth: 1792 })),
  },
};

test('expert spreads the routed experts over the nodes, the coordinator (or the first node) their home; a dense model cannot', () => {
  const plan = chooseRunnable({ ...request(['a', 'b', 'c'], 300e-6, 110e6), model: moeModel }, 'coord', 'expert');
  assert.deepEqual(
    plan.stages.map((s) => [s.nodeId, s.layerStart, s.layerEnd, s.splitRank, s.splitCount, s.home]),
    [
      ['coord', 0, L, 0, 4, true],
      ['a', 0, L, 1, 4, false],
      ['b', 0, L, 2, 4, false],
      ['c', 0, L, 3, 4, false],
    ],
  );
  const remote = { ...request(['a', 'b'], 300e-6, 110e6), model: moeModel };
  const noLocal = chooseRunnable({ ...remote, nodes: remote.nodes.filter((n) => n.id !== 'coord') }, 'coord', 'expert');
  assert.deepEqual(
    noLocal.stages.map((s) => [s.nodeId, s.home]),
    [
      ['a', true],
      ['b', false],
    ],
  );
  assert.throws(
    () => chooseRunnable(request(['a', 'b'], 300e-6, 110e6), 'coord', 'expert'),
    (e) => isCairnError(e, 'CLUSTER_PLAN') && /Mixture-of-Experts/.test(e.message),
  );
  assert.throws(
    () => chooseRunnable({ ...request([], 300e-6, 110e6), model: moeModel }, 'coord', 'expert'),
    (e) => isCairnError(e, 'CLUSTER_PLAN') && /at least 2 nodes/.test(e.message),
  );
});

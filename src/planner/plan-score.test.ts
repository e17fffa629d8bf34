/**
 * A plan predicted again from new inputs: the same plan under the same request predicts what its
 * candidate did; a slower measured link between a group's ranks lowers it, a faster one raises
 * it; a plan whose nodes the request lacks, or that the planner would now split otherwise, gets
 * no prediction rather than one of another plan.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hybridPlan, pipelinePlan, tensorPlan } from './candidates.js';
import { scorePlan } from './plan-score.js';
import type { NodeInfo, PlanRequest } from './types.js';
import { denseModel } from '../../test/helpers/planner-models.js';

/** 16 layers of width 2048 (FFN 8192) at one byte per weight. */
const model = () => denseModel({ nEmbd: 2048, nFf: 8192, nLayer: 16, nHead: 16, nKvHead: 4, nVocab: 32000, workingBytes: 64 << 20 });

const nodes: NodeInfo[] = [
  { id: 'c', coordinator: true, memoryBytes: 16e9, bytesPerSecond: 40e9 },
  { id: 'n1', memoryBytes: 16e9, bytesPerSecond: 30e9 },
  { id: 'n2', memoryBytes: 16e9, bytesPerSecond: 20e9 },
];
const link = (from: string, to: string, latencySeconds: number) => ({ from, to, latencySeconds, bytesPerSecond: 1e9 });
const request = (links: PlanRequest['links']): PlanRequest => ({ model: model(), nodes, links, kvTokens: 4096 });

test('the same plan under the same request predicts what its candidate did', () => {
  const req = request([link('c', 'n1', 100e-6), link('c', 'n2', 100e-6), link('n1', 'n2', 100e-6)]);
  for (const c of [tensorPlan(req, nodes), tensorPlan(req, nodes.slice(1)), pipelinePlan(req), hybridPlan(req, [[nodes[0]], nodes.slice(1)])!]) {
    const again = scorePlan(req, c.stages);
    assert.ok(again, c.label);
    assert.equal(again.decodeTokensPerSecond, c.decodeTokensPerSecond, c.label);
    assert.equal(again.aggregateTokensPerSecond, c.aggregateTokensPerSecond, c.label);
  }
});

test("a measured link between a group's ranks moves the group's prediction by its exchanges", () => {
  const estimated = request([link('c', 'n1', 100e-6), link('c', 'n2', 100e-6), link('n1', 'n2', 100e-6)]);
  const plan = tensorPlan(estimated, nodes.slice(1));
  const slower = scorePlan(request([link('n1', 'n2', 1e-3), ...estimated.links]), plan.stages)!;
  const faster = scorePlan(request([link('n1', 'n2', 10e-6), ...estimated.links]), plan.stages)!;
  assert.ok(slower.decodeTokensPerSecond < plan.decodeTokensPerSecond && plan.decodeTokensPerSecond < faster.decodeTokensPerSecond);
  // 16 layers x 2 all-reduces and the step's input passed on to the other rank: 33 x the latency's change.
  assert.ok(Math.abs(slower.breakdown.exchange - plan.breakdown.exchange - 33 * 900e-6) < 1e-9);
});

test('no prediction for a plan whose nodes the request lacks, or that its nodes would now be split otherwise', () => {
  const req = request([]);
  const plan = tensorPlan(req, nodes);
  assert.equal(scorePlan({ ...req, nodes: nodes.slice(0, 2) }, plan.stages), undefined);
  // n2 now the faster of the two: the planner's rank order and shares would differ.
  const swapped = nodes.map((n) => (n.id === 'n2' ? { ...n, bytesPerSecond: 35e9 } : n));
  const two = tensorPlan(req, nodes.slice(1));
  assert.equal(scorePlan({ ...req, nodes: swapped }, two.stages), undefined);
});

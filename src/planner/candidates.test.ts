import { test } from 'node:test';
import assert from 'node:assert/strict';
import { choosePlan, expertPlan, hybridPlan, pipelinePlan, planCandidates, tensorPlan } from './candidates.js';
import type { LayerShape, ModelMeta, NodeInfo, PlanRequest } from './types.js';
import { denseModel } from '../../test/helpers/planner-models.js';

const GB = 1e9;

/** A dense model of Llama-3-8B's shape at 8 bits per weight (1 byte each). */
function dense8b(): ModelMeta {
  return denseModel({ nEmbd: 4096, nFf: 14336, nLayer: 32, nHead: 32, nKvHead: 8, nVocab: 128256, workingBytes: 256 << 20 });
}

/** A Mixture-of-Experts model: 24 layers of 64 experts (4 used) of 24 MB each, attention 60 MB. */
function moe(): ModelMeta {
  const nLayer = 24;
  const layer: LayerShape = {
    attentionBytes: 40e6,
    kvProjectionBytes: 20e6,
    denseFfnBytes: 0,
    expertBytes: 64 * 24e6,
    experts: 64,
    expertsUsed: 4,
    sharedExpertBytes: 0,
    replicatedBytes: 1e6,
    activeParameters: 40e6 + 20e6 + 4 * 24e6 + 1e6,
    ffnWidth: 0,
    weightType: 'Q8_0',
  };
  const held = 40e6 + 20e6 + 64 * 24e6 + 1e6;
  const active = 40e6 + 20e6 + 4 * 24e6 + 1e6;
  return {
    nLayer,
    layerBytes: Array(nLayer).fill(held),
    layerActiveBytes: Array(nLayer).fill(active),
    embedBytes: 300e6,
    headBytes: 300e6,
    headActiveBytes: 300e6,
    kvBytesPerToken: Array(nLayer).fill(2048),
    activationBytesPerToken: 4096,
    workingBytes: 128 << 20,
    shape: {
      nEmbd: 2048,
      nHead: 32,
      nKvHead: 4,
      headDim: 128,
      nVocab: 150000,
      blockSize: 32,
      layers: Array(nLayer).fill(layer),
      headParameters: 300e6,
      headWeightType: 'Q8_0',
    },
  };
}

const node = (id: string, memGB: number, speedGB = 40, extra: Partial<NodeInfo> = {}): NodeInfo => ({
  id,
  memoryBytes: memGB * GB,
  bytesPerSecond: speedGB * GB,
  ...extra,
});
const fastLink = { latencySeconds: 5e-6, bytesPerSecond: 10e9 };
const req = (model: ModelMeta, nodes: NodeInfo[], extra: Partial<PlanRequest> = {}): PlanRequest => ({
  model,
  nodes,
  links: [],
  kvTokens: 4096,
  ...extra,
});

test('a tensor plan gives the faster node the larger share of heads and columns', () => {
  const nodes = [node('a', 64, 60, { coordinator: true }), node('b', 64, 30)];
  const c = tensorPlan(req(dense8b(), nodes, { defaultLink: fastLink }), nodes);
  assert.ok(c.fits);
  const [a, b] = c.stages;
  assert.equal(a.nodeId, 'a');
  assert.deepEqual([a.splitRank, a.splitCount, b.splitRank, b.splitCount], [0, 2, 1, 2]);
  assert.deepEqual(a.splitShares, [2 / 3, 1 / 3]);
  const heads = (s: typeof a) => s.heads![1] - s.heads![0];
  const cols = (s: typeof a) => s.ffnColumns![1] - s.ffnColumns![0];
  assert.ok(heads(a) > heads(b) && cols(a) > cols(b), JSON.stringify(c.stages));
  assert.equal(heads(a) + heads(b), 32);
  assert.equal(cols(a) + cols(b), 14336);
  // The pipeline gives it more layers likewise.
  const p = pipelinePlan(req(dense8b(), nodes));
  const layers = (id: string) => p.stages.filter((s) => s.nodeId === id).reduce((n, s) => n + s.layerEnd - s.layerStart, 0);
  assert.ok(layers('a') > layers('b'));
});

test('an uneven three-rank tensor plan: heads in whole KV groups, every rank a share', () => {
  const nodes = [node('a', 64, 40, { coordinator: true }), node('b', 64, 40), node('c', 64, 40)];
  const c = tensorPlan(req(dense8b(), nodes, { defaultLink: fastLink }), nodes);
  assert.ok(c.fits);
  assert.deepEqual(
    c.stages.map((s) => s.heads),
    [
      [0, 12],
      [12, 20],
      [20, 32],
    ],
  );
  assert.deepEqual(
    c.stages.map((s) => s.kvHeads),
    [
      [0, 3],
      [3, 5],
      [5, 8],
    ],
  );
  for (const s of c.stages) assert.equal((s.ffnColumns![0] % 256) + (s.ffnColumns![1] % 256), 0, 'cuts on 256-column units');
  // 5 and 6 ranks work too.
  for (const k of [5, 6]) {
    const many = Array.from({ length: k }, (_, i) => node(`n${i}`, 64, 40, { coordinator: i === 0 }));
    const t = tensorPlan(req(dense8b(), many, { defaultLink: fastLink }), many);
    assert.ok(t.fits && !t.problem, `${k} ranks: ${t.problem}`);
    assert.equal(t.stages.length, k);
  }
});

test('memory caps a share: a small fast node takes what it can hold and the rest goes to the others', () => {
  const nodes = [node('big', 64, 40, { coordinator: true }), node('small', 3, 80)];
  const c = tensorPlan(req(dense8b(), nodes, { defaultLink: fastLink }), nodes);
  assert.ok(c.fits, c.problem);
  const small = c.nodes.find((n) => n.nodeId === 'small')!;
  assert.ok(small.memoryBytes <= small.limitBytes);
  assert.ok(c.stages[1].splitShares![1] < 2 / 3, 'less than its speed would give it');
});

test('plans that do not fit say so, naming the node', () => {
  const nodes = [node('a', 4, 40, { coordinator: true }), node('b', 4, 40)];
  const all = planCandidates(req(dense8b(), nodes));
  assert.ok(all.length >= 2);
  for (const c of all) {
    assert.equal(c.fits, false, c.label);
    assert.match(c.problem ?? '', /does not fit|needs/);
  }
  const choice = choosePlan(req(dense8b(), nodes));
  assert.equal(choice.chosen, undefined);
  assert.match(choice.why, /no plan fits/);
});

test('tensor parallelism pays over a fast link and not over a slow one', () => {
  const nodes = [node('a', 64, 40, { coordinator: true }), node('b', 64, 40)];
  const fast = choosePlan(req(dense8b(), nodes, { defaultLink: fastLink }));
  assert.equal(fast.chosen?.label, 'tensor x2');
  assert.ok(
    fast.chosen!.decodeTokensPerSecond > 1.6 * pipelinePlan(req(dense8b(), nodes, { defaultLink: fastLink })).decodeTokensPerSecond,
  );
  assert.match(fast.why, /^tensor x2: the fastest decode of one sequence/);
  // 2 ms each way: 64 all-reduces per token cost more than half the compute saved.
  const slow = choosePlan(req(dense8b(), nodes, { defaultLink: { latencySeconds: 2e-3, bytesPerSecond: 110e6 } }));
  assert.equal(slow.chosen?.kind, 'pipeline');
});

test('two nodes on one machine share it: splitting there gains nothing', () => {
  const alone = [node('a', 64, 40, { coordinator: true })];
  const one = tensorPlan(req(dense8b(), alone), alone);
  const box = [node('a', 32, 40, { coordinator: true, machine: 'm', cores: 2 }), node('b', 32, 40, { machine: 'm', cores: 2 })];
  const split = tensorPlan(req(dense8b(), box), box);
  assert.ok(split.decodeTokensPerSecond < one.decodeTokensPerSecond, `${split.decodeTokensPerSecond} vs ${one.decodeTokensPerSecond}`);
  // On two machines the same split nearly doubles the speed.
  const two = [node('a', 32, 40, { coordinator: true }), node('b', 32, 40)];
  assert.ok(tensorPlan(req(dense8b(), two, { defaultLink: fastLink }), two).decodeTokensPerSecond > 1.7 * one.decodeTokensPerSecond);
});

test('aggregate and prefill: pipelines overlap stages, large batches and prompts are compute-bound', () => {
  const nodes = [node('a', 64, 40, { coordinator: true, flopsPerSecond: 1e12 }), node('b', 64, 40, { flopsPerSecond: 1e12 })];
  const r = req(dense8b(), nodes, { defaultLink: fastLink, batch: 16, promptTokens: 512 });
  const p = pipelinePlan(r);
  assert.ok(p.aggregateTokensPerSecond > 1.8 * p.decodeTokensPerSecond * 8, 'a batch reads the weights once for all its sequences');
  const t = tensorPlan(r, nodes);
  // 2 x 7.5e9 FLOPs per token at 2 x 1 TFLOP/s: prefill near 133 tok/s, far below decode-bandwidth terms.
  assert.ok(t.prefillTokensPerSecond > 100 && t.prefillTokensPerSecond < 140, String(t.prefillTokensPerSecond));
  const batch = tensorPlan({ ...r, batch: 4096 }, nodes);
  assert.ok(batch.aggregateTokensPerSecond < 140, 'a huge batch is compute-bound like a prompt');
});

test('expert plan: experts follow speed; only routed tokens travel; faster than a pipeline over a fast link', () => {
  const nodes = [node('a', 40, 60, { coordinator: true }), node('b', 40, 30)];
  const r = req(moe(), nodes, { defaultLink: fastLink });
  const e = expertPlan(r, nodes);
  assert.ok(e.fits, e.problem);
  const [home, other] = e.stages;
  assert.equal(home.home, true);
  assert.ok(home.experts![1] - home.experts![0] > other.experts![1] - other.experts![0]);
  assert.deepEqual([home.experts![0], other.experts![1]], [0, 64]);
  assert.ok(e.breakdown.exchange > 0 && e.breakdown.exchange < 24 * 2 * 1e-4);
  const all = planCandidates(r);
  assert.ok(all.some((c) => c.kind === 'expert') && all.some((c) => c.kind === 'tensor'));
  assert.ok(e.decodeTokensPerSecond > pipelinePlan(r).decodeTokensPerSecond);
});

test('hybrid: two fast-linked pairs become two tensor stages across the slow link', () => {
  // Two nodes cannot hold the model (4 GB each): it takes all four.
  const nodes = [node('a', 4, 40, { coordinator: true }), node('b', 4, 40), node('c', 4, 40), node('d', 4, 40)];
  const fast = { latencySeconds: 5e-6, bytesPerSecond: 10e9 };
  const links = [
    { from: 'a', to: 'b', ...fast },
    { from: 'c', to: 'd', ...fast },
  ];
  const r = req(dense8b(), nodes, { links, defaultLink: { latencySeconds: 300e-6, bytesPerSecond: 110e6 } });
  const h = hybridPlan(r, [
    [nodes[0], nodes[1]],
    [nodes[2], nodes[3]],
  ])!;
  assert.ok(h.fits, h.problem);
  assert.deepEqual(
    h.stages.map((s) => [s.nodeId, s.stage, s.splitRank, s.splitCount]),
    [
      ['a', 0, 0, 2],
      ['b', 0, 1, 2],
      ['c', 1, 0, 2],
      ['d', 1, 1, 2],
    ],
  );
  const choice = choosePlan(r);
  assert.equal(choice.chosen?.kind, 'hybrid', choice.candidates.map((c) => `${c.label} ${c.decodeTokensPerSecond.toFixed(1)}`).join(', '));
  assert.ok(choice.candidates.find((c) => c.label === 'tensor x4')!.decodeTokensPerSecond < choice.chosen!.decodeTokensPerSecond);
});

test('the objective picks among the plans that fit', () => {
  const nodes = [node('a', 64, 40, { coordinator: true }), node('b', 64, 40)];
  const r = req(dense8b(), nodes, { defaultLink: { latencySeconds: 1e-3, bytesPerSecond: 1e9 }, batch: 64 });
  const agg = choosePlan({ ...r, objective: 'aggregate' });
  const best = Math.max(...agg.candidates.filter((c) => c.fits).map((c) => c.aggregateTokensPerSecond));
  assert.equal(agg.chosen!.aggregateTokensPerSecond, best);
  assert.match(agg.why, /aggregate decode at batch 64/);
});

test('a model without a shape plans as before: pipelines only (the coordinator alone, and all nodes)', () => {
  const m = dense8b();
  const { shape: _shape, ...bare } = m;
  const nodes = [node('a', 64, 40, { coordinator: true }), node('b', 64, 40)];
  const all = planCandidates(req(bare, nodes));
  assert.deepEqual(
    all.map((c) => c.label),
    ['pipeline x1', 'pipeline x2'],
  );
  assert.ok(all.every((c) => c.fits && c.decodeTokensPerSecond > 0));
  assert.equal(all[0].stages[0].nodeId, 'a');
});

test('kinds: a runner that cannot run expert plans leaves them out', () => {
  const nodes = [node('a', 40, 60, { coordinator: true }), node('b', 40, 30)];
  const r = req(moe(), nodes, { defaultLink: fastLink, kinds: ['pipeline', 'tensor'] });
  const kinds = new Set(planCandidates(r).map((c) => c.kind));
  assert.deepEqual([...kinds].sort(), ['pipeline', 'tensor']);
  assert.notEqual(choosePlan(r).chosen?.kind, 'expert');
});

test('a node computing on a GPU runs whole pipeline stages only: no tensor, expert or hybrid group holds it', () => {
  const nodes = [node('a', 40, 40, { coordinator: true }), node('gpu', 40, 400, { pipelineOnly: true }), node('c', 40, 40)];
  const r = req(moe(), nodes, { defaultLink: fastLink });
  const all = planCandidates(r);
  for (const c of all) {
    if (c.kind === 'pipeline') continue;
    const inGroup = c.stages.filter((s) => (s.splitCount ?? 1) > 1).map((s) => s.nodeId);
    assert.ok(!inGroup.includes('gpu'), `${c.label} puts the GPU node in a group`);
  }
  // The other two still form groups, and the pipeline uses the GPU node at its rate.
  assert.ok(all.some((c) => c.kind === 'tensor' || c.kind === 'expert'));
  assert.ok(pipelinePlan(r).stages.some((s) => s.nodeId === 'gpu'));
});

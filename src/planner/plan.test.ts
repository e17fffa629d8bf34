import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makePlan, stageBytes } from './plan.js';
import type { ModelMeta, NodeInfo, PlanRequest } from './types.js';
import { isCairnError } from '../util/errors.js';

const MB = 1 << 20;
const model: ModelMeta = {
  nLayer: 12,
  layerBytes: Array(12).fill(100 * MB),
  layerActiveBytes: Array(12).fill(100 * MB),
  embedBytes: 50 * MB,
  headBytes: 60 * MB,
  headActiveBytes: 60 * MB,
  kvBytesPerToken: Array(12).fill(1024),
  activationBytesPerToken: 4096,
  workingBytes: 10 * MB,
};
const node = (id: string, memMB: number, speed = 1e9, coordinator = false): NodeInfo => ({ id, memoryBytes: memMB * MB, bytesPerSecond: speed, coordinator });
const req = (nodes: NodeInfo[], kvTokens = 1024): PlanRequest => ({ model, nodes, links: [], kvTokens });

function layers(p: ReturnType<typeof makePlan>): Record<string, number> {
  return Object.fromEntries(p.stages.map((s) => [s.nodeId, s.layerEnd - s.layerStart]));
}

function assertContiguous(p: ReturnType<typeof makePlan>): void {
  let next = 0;
  for (const s of p.stages) {
    assert.equal(s.layerStart, next);
    assert.ok(s.layerEnd > s.layerStart);
    next = s.layerEnd;
  }
  assert.equal(next, model.nLayer);
}

test('one node holds the whole model as one stage', () => {
  const p = makePlan(req([node('a', 4000, 1e9, true)]));
  assert.deepEqual(p.stages.map((s) => [s.nodeId, s.layerStart, s.layerEnd, s.splitRank, s.splitCount]), [['a', 0, 12, 0, 1]]);
  assert.equal(p.stages[0].memoryBytes, stageBytes(req([]), 0, 12));
  // Memory-bound: all weights once per token at 1 GB/s.
  const bytes = 12 * 100 * MB + 60 * MB;
  assert.ok(Math.abs(p.predictedTokensPerSecond - 1e9 / bytes) / (1e9 / bytes) < 0.01);
});

test('equal nodes split evenly; the coordinator takes the first stage', () => {
  const p = makePlan(req([node('b', 4000), node('c', 4000), node('a', 4000, 1e9, true)]));
  assertContiguous(p);
  assert.equal(p.stages[0].nodeId, 'a');
  assert.deepEqual(Object.values(layers(p)), [4, 4, 4]);
});

test('layers follow measured speed', () => {
  const p = makePlan(req([node('fast', 4000, 2e9, true), node('slow', 4000, 1e9)]));
  assertContiguous(p);
  assert.deepEqual(layers(p), { fast: 8, slow: 4 });
});

test('uneven memory gives uneven splits within each node\'s limit', () => {
  const small = node('small', 380);
  const p = makePlan(req([node('big', 4000, 1e9, true), small]));
  assertContiguous(p);
  const s = p.stages.find((x) => x.nodeId === 'small')!;
  assert.ok(s.memoryBytes <= small.memoryBytes, 'the small node is not overfilled');
  assert.equal(layers(p).small, 3);
  assert.equal(layers(p).big, 9);
});

test('embedding and head bytes count on the end stages', () => {
  // Per layer: 100 MiB of weights + 1 MiB of KV. The first stage also holds the embedding (50 MiB),
  // the last the head (60 MiB), each 10 MiB of working memory. Equal speeds would split 6/6, but
  // 6 layers plus the head do not fit b: the split must become 7/5.
  const a = node('a', 50 + 10 + 7 * 101 + 1, 1e9, true);
  const b = node('b', 60 + 10 + 5 * 101 + 1);
  const p = makePlan(req([a, b]));
  assertContiguous(p);
  assert.deepEqual(layers(p), { a: 7, b: 5 });
  for (const st of p.stages) assert.ok(st.memoryBytes <= (st.nodeId === 'a' ? a : b).memoryBytes);
});

test('a model that does not fit fails before loading, naming every node and the shortfall', () => {
  assert.throws(
    () => makePlan(req([node('a', 300, 1e9, true), node('b', 200)])),
    (e) => isCairnError(e, 'CLUSTER_PLAN') && /does not fit/.test(e.message) && /a: has/.test(e.message) && /b: has/.test(e.message) && /short by/.test(e.message),
  );
});

test('hops cost latency; pipelined throughput is set by the slowest stage', () => {
  const nodes = [node('a', 4000, 1e9, true), node('b', 4000, 1e9)];
  const near = makePlan({ ...req(nodes), links: [{ from: 'a', to: 'b', latencySeconds: 20e-6, bytesPerSecond: 5e9 }] });
  const far = makePlan({ ...req(nodes), links: [{ from: 'a', to: 'b', latencySeconds: 5e-3, bytesPerSecond: 1e8 }] });
  assert.ok(far.predictedTokensPerSecond < near.predictedTokensPerSecond);
  // Fast links carry exact f32 activations; where the extra bytes cost over 5% of a token's time
  // (fast nodes, a 1 MB/s link) half the bytes are worth the rounding.
  assert.equal(near.activationDtype, 'f32');
  const fastNodes = [node('a', 4000, 1e11, true), node('b', 4000, 1e11)];
  const slowLink = makePlan({ ...req(fastNodes), links: [{ from: 'a', to: 'b', latencySeconds: 1e-3, bytesPerSecond: 1e6 }] });
  assert.equal(slowLink.activationDtype, 'f16');
  assert.ok(near.predictedPipelinedTokensPerSecond > 1.8 * near.predictedTokensPerSecond);
});

test('a Mixture-of-Experts model: stages sized by the bytes held, speed predicted from the bytes read per token', () => {
  // 12 layers holding 100 MB each of which a token reads 10 MB (its chosen experts and attention);
  // latent attention's KV rows are smaller on some layers.
  const moe: ModelMeta = { ...model, layerActiveBytes: Array(12).fill(10 * MB), kvBytesPerToken: model.kvBytesPerToken.map((b, l) => (l % 2 ? b / 4 : b)) };
  const r: PlanRequest = { model: moe, nodes: [node('a', 500, 1e9, true), node('b', 1200, 1e9)], links: [], kvTokens: 1024 };
  const p = makePlan(r);
  assertContiguous(p);
  for (const s of p.stages) {
    let held = moe.workingBytes;
    for (let l = s.layerStart; l < s.layerEnd; l++) held += moe.layerBytes[l] + moe.kvBytesPerToken[l] * 1024;
    if (s.layerStart === 0) held += moe.embedBytes;
    if (s.layerEnd === 12) held += moe.headBytes;
    assert.equal(s.memoryBytes, held);
  }
  // Node a cannot hold half the layers: memory, not speed, bounds its share.
  assert.ok(layers(p).a <= 4, JSON.stringify(layers(p)));
  const read = 12 * 10 * MB + 60 * MB;
  const hop = 150e-6 + 4096 / 110e6 + 150e-6 + 4 / 110e6;
  const expected = 1 / (read / 1e9 + hop);
  assert.ok(Math.abs(p.predictedTokensPerSecond - expected) / expected < 0.01, `${p.predictedTokensPerSecond} vs ${expected}`);
  // The same model read whole would be about 8x slower: the prediction did not use held bytes.
  const dense = makePlan({ ...r, model: { ...moe, layerActiveBytes: moe.layerBytes, headActiveBytes: moe.headBytes } });
  assert.ok(p.predictedTokensPerSecond > 5 * dense.predictedTokensPerSecond);
});

test('sizes that disagree with the layer count are refused', () => {
  assert.throws(() => makePlan({ ...req([node('a', 4000, 1e9, true)]), model: { ...model, layerActiveBytes: [1] } }), /inconsistent/);
});

test('a model whose layers cannot be split still gets scored candidates (the split ones marked as not fitting)', async () => {
  const { choosePlan } = await import('./candidates.js');
  const shaped: ModelMeta = {
    ...model,
    shape: {
      nEmbd: 64,
      nHead: 8,
      nKvHead: 4,
      headDim: 8,
      nVocab: 512,
      blockSize: 32,
      headParameters: 64 * 512,
      headWeightType: 'F32',
      // An FFN width of 172 has no 32-element cut.
      layers: Array.from({ length: 12 }, () => ({
        attentionBytes: 40 * MB,
        kvProjectionBytes: 20 * MB,
        denseFfnBytes: 40 * MB,
        expertBytes: 0,
        experts: 0,
        expertsUsed: 0,
        sharedExpertBytes: 0,
        replicatedBytes: 0,
        activeParameters: 25e6,
        ffnWidth: 172,
        weightType: 'F32',
      })),
    },
  };
  const choice = choosePlan({ ...req([node('a', 4000, 1e9, true), node('b', 4000, 1e9)]), model: shaped });
  const tensor = choice.candidates.filter((c) => c.kind === 'tensor');
  assert.ok(tensor.length > 0 && tensor.every((c) => !c.fits && /172/.test(c.problem ?? '')), JSON.stringify(tensor.map((c) => c.problem)));
  assert.ok(choice.chosen && choice.chosen.kind === 'pipeline');
});

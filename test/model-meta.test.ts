/**
 * The planner's view of a model file (mesh/model-meta.ts) against the model itself: each layer's
 * bytes by split part add up to what the family declares, and the head, column and expert ranges
 * the planner gives tensor ranks are the ones the model's tensor split cuts from the same shares.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType, ggmlRowBytes } from '../src/gguf/ggml-types.js';
import { readGguf } from '../src/gguf/reader.js';
import { createKernels } from '../src/kernels/index.js';
import { readModelConfig } from '../src/model/config.js';
import { writeSyntheticModel, type SyntheticModelSpec } from '../src/model/synthetic.js';
import { columnRange, expertRange, headRange } from '../src/model/tensor-split.js';
import { modelMeta } from '../src/mesh/model-meta.js';
import { tensorPlan } from '../src/planner/candidates.js';
import { columnRanges, headRanges } from '../src/planner/tensor-ranges.js';
import { placeExperts } from '../src/planner/experts.js';
import type { ModelMeta, NodeInfo } from '../src/planner/types.js';
import { scratchDir } from './helpers/paths.js';

const dir = scratchDir('model-meta');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const kernels = createKernels();

function meta(name: string, spec: SyntheticModelSpec): ModelMeta {
  const path = join(dir, `${name}.gguf`);
  writeSyntheticModel(path, spec, (type, src) => {
    if (type === GgmlType.F32) return new Uint8Array(src.buffer.slice(src.byteOffset, src.byteOffset + src.byteLength));
    const out = new Uint8Array(ggmlRowBytes(type, src.length));
    kernels.quantize(type, src, out, src.length);
    return out;
  });
  const file = readGguf(path);
  return modelMeta(file, readModelConfig(file), 2, 8);
}

const base = { nEmbd: 256, nLayer: 2, nHead: 8, nKvHead: 4, nFf: 768, nVocab: 300, seed: 5 } as const;

test('a dense model: every layer byte is in one part; heads, KV heads, width, type and block size', () => {
  const m = meta('llama-q8', { ...base, arch: 'llama', quant: GgmlType.Q8_0 });
  const s = m.shape!;
  assert.deepEqual([s.nEmbd, s.nHead, s.nKvHead, s.headDim, s.nVocab, s.blockSize], [256, 8, 4, 32, 300, 32]);
  s.layers.forEach((l, i) => {
    assert.equal(
      l.attentionBytes + l.kvProjectionBytes + l.denseFfnBytes + l.expertBytes + l.sharedExpertBytes + l.replicatedBytes,
      m.layerBytes[i],
    );
    assert.ok(l.attentionBytes > 0 && l.kvProjectionBytes > 0 && l.denseFfnBytes > 0);
    assert.ok(Math.abs(l.kvProjectionBytes / l.attentionBytes - 0.5) < 0.01, 'k, v have half the rows of q, output');
    assert.deepEqual([l.ffnWidth, l.experts, l.weightType], [768, 0, 'Q8_0']);
  });
  assert.equal(s.headWeightType, 'Q8_0');
});

test('a Mixture-of-Experts model: routed and shared experts apart', () => {
  const m = meta('qwen2moe', {
    ...base,
    arch: 'qwen2moe',
    quant: GgmlType.F32,
    moe: { experts: 8, used: 2, width: 64, shared: 1, sharedWidth: 128 },
  });
  for (const [i, l] of m.shape!.layers.entries()) {
    assert.deepEqual([l.experts, l.expertsUsed, l.ffnWidth, l.denseFfnBytes], [8, 2, 128, 0]);
    assert.equal(l.expertBytes, 8 * 3 * 64 * 256 * 4);
    assert.equal(l.sharedExpertBytes, 3 * 128 * 256 * 4);
    assert.equal(l.attentionBytes + l.kvProjectionBytes + l.expertBytes + l.sharedExpertBytes + l.replicatedBytes, m.layerBytes[i]);
  }
});

test("the planner's ranges are the model's tensor split of the same shares", () => {
  const cases: [number, number, number][] = [
    [8, 4, 32],
    [32, 8, 128],
    [8, 2, 64],
    [32, 32, 128],
  ];
  for (const shares of [
    [1, 1],
    [2, 1, 1],
    [1, 1, 1, 1],
    [3, 1, 2, 1, 1],
    [1, 1, 1, 1, 1, 1],
  ]) {
    const count = shares.length;
    for (const [nHead, nKvHead, headDim] of cases) {
      const mine = headRanges(nHead, nKvHead, headDim, shares);
      for (let rank = 0; rank < count; rank++) {
        let theirs;
        try {
          theirs = headRange(nHead, nKvHead, headDim, { rank, count, shares });
        } catch {
          theirs = undefined;
        }
        assert.deepEqual(mine?.[rank], theirs, `${nHead}/${nKvHead}x${headDim} over ${shares}`);
      }
    }
    for (const dim of [768, 11008, 14336, 96]) {
      const mine = columnRanges(dim, shares);
      for (let rank = 0; rank < count; rank++) {
        let theirs;
        try {
          theirs = columnRange(dim, { rank, count, shares });
        } catch {
          theirs = undefined;
        }
        assert.deepEqual(mine?.[rank], theirs, `width ${dim} over ${shares}`);
      }
    }
    const experts = placeExperts(64, shares)!;
    for (let rank = 0; rank < count; rank++) assert.deepEqual(experts[rank], expertRange(64, { rank, count, shares }));
  }
});

test('a tensor plan of a real file: each stage loads the ranges the model cuts from its shares', () => {
  const m = meta('llama-f32', { ...base, arch: 'llama', quant: GgmlType.F32 });
  const nodes: NodeInfo[] = [
    { id: 'a', coordinator: true, memoryBytes: 1e9, bytesPerSecond: 20e9 },
    { id: 'b', memoryBytes: 1e9, bytesPerSecond: 10e9 },
    { id: 'c', memoryBytes: 1e9, bytesPerSecond: 10e9 },
  ];
  const plan = tensorPlan({ model: m, nodes, links: [], kvTokens: 512 }, nodes);
  assert.ok(plan.fits, plan.problem);
  for (const s of plan.stages) {
    const split = { rank: s.splitRank, count: s.splitCount, shares: s.splitShares };
    assert.deepEqual(s.heads, headRange(8, 4, 32, split).heads);
    assert.deepEqual(s.kvHeads, headRange(8, 4, 32, split).kvHeads);
    assert.deepEqual(s.ffnColumns, columnRange(768, split));
  }
});

test('a family whose layers a tensor rank cannot hold part of (Phi-3): no shape, so tensor plans say why and only pipelines fit', () => {
  const m = meta('phi3-f32', { ...base, arch: 'phi3', name: 'tiny', quant: GgmlType.F32 });
  assert.equal(m.shape, undefined);
  const nodes: NodeInfo[] = [
    { id: 'a', coordinator: true, memoryBytes: 1e9, bytesPerSecond: 20e9 },
    { id: 'b', memoryBytes: 1e9, bytesPerSecond: 10e9 },
  ];
  const plan = tensorPlan({ model: m, nodes, links: [], kvTokens: 512 }, nodes);
  assert.equal(plan.fits, false);
  assert.match(plan.problem ?? '', /no shape to split by/);
});

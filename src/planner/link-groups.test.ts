import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linkGroupings } from './link-groups.js';
import type { ModelMeta, NodeInfo, PlanRequest } from './types.js';

const model: ModelMeta = {
  nLayer: 4,
  layerBytes: [1, 1, 1, 1],
  layerActiveBytes: [1, 1, 1, 1],
  embedBytes: 0,
  headBytes: 0,
  headActiveBytes: 0,
  kvBytesPerToken: [0, 0, 0, 0],
  activationBytesPerToken: 8192,
  workingBytes: 0,
};
const n = (id: string, machine?: string): NodeInfo => ({ id, memoryBytes: 1e9, bytesPerSecond: 1e9, machine });

test('fast-linked nodes group; a slow-linked node stands alone', () => {
  const nodes = [n('a'), n('b'), n('c'), n('d')];
  const fast = { latencySeconds: 5e-6, bytesPerSecond: 1e10 };
  const req: PlanRequest = {
    model,
    nodes,
    kvTokens: 0,
    links: [
      { from: 'a', to: 'b', ...fast },
      { from: 'c', to: 'd', ...fast },
      { from: 'a', to: 'c', latencySeconds: 50e-6, bytesPerSecond: 1e10 },
      { from: 'a', to: 'd', latencySeconds: 50e-6, bytesPerSecond: 1e10 },
      { from: 'b', to: 'c', latencySeconds: 50e-6, bytesPerSecond: 1e10 },
      { from: 'b', to: 'd', latencySeconds: 50e-6, bytesPerSecond: 1e10 },
    ],
    // Anything unmeasured is gigabit Ethernet.
  };
  const ids = (p: NodeInfo[][]) => p.map((g) => g.map((x) => x.id).join('+')).sort();
  assert.deepEqual(linkGroupings(req, nodes).map(ids), [['a+b', 'c+d']]);
  // Two boxes of two processes each, gigabit Ethernet between the boxes.
  const boxes = [n('a', 'm1'), n('b', 'm1'), n('c', 'm2'), n('d', 'm2')];
  assert.deepEqual(linkGroupings({ ...req, nodes: boxes, links: [] }, boxes).map(ids), [['a+b', 'c+d']]);
});

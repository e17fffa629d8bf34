import { test } from 'node:test';
import assert from 'node:assert/strict';
import { splitLayers } from './layer-split.js';
import type { ModelMeta, NodeInfo, PlanRequest } from './types.js';

const model: ModelMeta = {
  nLayer: 12,
  layerBytes: Array(12).fill(100e6),
  layerActiveBytes: Array(12).fill(100e6),
  embedBytes: 0,
  headBytes: 0,
  headActiveBytes: 0,
  kvBytesPerToken: Array(12).fill(0),
  activationBytesPerToken: 4096,
  workingBytes: 0,
};
const node = (id: string, memMB: number, speed = 1e9): NodeInfo => ({ id, memoryBytes: memMB * 1e6, bytesPerSecond: speed });
const req = (nodes: NodeInfo[]): PlanRequest => ({ model, nodes, links: [], kvTokens: 0 });
const counts = (nodes: NodeInfo[]) =>
  splitLayers(
    req(nodes),
    nodes.map((n) => ({ nodes: [n], mode: 'tensor' as const })),
  )!.map((g) => g.end - g.start);

test('layers follow speed, then memory moves them to a neighbour with room', () => {
  assert.deepEqual(counts([node('a', 2000, 2e9), node('b', 2000)]), [8, 4]);
  assert.deepEqual(counts([node('a', 2000), node('b', 2000), node('c', 2000)]), [4, 4, 4]);
  // b holds only 3 layers: the others take the rest.
  assert.deepEqual(counts([node('a', 2000), node('b', 300), node('c', 2000)]), [4, 3, 5]);
  assert.equal(
    splitLayers(
      req([node('a', 1)]),
      Array.from({ length: 13 }, () => ({ nodes: [node('x', 1)], mode: 'tensor' as const })),
    ),
    undefined,
  );
});

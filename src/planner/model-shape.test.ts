import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ANY_TYPE, mainWeightType, shapeOf } from './model-shape.js';
import type { ModelMeta } from './types.js';

const meta: ModelMeta = {
  nLayer: 2,
  layerBytes: [100, 400],
  layerActiveBytes: [100, 150],
  embedBytes: 0,
  headBytes: 0,
  headActiveBytes: 10,
  kvBytesPerToken: [0, 0],
  activationBytesPerToken: 64,
  workingBytes: 0,
};

test('without a shape: whole layers that read their active bytes and hold the rest, not splittable', () => {
  const { shape, splittable } = shapeOf(meta);
  assert.equal(splittable, false);
  assert.deepEqual(
    shape.layers.map((l) => [l.denseFfnBytes, l.expertBytes, l.expertsUsed, l.weightType]),
    [
      [100, 0, 0, ANY_TYPE],
      [150, 250, 0, ANY_TYPE],
    ],
  );
  assert.equal(shape.nEmbd, 32);
});

test('the main weight type is the one with most bytes', () => {
  const { shape } = shapeOf(meta);
  const layers = [
    { ...shape.layers[0], weightType: 'Q6_K' },
    { ...shape.layers[1], weightType: 'Q4_K' },
  ];
  assert.equal(mainWeightType({ ...shape, layers }), 'Q4_K');
});

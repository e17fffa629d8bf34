/**
 * The shape of a staged item product's tiles and stages (no GPU needed): what fits the workgroup
 * memory, in whole subgroups' worth of items, as many tokens a tile as fit.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stageBytes, stageShape } from './wgsl-matmul-items.js';

describe('staged item products: tiles and stages', () => {
  it('take the most tokens and units that fit, in whole subgroups of items', () => {
    for (const bytes of [4096, 7168, 16384, 20480, 32768, 65536]) {
      for (const [unitElems, itemsPerUnit] of [
        [32, 1],
        [256, 8],
      ]) {
        for (const lanes of [4, 8, 16, 32, 64]) {
          for (const maxTokens of [1, 8]) {
            const shape = stageShape(bytes, maxTokens, unitElems, itemsPerUnit, lanes);
            const step = Math.max(1, lanes / itemsPerUnit);
            const label = `${bytes} bytes, units of ${unitElems}, ${lanes} lanes, up to ${maxTokens} tokens`;
            if (!shape) {
              // Not even one subgroup's worth of items for one token.
              assert.ok(stageBytes(step, 1, unitElems) > bytes, label);
              continue;
            }
            assert.ok(shape.tokens >= 1 && shape.tokens <= maxTokens, label);
            assert.equal(shape.units % step, 0, label);
            assert.equal((shape.units * itemsPerUnit) % lanes, 0, `${label}: a stage starts on a subgroup's first lane`);
            assert.ok(stageBytes(shape.units, shape.tokens, unitElems) <= bytes, label);
            // Maximal: one more subgroup's worth does not fit, nor does one more token.
            assert.ok(stageBytes(shape.units + step, shape.tokens, unitElems) > bytes, label);
            if (shape.tokens < maxTokens) assert.ok(stageBytes(step, shape.tokens + 1, unitElems) > bytes, label);
          }
        }
      }
    }
  });

  it('pad each token with one vec4 in 17, and fill 32 KiB with tiles of 7 tokens of whole super-blocks for subgroups of 32', () => {
    assert.equal(stageBytes(4, 1, 256), (256 + 16) * 16);
    assert.deepEqual(stageShape(32768, 8, 256, 8, 32), { tokens: 7, units: 4 });
    assert.deepEqual(stageShape(32768, 8, 32, 1, 32), { tokens: 7, units: 32 });
    assert.deepEqual(stageShape(16384, 1, 256, 8, 32), { tokens: 1, units: 12 });
  });
});

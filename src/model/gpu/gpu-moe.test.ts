/**
 * The GPU router against its CPU twin (MoeRouter.routeLogits) on random logits: every gating rule,
 * the selection bias that chooses but does not weigh, group-limited selection, normalizing and
 * scaling; the chosen experts must be the same, in the same (summation) order, and the weights
 * equal to f32 rounding. Ties (which the CPU resolves as llama.cpp's introsort does) are avoided by
 * the random logits. Skipped, saying why, without a WebGPU adapter.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GgmlType } from '../../gguf/ggml-types.js';
import { createKernels } from '../../kernels/index.js';
import { moeRoute } from '../../kernels/webgpu/expert-kernels.js';
import { Prng } from '../../util/prng.js';
import { MoeRouter, type MoeRouting } from '../blocks/moe-router.js';
import { Workspace } from '../blocks/workspace.js';
import { testGpu } from '../../../test/helpers/test-gpu.js';

const { gpu, skip } = await testGpu();

const kernels = createKernels();

const RULES: [string, MoeRouting, boolean][] = [
  ['softmax, top 2 of 8 (Mixtral)', { experts: 8, used: 2, gating: 'softmax', normalize: false, scale: 0, groups: 0, groupsUsed: 0 }, false],
  ['softmax, top 8 of 128 renormalized (Qwen3-MoE)', { experts: 128, used: 8, gating: 'softmax', normalize: true, scale: 0, groups: 0, groupsUsed: 0 }, false],
  ['sigmoid with the selection bias, normalized and scaled (GLM-4.5)', { experts: 16, used: 4, gating: 'sigmoid', normalize: true, scale: 2.5, groups: 0, groupsUsed: 0 }, true],
  ['sigmoid, groups of 8 of which 4 choose (DeepSeek V3)', { experts: 64, used: 8, gating: 'sigmoid', normalize: true, scale: 2.5, groups: 8, groupsUsed: 4 }, true],
  ['softmax over the chosen (gpt-oss)', { experts: 32, used: 4, gating: 'softmax-selected', normalize: false, scale: 0, groups: 0, groupsUsed: 0 }, false],
];

describe('GPU router', { skip }, () => {
  for (const [name, r, biased] of RULES) {
    it(`chooses and weighs as the CPU router: ${name}`, async () => {
      const g = gpu!;
      const n = 9;
      const rng = new Prng(r.experts + r.used);
      const logits = new Float32Array(n * r.experts).map(() => (rng.next() * 2 - 1) * 3);
      const bias = biased ? new Float32Array(r.experts).map(() => rng.next() * 0.6 - 0.3) : undefined;
      const ws = new Workspace(n);
      const cpu = new MoeRouter(r, { gate: { name: 'gate', type: GgmlType.F32, rows: r.experts, cols: 1, data: new Uint8Array(r.experts * 4) }, selectionBias: bias }, ws);
      ws.allocate();
      const wantIds = new Int32Array(n * r.used);
      const wantWeights = new Float32Array(n * r.used);
      cpu.routeLogits(logits.slice(), n, kernels, wantIds, wantWeights);

      const lt = g.upload(logits);
      const ids = g.tensor(n * r.used * 4);
      const weights = g.tensor(n * r.used * 4);
      moeRoute(g, lt, n, r, bias && g.upload(bias), ids, weights);
      const gotIds = new Uint32Array(await g.read(ids));
      const gotWeights = await g.readF32(weights);
      assert.deepEqual([...gotIds], [...wantIds], 'the same experts in the same order');
      for (let i = 0; i < n * r.used; i++) assert.ok(Math.abs(gotWeights[i] - wantWeights[i]) <= 2e-6 * Math.max(1, Math.abs(wantWeights[i])), `weight ${i}: ${gotWeights[i]} vs ${wantWeights[i]}`);
    });
  }
});

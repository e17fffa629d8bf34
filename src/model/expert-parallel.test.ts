/**
 * Expert parallelism in one process: a home that holds the layers whole but for the other ranks'
 * routed experts, and expert ranks that hold only theirs, compute what the whole model computes for
 * every Mixture-of-Experts family (up to the order in which the routed sum is added); each rank is
 * sent only the tokens routed to its experts; the ranks hold the experts between them, and an expert
 * rank nothing else; groups over layers without experts, or more ranks than experts, fail clearly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../gguf/ggml-types.js';
import { readGguf } from '../gguf/reader.js';
import { createKernels } from '../kernels/index.js';
import { isCairnError } from '../util/errors.js';
import { loadExpertShard, loadShard } from './build-shard.js';
import { readModelConfig } from './config.js';
import { routedRows, runExpertGroup } from './expert-group.js';
import { familyOf } from './registry.js';
import { wholeModel, type ShardSpec } from './shard.js';
import { writeSyntheticModel } from './synthetic.js';
import type { SyntheticQuant } from './synthetic-tensors.js';
import { expertRange } from './tensor-split.js';
import { scratchDir } from '../../test/helpers/paths.js';
import { MOE_SHAPES } from '../../test/helpers/moe-shapes.js';
import { quantizeWithKernels } from '../../test/helpers/oracle-greedy.js';
import { greedyTwo } from '../../test/helpers/greedy-two.js';

const dir = scratchDir('expert-parallel');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const kernels = createKernels();

const CASES: { shape: string; quant: SyntheticQuant }[] = [
  { shape: 'qwen3moe', quant: GgmlType.F32 },
  { shape: 'qwen3moe', quant: GgmlType.Q8_0 },
  { shape: 'qwen2moe', quant: GgmlType.Q8_0 },
  { shape: 'deepseek2', quant: GgmlType.F32 },
  { shape: 'deepseek2', quant: GgmlType.Q8_0 },
  { shape: 'gpt-oss', quant: GgmlType.Q8_0 },
  { shape: 'glm4moe', quant: GgmlType.F32 },
  { shape: 'mixtral', quant: GgmlType.Q8_0 },
];
const SHARES: readonly (readonly number[])[] = [
  [1, 1],
  [2, 1, 1],
];

function open(shape: string, quant: SyntheticQuant) {
  const quantName = typeof quant === 'number' ? GgmlType[quant] : quant;
  const path = join(dir, `${shape}-${quantName}.gguf`);
  writeSyntheticModel(path, { ...MOE_SHAPES[shape], quant, seed: 13 }, quantizeWithKernels);
  const file = readGguf(path);
  const cfg = readModelConfig(file);
  const mapped = readFileSync(path);
  const bytesOf = (t: { offset: number; byteLength: number }) => mapped.subarray(t.offset, t.offset + t.byteLength);
  const opts = { slots: 2, ctx: 32, kvType: GgmlType.F32, maxBatch: 8 } as const;
  return {
    file,
    cfg,
    quantName,
    home: (spec: ShardSpec) => loadShard(file, cfg, spec, bytesOf, kernels, opts),
    expert: (spec: ShardSpec) => loadExpertShard(file, cfg, spec, bytesOf, kernels, opts.maxBatch),
  };
}

for (const { shape, quant } of CASES) {
  const m = open(shape, quant);
  test(`${shape} ${m.quantName}: expert-parallel groups compute what the whole model computes, sending each rank only its tokens`, () => {
    const { cfg, file } = m;
    const whole = m.home(wholeModel(cfg));
    const expected = greedyTwo((b) => whole.forward(b), cfg.nVocab);
    const family = familyOf(cfg);
    const moePlan = Array.from({ length: cfg.nLayer }, (_, l) => family.layerPlan(cfg, l).ffn).find((f) => f.kind === 'moe')!;
    assert.ok(moePlan.kind === 'moe');
    for (const shares of SHARES) {
      const spec = (rank: number): ShardSpec => ({ ...wholeModel(cfg), splitRank: rank, splitCount: shares.length, splitShares: shares, splitMode: 'expert' });
      const home = m.home(spec(0));
      const ranks = shares.slice(1).map((_, i) => m.expert(spec(i + 1)));
      let partial = 0;
      let dispatches = 0;
      const got = greedyTwo(
        (b) =>
          runExpertGroup(home, ranks, b, (rank, layer, rows, n) => {
            dispatches++;
            // Exactly the tokens with a chosen expert in the rank's range travel (checked against the range it was given).
            const held = expertRange(moePlan.experts, { rank, count: shares.length, shares });
            assert.deepEqual(ranks[rank - 1].held(layer), held);
            assert.ok(rows.length <= n);
            if (rows.length < n) partial++;
          }),
        cfg.nVocab,
        expected.tokens,
      );
      assert.ok(dispatches > 0, 'the MoE layers dispatched to the expert ranks');
      assert.ok(partial > 0, `shares ${shares}: some dispatch left out tokens not routed to the rank`);
      for (let i = 0; i < expected.logits.length; i++) {
        const [a, b] = [expected.logits[i], got.logits[i]];
        const scale = Math.max(...a.map(Math.abs));
        const diff = Math.max(...a.map((x, j) => Math.abs(x - b[j])));
        // Only the order in which the routed sum is added changes (each rank's pairs, then the ranks).
        assert.ok(diff <= 1e-5 * scale, `step ${i}, shares ${shares}: logits differ by ${diff} (scale ${scale})`);
      }
      got.picked.forEach((picks, i) =>
        picks.forEach((t, seq) => {
          const want = expected.picked[i][seq];
          if (t === want) return;
          const row = expected.logits[i].subarray(seq * cfg.nVocab, (seq + 1) * cfg.nVocab);
          assert.ok(Math.abs(row[t] - row[want]) <= 1e-4 * Math.max(...row.map(Math.abs)), `step ${i}, sequence ${seq}: picked ${t} instead of ${want}`);
        }),
      );
      // The home and the expert ranks hold the model between them: each routed expert once, the
      // rest (and the KV cache) on the home alone.
      const routed = file.tensors.filter((t) => /_exps\.(weight|bias)$/.test(t.name)).reduce((a, t) => a + t.byteLength, 0);
      const expertBytes = ranks.reduce((a, r) => a + r.weights.bytes, 0);
      assert.equal(home.weights.bytes + expertBytes, whole.weights.bytes, `shares ${shares}: bytes held by the group`);
      assert.ok(expertBytes < routed, 'the expert ranks hold part of the routed experts');
      assert.equal(home.kv.bytes, whole.kv.bytes, 'the home holds the KV cache');
    }
  });
}

test('routedRows picks the tokens with a chosen expert in a range, in order, each once', () => {
  const d = {
    kind: 'experts' as const,
    phase: 'send' as const,
    layer: 0,
    n: 4,
    input: new Float32Array(4),
    ids: Int32Array.from([0, 5, 1, 2, 6, 7, 4, 4]),
    weights: new Float32Array(8),
    result: new Float32Array(4),
  };
  assert.deepEqual(routedRows(d, [4, 8]), [0, 2, 3]);
  assert.deepEqual(routedRows(d, [0, 2]), [0, 1]);
  assert.deepEqual(routedRows(d, [3, 4]), []);
});

test('an expert rank refuses what does not fit: layers without experts, too many tokens, short inputs', () => {
  const { cfg, expert, home } = open('deepseek2', GgmlType.F32);
  const spec: ShardSpec = { ...wholeModel(cfg), splitRank: 1, splitCount: 2, splitMode: 'expert' };
  const rank = expert(spec);
  const d = cfg.nEmbd;
  // Layer 0 of this shape is a leading dense layer.
  assert.equal(rank.held(0), undefined);
  assert.throws(() => rank.compute(0, 1, new Float32Array(d), new Int32Array(2), new Float32Array(2)), (e) => isCairnError(e, 'BAD_ARGUMENT'));
  assert.throws(() => rank.compute(1, 9, new Float32Array(9 * d), new Int32Array(18), new Float32Array(18)), (e) => isCairnError(e, 'BAD_ARGUMENT'));
  assert.throws(() => rank.compute(1, 2, new Float32Array(d), new Int32Array(4), new Float32Array(4)), (e) => isCairnError(e, 'BAD_ARGUMENT'));
  // Ids outside the rank's range (or of no expert at all) add nothing.
  const out = rank.compute(1, 1, new Float32Array(d).fill(1), Int32Array.from([0, -7]), Float32Array.from([1, 1]));
  assert.ok(out.subarray(0, d).every((x) => x === 0));
  // A home is rank 0; ranks after it load as expert ranks only.
  assert.throws(() => home(spec), (e) => isCairnError(e, 'BAD_ARGUMENT') && /routed experts only/.test(e.message));
  // Only the leading dense layer: nothing to spread.
  assert.throws(
    () => expert({ ...spec, layerEnd: 1 }),
    (e) => isCairnError(e, 'MODEL_UNSUPPORTED') && /no routed experts/.test(e.message),
  );
  // More ranks than experts.
  assert.throws(
    () => expert({ ...spec, splitCount: 9 }),
    (e) => isCairnError(e, 'MODEL_UNSUPPORTED') && /8 experts cannot be split over 9 ranks/.test(e.message),
  );
});

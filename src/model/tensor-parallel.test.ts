/**
 * Tensor parallelism inside the model: where a split cuts heads and FFN columns (uneven shares,
 * whole KV groups, more ranks than KV heads, block boundaries), and groups of 2 and 3 ranks, run in
 * lockstep with their partial sums added up, computing what the whole model computes (up to the
 * summation order) for the dense families, in F32, Q8_0 and a K-quant mix.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../gguf/ggml-types.js';
import { readGguf } from '../gguf/reader.js';
import { createKernels } from '../kernels/index.js';
import { isCairnError } from '../util/errors.js';
import { loadShard } from './build-shard.js';
import { readModelConfig } from './config.js';
import { kvCacheBytes } from './kv-cache.js';
import { wholeModel, type ShardSpec } from './shard.js';
import { writeSyntheticModel, type SyntheticShape } from './synthetic.js';
import type { SyntheticQuant } from './synthetic-tensors.js';
import type { ShardBatch } from './decoder.js';
import { runGroup } from './tensor-group.js';
import { columnRange, headRange, proportionalCuts, splitAlignment } from './tensor-split.js';
import { scratchDir } from '../../test/helpers/paths.js';
import { quantizeWithKernels } from '../../test/helpers/oracle-greedy.js';
import { greedyTwo } from '../../test/helpers/greedy-two.js';

const dir = scratchDir('tensor-parallel');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const kernels = createKernels();
const quantize = quantizeWithKernels;

test('cuts follow the shares, every rank gets at least one unit', () => {
  assert.deepEqual(proportionalCuts(8, [1, 1]), [0, 4, 8]);
  assert.deepEqual(proportionalCuts(8, [3, 1]), [0, 6, 8]);
  assert.deepEqual(proportionalCuts(4, [2, 1, 1]), [0, 2, 3, 4]);
  assert.deepEqual(proportionalCuts(3, [100, 1, 1]), [0, 1, 2, 3], 'a tiny share still gets a unit');
  assert.throws(
    () => proportionalCuts(2, [1, 1, 1]),
    (e) => isCairnError(e, 'MODEL_UNSUPPORTED'),
  );
});

test("Phi-3's fused matrices refuse a tensor-parallel split, naming why", () => {
  const path = join(dir, 'phi3.gguf');
  writeSyntheticModel(path, { arch: 'phi3', name: 'tiny', nEmbd: 64, nLayer: 2, nHead: 4, nKvHead: 2, nFf: 128, nVocab: 300, quant: GgmlType.F32, seed: 3 }, quantize);
  const file = readGguf(path);
  const cfg = readModelConfig(file);
  const mapped = readFileSync(path);
  assert.throws(
    () => loadShard(file, cfg, { ...wholeModel(cfg), splitRank: 0, splitCount: 2 }, (t) => mapped.subarray(t.offset, t.offset + t.byteLength), kernels, { slots: 1, ctx: 16, kvType: GgmlType.F32, maxBatch: 4 }),
    (e) => isCairnError(e, 'MODEL_UNSUPPORTED') && /Phi-3 \/ Phi-4 models cannot run tensor-parallel: .*run the model as pipeline stages/.test(e.message),
  );
});

test('FFN columns are cut at 256 where every rank gets a super-block, else at 32', () => {
  assert.equal(splitAlignment(14336, 6), 256);
  assert.equal(splitAlignment(512, 3), 32);
  assert.deepEqual(columnRange(14336, { rank: 0, count: 2 }), [0, 7168]);
  assert.deepEqual(columnRange(14336, { rank: 1, count: 3, shares: [2, 1, 1] }), [7168, 10752]);
  assert.deepEqual(columnRange(512, { rank: 2, count: 3 }), [352, 512]);
  // Every rank's range, end to end, covers the dimension.
  for (const count of [2, 3, 5, 6]) {
    let at = 0;
    for (let rank = 0; rank < count; rank++) {
      const [a, b] = columnRange(8192, { rank, count, shares: Array.from({ length: count }, (_, i) => i + 1) });
      assert.equal(a, at);
      assert.ok(b > a && a % 256 === 0);
      at = b;
    }
    assert.equal(at, 8192);
  }
});

test('heads are cut in whole KV groups on aligned columns, or inside one group when ranks outnumber groups', () => {
  // Llama 3 8B: 32 heads of 128, 8 KV heads: three uneven ranks get whole groups of 4 heads.
  const ranks = [0, 1, 2].map((rank) => headRange(32, 8, 128, { rank, count: 3, shares: [2, 1, 1] }));
  assert.deepEqual(
    ranks.map((r) => [r.heads, r.kvHeads]),
    [
      [
        [0, 16],
        [0, 4],
      ],
      [
        [16, 24],
        [4, 6],
      ],
      [
        [24, 32],
        [6, 8],
      ],
    ],
  );
  // One KV head (multi-query), 4 ranks: every rank reads the one KV head.
  for (let rank = 0; rank < 4; rank++) assert.deepEqual(headRange(16, 1, 64, { rank, count: 4 }).kvHeads, [0, 1]);
  assert.deepEqual(headRange(16, 1, 64, { rank: 3, count: 4 }).heads, [12, 16]);
  // 2 KV heads, 3 ranks: group 0 gets two ranks, group 1 one.
  assert.deepEqual(
    [0, 1, 2].map((rank) => headRange(8, 2, 64, { rank, count: 3 })),
    [
      { heads: [0, 2], kvHeads: [0, 1] },
      { heads: [2, 4], kvHeads: [0, 1] },
      { heads: [4, 8], kvHeads: [1, 2] },
    ],
  );
  assert.throws(
    () => headRange(4, 4, 64, { rank: 0, count: 8 }),
    (e) => isCairnError(e, 'MODEL_UNSUPPORTED'),
  );
});

const SHAPES: Record<string, SyntheticShape> = {
  // Llama with rope factors: 8 heads of 16 in 4 KV groups.
  llama: { arch: 'llama', nEmbd: 128, nLayer: 2, nHead: 8, nKvHead: 4, headDim: 16, nFf: 512, nVocab: 300, ropeFreqs: true },
  // Qwen2: Q/K/V biases and a tied head.
  qwen2: { arch: 'qwen2', nEmbd: 128, nLayer: 2, nHead: 8, nKvHead: 2, headDim: 16, nFf: 384, nVocab: 300, tied: true },
  // Qwen3: per-head Q/K norms, one KV head shared by every rank.
  qwen3: { arch: 'qwen3', nEmbd: 128, nLayer: 2, nHead: 8, nKvHead: 1, headDim: 16, nFf: 512, nVocab: 300 },
  // Gemma 3: sandwich norms (each after its branch's sum), Q/K norms, GeGLU, scaled embeddings, a window on layer 0.
  gemma3: { arch: 'gemma3', nEmbd: 128, nLayer: 2, nHead: 8, nKvHead: 2, headDim: 16, nFf: 512, nVocab: 300, tied: true, slidingWindow: 4, slidingWindowPattern: 2 },
  // K-quants need 256-column cuts: 32 heads of 32 (1024 columns), FFN 768.
  'llama-k': { arch: 'llama', nEmbd: 256, nLayer: 2, nHead: 32, nKvHead: 4, headDim: 32, nFf: 768, nVocab: 300 },
};

const CASES: { shape: string; quant: SyntheticQuant; shares: number[][] }[] = [
  {
    shape: 'llama',
    quant: GgmlType.F32,
    shares: [
      [1, 1],
      [2, 1, 1],
    ],
  },
  {
    shape: 'llama',
    quant: GgmlType.Q8_0,
    shares: [
      [1, 1],
      [1, 1, 2],
    ],
  },
  {
    shape: 'qwen2',
    quant: GgmlType.F32,
    shares: [
      [1, 1],
      [1, 2, 1],
    ],
  },
  {
    shape: 'qwen3',
    quant: GgmlType.F32,
    shares: [
      [1, 1],
      [1, 1, 1],
    ],
  },
  {
    shape: 'gemma3',
    quant: GgmlType.F32,
    shares: [
      [1, 1],
      [1, 2, 1],
    ],
  },
  {
    shape: 'llama-k',
    quant: 'Q4_K_M',
    shares: [
      [1, 1],
      [1, 1, 1],
    ],
  },
];

for (const { shape, quant, shares: splits } of CASES) {
  test(`${shape} ${typeof quant === 'number' ? GgmlType[quant] : quant}: tensor-parallel groups compute what the whole model computes`, () => {
    const path = join(dir, `${shape}-${String(quant)}.gguf`);
    writeSyntheticModel(path, { ...SHAPES[shape], quant, seed: 11 }, quantize);
    const file = readGguf(path);
    const cfg = readModelConfig(file);
    const mapped = readFileSync(path);
    const build = (spec: ShardSpec) =>
      loadShard(file, cfg, spec, (t) => mapped.subarray(t.offset, t.offset + t.byteLength), kernels, {
        slots: 2,
        ctx: 32,
        kvType: GgmlType.F32,
        maxBatch: 8,
      });
    const decode = (run: (b: ShardBatch) => Float32Array, forced?: number[][]) => greedyTwo(run, cfg.nVocab, forced);
    const whole = build(wholeModel(cfg));
    const expected = decode((b) => whole.forward(b));
    for (const shares of splits) {
      const ranks = shares.map((_, rank) => build({ ...wholeModel(cfg), splitRank: rank, splitCount: shares.length, splitShares: shares }));
      const got = decode((b) => runGroup(ranks, b), expected.tokens);
      for (let i = 0; i < expected.logits.length; i++) {
        const [a, b] = [expected.logits[i], got.logits[i]];
        const scale = Math.max(...a.map(Math.abs));
        const diff = Math.max(...a.map((x, j) => Math.abs(x - b[j])));
        // Only the order of float additions changes (F32: ~3e-7 of the largest logit). With
        // quantized weights the activations are quantized to 8 bits before each product, and a
        // sum that lands on the other side of a rounding step moves a logit by up to ~1%. GeGLU
        // (Gemma) takes gelu from a table of f16 inputs, where a last-bit difference can land on
        // the next f16: ~1e-4 of the largest logit (the post-norm on a partial sum: ~30%).
        const tolerance = quant !== GgmlType.F32 ? 2e-2 : SHAPES[shape].arch === 'gemma3' ? 1e-3 : 1e-5;
        assert.ok(diff <= tolerance * scale, `step ${i}, shares ${shares}: logits differ by ${diff} (scale ${scale})`);
      }
      // The same greedy picks, but where the whole model's own top two are a near-tie.
      got.picked.forEach((picks, i) =>
        picks.forEach((t, seq) => {
          const want = expected.picked[i][seq];
          if (t === want) return;
          const row = expected.logits[i].subarray(seq * cfg.nVocab, (seq + 1) * cfg.nVocab);
          assert.ok(
            Math.abs(row[t] - row[want]) <= 1e-4 * Math.max(...row.map(Math.abs)),
            `step ${i}, sequence ${seq}: picked ${t} instead of ${want}`,
          );
        }),
      );
      // Each rank holds only its slices of the layers' matrices and Q/K/V biases; the embedding
      // (every rank embeds its tokens), rope factors and the layers' norms are held by every rank,
      // the head and the output bias by rank 0.
      const held = ranks.reduce((a, r) => a + r.weights.bytes, 0);
      const everyRank = file.tensors
        .filter(
          (t) =>
            t.name === 'token_embd.weight' ||
            t.name === 'rope_freqs.weight' ||
            (t.name.startsWith('blk.') && t.dims.length === 1 && !/attn_(output|q|k|v)\.bias$/.test(t.name)),
        )
        .reduce((a, t) => a + t.byteLength, 0);
      // A KV head that ranks share (more ranks than KV heads) is held by each of them.
      const heads = shares.map((_, rank) => headRange(cfg.nHead, cfg.nKvHead, cfg.headDim, { rank, count: shares.length, shares }));
      const kvHeadsHeld = heads.reduce((a, h) => a + h.kvHeads[1] - h.kvHeads[0], 0);
      const kvWeights = file.tensors.filter((t) => /attn_[kv]\.(weight|bias)$/.test(t.name)).reduce((a, t) => a + t.byteLength, 0);
      const sharedKv = ((kvHeadsHeld - cfg.nKvHead) * kvWeights) / cfg.nKvHead;
      assert.equal(held, whole.weights.bytes + (shares.length - 1) * everyRank + sharedKv, `shares ${shares}: bytes held by the ranks`);
      // KV caches hold each rank's KV heads only.
      const kv = ranks.reduce((a, r) => a + r.kv.bytes, 0);
      const kvPerHead = kvCacheBytes(cfg, wholeModel(cfg), 2 * 32, GgmlType.F32) / cfg.nKvHead;
      assert.equal(kv, kvHeadsHeld * kvPerHead);
    }
    if (quant === 'Q4_K_M') {
      // Five ranks would cut the 1024 attention columns off the K-quants' 256-element blocks.
      assert.throws(
        () => build({ ...wholeModel(cfg), splitRank: 1, splitCount: 5 }),
        (e) => isCairnError(e, 'MODEL_UNSUPPORTED') && /attn_output.weight" cannot be split .*256 elements/.test(e.message),
      );
    }
  });
}

/**
 * Tensor parallelism of Mixture-of-Experts and latent-attention layers: routed experts split by
 * expert (the router replicated), shared experts and leading dense layers by columns, latent
 * attention by heads (the latent replicated and cached whole on every rank). Groups of 2 and 3
 * ranks (uneven), run in lockstep with their partial sums added up, compute what the whole model
 * computes for Qwen3-MoE, Qwen2-MoE, DeepSeek V3 and older V2-Lite-like files, gpt-oss, GLM-4.5 and
 * Mixtral, in F32, Q8_0 and a K-quant mix; the ranks hold the experts between them, not each; and a
 * decode step of a rank reads only the experts it holds that some token chose.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../gguf/ggml-types.js';
import { readGguf, type GgufFile } from '../gguf/reader.js';
import type { ExpertBatch, Kernels } from '../kernels/api.js';
import { expertBatchBytes } from '../kernels/expert-batch-bytes.js';
import { createKernels } from '../kernels/index.js';
import { isCairnError } from '../util/errors.js';
import { declareShard, loadShard } from './build-shard.js';
import { Workspace } from './blocks/workspace.js';
import { readModelConfig } from './config.js';
import type { ShardBatch } from './decoder.js';
import { GgufTensorSource } from './gguf-tensor-source.js';
import { kvCacheBytes } from './kv-cache.js';
import { familyOf } from './registry.js';
import { tensorSplitOf, wholeModel, type ShardSpec } from './shard.js';
import { writeSyntheticModel } from './synthetic.js';
import type { SyntheticQuant } from './synthetic-tensors.js';
import { runGroup } from './tensor-group.js';
import { expertRange, headRange, latentHeadRange, type TensorSplit } from './tensor-split.js';
import { scratchDir } from '../../test/helpers/paths.js';
import { MOE_SHAPES as SHAPES } from '../../test/helpers/moe-shapes.js';
import { quantizeWithKernels } from '../../test/helpers/oracle-greedy.js';
import { greedyTwo } from '../../test/helpers/greedy-two.js';

const dir = scratchDir('tensor-parallel-moe');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const kernels = createKernels();
const quantize = quantizeWithKernels;

test('experts are cut in proportion to the shares, at least one per rank', () => {
  const ranges = (experts: number, shares: number[]) =>
    shares.map((_, rank) => expertRange(experts, { rank, count: shares.length, shares }));
  assert.deepEqual(ranges(8, [1, 1]), [
    [0, 4],
    [4, 8],
  ]);
  assert.deepEqual(ranges(128, [2, 1, 1]), [
    [0, 64],
    [64, 96],
    [96, 128],
  ]);
  assert.deepEqual(ranges(3, [100, 1, 1]), [
    [0, 1],
    [1, 2],
    [2, 3],
  ]);
  assert.deepEqual(expertRange(60, { rank: 0, count: 1 }), [0, 60]);
  assert.throws(
    () => expertRange(4, { rank: 0, count: 5 }),
    (e) => isCairnError(e, 'MODEL_UNSUPPORTED') && /4 experts cannot be split over 5 ranks/.test(e.message),
  );
});

test('latent-attention heads are cut where the output projection columns allow', () => {
  // DeepSeek V3: 128 heads of 128 values: cuts every 2 heads (256 columns).
  assert.deepEqual(latentHeadRange(128, 128, { rank: 1, count: 3, shares: [2, 1, 1] }), [64, 96]);
  // DeepSeek-V2-Lite: 16 heads; 8 ranks still get 256 columns each, 16 ranks one head of 128 (cut at 32).
  assert.deepEqual(latentHeadRange(16, 128, { rank: 7, count: 8 }), [14, 16]);
  assert.deepEqual(latentHeadRange(16, 128, { rank: 5, count: 16 }), [5, 6]);
  // The same boundaries as GQA's with one KV head per head.
  for (const rank of [0, 1, 2]) {
    const s: TensorSplit = { rank, count: 3, shares: [1, 3, 2] };
    assert.deepEqual(latentHeadRange(32, 64, s), headRange(32, 32, 64, s).heads);
  }
  assert.throws(
    () => latentHeadRange(4, 16, { rank: 0, count: 3 }),
    (e) => isCairnError(e, 'MODEL_UNSUPPORTED') && /latent-attention heads/.test(e.message),
  );
});

const TWO_AND_THREE: readonly (readonly number[])[] = [
  [1, 2],
  [2, 1, 1],
];
const CASES: { shape: string; quant: SyntheticQuant; shares?: readonly (readonly number[])[] }[] = [
  { shape: 'qwen3moe', quant: GgmlType.F32 },
  {
    shape: 'qwen3moe',
    quant: GgmlType.Q8_0,
    shares: [
      [1, 1],
      [1, 1, 2],
    ],
  },
  { shape: 'qwen2moe', quant: GgmlType.F32 },
  {
    shape: 'qwen2moe',
    quant: GgmlType.Q8_0,
    shares: [
      [1, 1],
      [1, 2, 1],
    ],
  },
  { shape: 'deepseek2', quant: GgmlType.F32 },
  {
    shape: 'deepseek2',
    quant: GgmlType.Q8_0,
    shares: [
      [1, 1],
      [1, 1, 1],
    ],
  },
  { shape: 'deepseek2-kv-b', quant: GgmlType.F32 },
  { shape: 'deepseek2-kv-b', quant: GgmlType.Q8_0 },
  { shape: 'gpt-oss', quant: GgmlType.F32 },
  {
    shape: 'gpt-oss',
    quant: GgmlType.Q8_0,
    shares: [
      [1, 1],
      [1, 1, 1],
    ],
  },
  { shape: 'glm4moe', quant: GgmlType.F32 },
  { shape: 'glm4moe', quant: GgmlType.Q8_0 },
  { shape: 'mixtral', quant: GgmlType.F32 },
  {
    shape: 'mixtral',
    quant: GgmlType.Q8_0,
    shares: [
      [1, 1],
      [1, 1, 1],
    ],
  },
  {
    shape: 'qwen2moe-k',
    quant: 'Q4_K_M',
    shares: [
      [1, 1],
      [1, 1, 1],
    ],
  },
];

/** What one expert product read of a bank: its first expert and how many it could address, and the experts it used. */
interface BankRead {
  readonly first: number;
  readonly held: number;
  readonly experts: Set<number>;
}

/**
 * Kernels that pass every call through and, while `on`, record which experts of which bank each
 * expert product reads: the bank from where its weights lie in the mapped file, the experts from
 * the ids its batch was prepared with.
 */
class ExpertReads {
  on = false;
  readonly reads = new Map<string, BankRead>();
  /** Bytes of each expert batch made. */
  readonly made: number[] = [];
  readonly kernels: Kernels;

  constructor(base: Kernels, file: GgufFile, mapped: Uint8Array) {
    const banks = file.tensors.filter((t) => t.dims.length === 3);
    const prepared = new WeakMap<ExpertBatch, Int32Array>();
    const record = (batch: ExpertBatch, w: Uint8Array) => {
      // Split attn_kv_b copies live outside the file.
      if (!this.on || w.buffer !== mapped.buffer) return;
      const at = w.byteOffset - mapped.byteOffset;
      const t = banks.find((b) => at >= b.offset && at < b.offset + b.byteLength);
      assert.ok(t, 'an expert product reads a bank of the file');
      const expertBytes = t.byteLength / t.dims[2];
      const first = (at - t.offset) / expertBytes;
      const held = w.byteLength / expertBytes;
      assert.ok(Number.isInteger(first) && Number.isInteger(held), `${t.name}: whole experts`);
      let r = this.reads.get(t.name);
      if (!r) this.reads.set(t.name, (r = { first, held, experts: new Set() }));
      assert.deepEqual([r.first, r.held], [first, held], `${t.name}: one range of experts per step`);
      for (const e of prepared.get(batch)!) r.experts.add(first + e);
    };
    const made = this.made;
    this.kernels = new Proxy(base, {
      get(target, prop) {
        if (prop === 'createExpertBatch') {
          return (...a: Parameters<Kernels['createExpertBatch']>) => {
            made.push(expertBatchBytes(...a));
            return target.createExpertBatch(...a);
          };
        }
        if (prop === 'prepareExperts') {
          return (...a: Parameters<Kernels['prepareExperts']>) => {
            prepared.set(a[0], a[4].slice(0, a[3] * a[0].nUsed));
            target.prepareExperts(...a);
          };
        }
        if (prop === 'expertMatmul') {
          return (...a: Parameters<Kernels['expertMatmul']>) => {
            record(a[0], a[1]);
            target.expertMatmul(...a);
          };
        }
        const v: unknown = Reflect.get(target, prop, target);
        return typeof v === 'function' ? (v as (...args: unknown[]) => unknown).bind(target) : v;
      },
    });
  }
}

/** Greedy decoding of two sequences prefilled together (greedyTwo), recording what each decode step reads. */
function decode(run: (b: ShardBatch) => Float32Array, nVocab: number, readers: ExpertReads[], forced?: number[][]) {
  /** Per decode step, what each reader recorded. */
  const reads: Map<string, BankRead>[][] = [];
  const result = greedyTwo(run, nVocab, forced, (step) => {
    for (const r of readers) {
      r.reads.clear();
      r.on = true;
    }
    step();
    for (const r of readers) r.on = false;
    reads.push(readers.map((r) => new Map(r.reads)));
  });
  return { ...result, reads };
}

for (const { shape, quant, shares: splits = TWO_AND_THREE } of CASES) {
  const quantName = typeof quant === 'number' ? GgmlType[quant] : quant;
  test(`${shape} ${quantName}: tensor-parallel groups compute what the whole model computes`, () => {
    const path = join(dir, `${shape}-${quantName}.gguf`);
    writeSyntheticModel(path, { ...SHAPES[shape], quant, seed: 11 }, quantize);
    const file = readGguf(path);
    const cfg = readModelConfig(file);
    const family = familyOf(cfg);
    const mapped = readFileSync(path);
    const build = (spec: ShardSpec, k: Kernels) =>
      loadShard(file, cfg, spec, (t) => mapped.subarray(t.offset, t.offset + t.byteLength), k, {
        slots: 2,
        ctx: 32,
        kvType: GgmlType.F32,
        maxBatch: 8,
      });
    const wholeReads = new ExpertReads(kernels, file, mapped);
    const whole = build(wholeModel(cfg), wholeReads.kernels);
    const expected = decode((b) => whole.forward(b), cfg.nVocab, [wholeReads]);
    const plans = Array.from({ length: cfg.nLayer }, (_, l) => family.layerPlan(cfg, l));
    const moePlan = plans.find((p) => p.ffn.kind === 'moe')!.ffn;
    assert.ok(moePlan.kind === 'moe');
    const attention = plans[0].attention;
    // Every decode step of the whole model reads (at least) the up and down experts of every MoE layer.
    const moeLayers = plans.filter((p) => p.ffn.kind === 'moe').length;
    for (const [reads] of expected.reads) assert.ok([...reads.keys()].filter((n) => /_exps\.weight$/.test(n)).length >= 2 * moeLayers);

    for (const shares of splits) {
      const splitOf = (rank: number): TensorSplit => ({ rank, count: shares.length, shares });
      const readers = shares.map(() => new ExpertReads(kernels, file, mapped));
      const ranks = shares.map((_, rank) =>
        build({ ...wholeModel(cfg), splitRank: rank, splitCount: shares.length, splitShares: shares }, readers[rank].kernels),
      );
      const got = decode((b) => runGroup(ranks, b), cfg.nVocab, readers, expected.tokens);
      for (let i = 0; i < expected.logits.length; i++) {
        const [a, b] = [expected.logits[i], got.logits[i]];
        const scale = Math.max(...a.map(Math.abs));
        const diff = Math.max(...a.map((x, j) => Math.abs(x - b[j])));
        // Only the summation order changes (the partial sums', and a rank's pairs' within the routed
        // sum); with K-quants a sum on the other side of a rounding step of the next layer's 8-bit
        // activations moves a logit by up to ~1%.
        const tolerance = typeof quant === 'number' ? 1e-5 : 2e-2;
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

      // A decode step of a rank reads, of each expert bank, only its own experts that a token chose
      // (none where no token chose one of them); of latent attention's per-head banks, its heads.
      got.reads.forEach((byRank, step) =>
        byRank.forEach((reads, rank) => {
          const want = expected.reads[step][0];
          const experts = expertRange(moePlan.experts, splitOf(rank));
          const heads = attention.kind === 'mla' ? latentHeadRange(attention.heads, attention.vDim, splitOf(rank)) : undefined;
          for (const name of new Set([...want.keys(), ...reads.keys()])) {
            const r = reads.get(name);
            const wanted = [...(want.get(name)?.experts ?? [])].sort((x, y) => x - y);
            const [first, end] = /_exps\.weight$/.test(name) ? experts : heads!;
            const mine = wanted.filter((e) => e >= first && e < end);
            const where = `step ${step}, shares ${shares}, rank ${rank}, ${name}`;
            if (mine.length === 0) {
              assert.equal(r, undefined, `${where}: reads experts no token chose`);
              continue;
            }
            assert.ok(r, `${where}: reads nothing`);
            assert.deepEqual([r.first, r.held], [first, end - first], `${where}: addresses only its own experts`);
            assert.deepEqual(
              [...r.experts].sort((x, y) => x - y),
              mine,
              where,
            );
          }
        }),
      );

      // Bytes held: each rank its slices of the layers' matrices and Q/K/V biases, its experts and
      // their biases; every rank the embedding, rope factors, norms and the other vectors, routers,
      // and latent attention's shared projections; rank 0 the head and the attention output bias.
      const layerOf = (name: string) => Number(/^blk\.(\d+)\./.exec(name)?.[1] ?? -1);
      const everyRank = file.tensors
        .filter(
          (t) =>
            t.name === 'token_embd.weight' ||
            t.name === 'rope_freqs.weight' ||
            (layerOf(t.name) >= 0 &&
              layerOf(t.name) < cfg.nLayer &&
              ((t.dims.length === 1 && !/attn_(output|q|k|v)\.bias$/.test(t.name)) ||
                /\.(ffn_gate_inp|attn_q_a|attn_kv_a_mqa)\.weight$/.test(t.name))),
        )
        .reduce((a, t) => a + t.byteLength, 0);
      // A KV head that ranks share (more ranks than KV heads) is held by each of them.
      let sharedKv = 0;
      let kvHeadsHeld = 0;
      if (attention.kind === 'gqa') {
        const heads = shares.map((_, rank) => headRange(attention.heads, attention.kvHeads, attention.headDim, splitOf(rank)));
        kvHeadsHeld = heads.reduce((a, h) => a + h.kvHeads[1] - h.kvHeads[0], 0);
        const kvWeights = file.tensors.filter((t) => /attn_[kv]\.(weight|bias)$/.test(t.name)).reduce((a, t) => a + t.byteLength, 0);
        sharedKv = ((kvHeadsHeld - attention.kvHeads) * kvWeights) / attention.kvHeads;
      }
      // (The experts and everything else split add up to the whole model's bytes.)
      const held = ranks.reduce((a, r) => a + r.weights.bytes, 0);
      assert.equal(held, whole.weights.bytes + (shares.length - 1) * everyRank + sharedKv, `shares ${shares}: bytes held by the ranks`);

      // KV caches: GQA ranks hold their KV heads; latent attention's row is the same on every rank.
      const kv = ranks.map((r) => r.kv.bytes);
      if (attention.kind === 'gqa') {
        assert.equal(
          kv.reduce((a, b) => a + b),
          (kvHeadsHeld * kvCacheBytes(cfg, wholeModel(cfg), 2 * 32, GgmlType.F32)) / attention.kvHeads,
        );
      } else {
        for (const b of kv) assert.equal(b, whole.kv.bytes);
      }
    }
  });
}

test('a rank holds its experts and counts its share of the chosen ones as read per token', () => {
  const path = join(dir, 'accounting.gguf');
  writeSyntheticModel(path, { ...SHAPES.qwen3moe, quant: GgmlType.Q8_0, seed: 5 }, quantize);
  const file = readGguf(path);
  const name = 'blk.1.ffn_down_exps.weight';
  const t = file.tensors.find((x) => x.name === name)!;
  const [E, k, width, nEmbd] = [8, 2, 64, 128];
  const expertBytes = t.byteLength / E;
  const shares = [3, 1, 1];
  let active = 0;
  for (let rank = 0; rank < shares.length; rank++) {
    const split = { rank, count: shares.length, shares };
    const src = new GgufTensorSource(file, undefined, split);
    src.enter(1);
    const range = expertRange(E, split);
    const bank = src.expertsRange(name, E, nEmbd, width, k, range);
    const held = range[1] - range[0];
    assert.deepEqual([bank.first, bank.count, bank.expertBytes], [range[0], held, expertBytes]);
    const bytes = src.bytesOf(1);
    assert.equal(bytes.total, held * expertBytes);
    assert.equal(bytes.activePerToken, Math.round((k * held * expertBytes) / E));
    assert.equal(bytes.parameters, held * nEmbd * width);
    active += bytes.activePerToken;
  }
  assert.ok(Math.abs(active - k * expertBytes) <= shares.length, 'the ranks read what the whole layer reads');
  // A loaded rank's bank is a view of its experts in the file.
  const mapped = readFileSync(path);
  const src = new GgufTensorSource(
    file,
    { bytesOf: (x) => mapped.subarray(x.offset, x.offset + x.byteLength), kernels },
    { rank: 1, count: 2 },
  );
  const bank = src.expertsRange(name, E, nEmbd, width, k, [4, 8]);
  assert.equal(bank.data.buffer, mapped.buffer);
  assert.equal(bank.data.byteOffset - mapped.byteOffset, t.offset + 4 * expertBytes);
  assert.equal(bank.data.byteLength, 4 * expertBytes);
  assert.throws(
    () => src.expertsRange(name, E, nEmbd, width, k, [6, 9]),
    (e) => isCairnError(e, 'MODEL_UNSUPPORTED'),
  );
});

test("a rank's memory estimate is the activations and expert batches it then uses", () => {
  const path = join(dir, 'batches.gguf');
  writeSyntheticModel(path, { ...SHAPES.deepseek2, quant: GgmlType.Q8_0, seed: 4 }, quantize);
  const file = readGguf(path);
  const cfg = readModelConfig(file);
  const mapped = readFileSync(path);
  const spec: ShardSpec = { ...wholeModel(cfg), splitRank: 1, splitCount: 3, splitShares: [2, 1, 1] };
  // A dry build: no data, nothing allocated.
  const ws = new Workspace(8);
  declareShard(cfg, spec, new GgufTensorSource(file, undefined, tensorSplitOf(spec)), ws);
  const rec = new ExpertReads(kernels, file, mapped);
  const rank = loadShard(file, cfg, spec, (t) => mapped.subarray(t.offset, t.offset + t.byteLength), rec.kernels, {
    slots: 1,
    ctx: 16,
    kvType: GgmlType.F16,
    maxBatch: 8,
  });
  assert.equal(rank.activationBytes, ws.bytes);
  // Eight tokens route to every expert range: every batch is made (its partial sums left as they are).
  const steps = rank.forwardSteps({
    nTokens: 8,
    tokens: Int32Array.from([1, 260, 261, 270, 275, 280, 290, 299]),
    spans: [{ slot: 0, pos0: 0, start: 0, n: 8 }],
  });
  while (!steps.next().done);
  // The MLA key and value products, and the MoE gate-and-up and down products, one batch each.
  assert.equal(rec.made.length, 4);
  assert.equal(
    rec.made.reduce((a, b) => a + b),
    ws.asideBytes,
  );
});

test('a split the experts cannot take is refused naming the layer and its experts', () => {
  const path = join(dir, 'refused.gguf');
  // 16 heads split 5 ways, but 4 experts cannot.
  writeSyntheticModel(
    path,
    { ...SHAPES.qwen3moe, nHead: 16, nKvHead: 16, moe: { experts: 4, used: 2, width: 64 }, quant: GgmlType.F32, seed: 3 },
    quantize,
  );
  const file = readGguf(path);
  const cfg = readModelConfig(file);
  const mapped = readFileSync(path);
  assert.throws(
    () =>
      loadShard(
        file,
        cfg,
        { ...wholeModel(cfg), splitRank: 1, splitCount: 5 },
        (t) => mapped.subarray(t.offset, t.offset + t.byteLength),
        kernels,
        { slots: 1, ctx: 8, kvType: GgmlType.F32, maxBatch: 2 },
      ),
    (e) =>
      isCairnError(e, 'MODEL_UNSUPPORTED') &&
      /layer 0 of this Qwen3-MoE model: its Mixture-of-Experts FFN cannot be split this way \(4 experts cannot be split over 5 ranks\)/.test(
        e.message,
      ),
  );
});

/**
 * The Mixture-of-Experts families (Mixtral under `llama`, `qwen2moe`, `qwen3moe`, `glm4moe`)
 * through their public parts: what each layer is (leading dense layers, experts, shared experts),
 * bytes held and read per token (a token reads `used` of a layer's experts) checked against the
 * file's tensor index, skipped multi-token-prediction layers, a model split in two stages computing
 * exactly what it computes whole, and the files llama.cpp would refuse refused by name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType, ggmlRowBytes } from '../gguf/ggml-types.js';
import { readGguf, type GgufFile } from '../gguf/reader.js';
import { gv } from '../gguf/values.js';
import { createKernels } from '../kernels/index.js';
import { isCairnError, type CairnErrorCode } from '../util/errors.js';
import { loadShard } from './build-shard.js';
import { readModelConfig } from './config.js';
import { kvCacheBytes } from './kv-cache.js';
import { shardTensorNames, surveyModel } from './model-bytes.js';
import { summarizeModel } from './summary.js';
import { familyFor, familyOf } from './registry.js';
import { wholeModel, type ShardSpec } from './shard.js';
import { SYNTHETIC_SHAPES, writeSyntheticModel, type SyntheticShape } from './synthetic.js';
import { SyntheticTensors } from './synthetic-tensors.js';
import type { DecoderShard } from './decoder.js';
import { rewriteGguf, type GgufEdit } from '../../test/helpers/rewrite-gguf.js';
import { scratchDir } from '../../test/helpers/paths.js';

const dir = scratchDir('moe-families');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const kernels = createKernels();
const quantize = (type: GgmlType, src: Float32Array) => {
  const out = new Uint8Array(ggmlRowBytes(type, src.length));
  kernels.quantize(type, src, out, src.length);
  return out;
};

const SHAPES: Record<string, SyntheticShape> = {
  mixtral: { arch: 'llama', nEmbd: 64, nLayer: 3, nHead: 4, nKvHead: 2, nFf: 64, nVocab: 300, moe: { experts: 4, used: 2, width: 64 } },
  qwen2moe: {
    arch: 'qwen2moe',
    nEmbd: 64,
    nLayer: 3,
    nHead: 4,
    nKvHead: 4,
    nFf: 96,
    nVocab: 300,
    attnExtras: { qkvBias: true },
    moe: { experts: 6, used: 2, width: 32, sharedWidth: 96 },
  },
  qwen3moe: {
    arch: 'qwen3moe',
    nEmbd: 64,
    nLayer: 3,
    nHead: 4,
    nKvHead: 1,
    headDim: 32,
    nFf: 128,
    nVocab: 300,
    tied: true,
    moe: { experts: 8, used: 3, width: 32 },
  },
  glm4moe: {
    arch: 'glm4moe',
    nEmbd: 64,
    nLayer: 3,
    nHead: 4,
    nKvHead: 2,
    headDim: 32,
    nFf: 128,
    nVocab: 300,
    attnExtras: { qkvBias: true, qkNorm: true },
    moe: { experts: 8, used: 2, width: 32, shared: 2, leadingDense: 1, sigmoid: true, normalize: true, scale: 2.5, nextn: 1 },
  },
};

function model(name: string, quant: GgmlType, shape = SHAPES[name]): { path: string; file: GgufFile } {
  const path = join(dir, `${name}-${quant}.gguf`);
  writeSyntheticModel(path, { ...shape, quant, seed: 5 }, quantize);
  return { path, file: readGguf(path) };
}

const bytesOf = (file: GgufFile, pred: (name: string) => boolean) =>
  file.tensors.filter((t) => pred(t.name)).reduce((a, t) => a + t.byteLength, 0);

test('layer plans: experts, used, shared experts and their widths; leading dense layers; the KV row of GQA', () => {
  const plans = (name: string) => {
    const { file } = model(name, GgmlType.F32);
    const cfg = readModelConfig(file);
    return { cfg, plans: Array.from({ length: cfg.nLayer }, (_, l) => familyOf(cfg).layerPlan(cfg, l)) };
  };
  const mixtral = plans('mixtral');
  assert.deepEqual(mixtral.plans[0].ffn, { kind: 'moe', experts: 4, used: 2, shared: 0, width: 64, sharedWidth: 0 });
  assert.match(familyOf(mixtral.cfg).describe(mixtral.cfg), /^3 layers, .*experts 2 of 4 of 64 \(softmax, normalized\)/);
  const qwen2 = plans('qwen2moe');
  assert.deepEqual(qwen2.plans[2].ffn, { kind: 'moe', experts: 6, used: 2, shared: 1, width: 32, sharedWidth: 96 });
  assert.match(familyOf(qwen2.cfg).describe(qwen2.cfg), /experts 2 of 6 of 32 \+ 1 shared \(gated\) of 96 \(softmax\)/);
  const qwen3 = plans('qwen3moe');
  assert.deepEqual(qwen3.plans[1].ffn, { kind: 'moe', experts: 8, used: 3, shared: 0, width: 32, sharedWidth: 0 });
  assert.deepEqual(qwen3.plans[1].kv, { k: 32, v: 32, heads: 1 });
  const glm = plans('glm4moe');
  assert.equal(glm.cfg.nLayer, 3, 'the multi-token-prediction block is not a layer of the model');
  assert.equal(glm.cfg.rope.nRot, 16, 'partial rotary: half of each head');
  assert.deepEqual(glm.plans[0].ffn, { kind: 'dense', width: 128 });
  assert.deepEqual(glm.plans[1].ffn, { kind: 'moe', experts: 8, used: 2, shared: 2, width: 32, sharedWidth: 64 });
  assert.match(
    familyOf(glm.cfg).describe(glm.cfg),
    /experts 2 of 8 of 32 \+ 2 shared of 64 \(sigmoid, normalized, x2\.5\), 1 leading dense, dense FFN 128/,
  );
});

for (const name of Object.keys(SHAPES)) {
  test(`${name}: a layer holds all its experts and a token reads ${SHAPES[name].moe!.used} of them; the rest is read whole`, () => {
    const { file } = model(name, GgmlType.Q8_0);
    const cfg = readModelConfig(file);
    const { bytes } = surveyModel(file, cfg);
    const moe = SHAPES[name].moe!;
    for (let l = 0; l < cfg.nLayer; l++) {
      const inLayer = (n: string) => n.startsWith(`blk.${l}.`);
      const banks = (n: string) => inLayer(n) && /_exps\.weight$/.test(n);
      const held = bytesOf(file, inLayer);
      const experts = bytesOf(file, banks);
      assert.equal(experts > 0, l >= (moe.leadingDense ?? 0), `layer ${l} has experts unless it is a leading dense layer`);
      assert.equal(bytes.layers[l].total, held, `layer ${l} holds its tensors`);
      assert.equal(
        bytes.layers[l].activePerToken,
        held - experts + (experts / moe.experts) * moe.used,
        `layer ${l} reads ${moe.used} experts`,
      );
    }
    const nextn = bytesOf(file, (n) => n.startsWith(`blk.${cfg.nLayer}.`));
    assert.equal(nextn > 0, name === 'glm4moe');
    assert.equal(bytes.total, bytesOf(file, () => true) - nextn, 'every tensor is counted once, but for the skipped prediction layer');
    // The memory estimate counts the weights the model uses, not the skipped layer's.
    assert.equal(summarizeModel(file, { ctx: 32 }).memory?.weightsBytes, bytes.total);
  });

  test(`${name}: two shards in a row compute exactly what the whole model computes, for batched sequences`, () => {
    const { path, file } = model(name, GgmlType.F32);
    const cfg = readModelConfig(file);
    const mapped = readFileSync(path);
    const build = (spec: ShardSpec) =>
      loadShard(file, cfg, spec, (t) => mapped.subarray(t.offset, t.offset + t.byteLength), kernels, {
        slots: 2,
        ctx: 32,
        kvType: GgmlType.F32,
        maxBatch: 8,
      });
    const whole = [build(wholeModel(cfg))];
    const split = [
      build({ layerStart: 0, layerEnd: 1, splitRank: 0, splitCount: 1 }),
      build({ layerStart: 1, layerEnd: 3, splitRank: 0, splitCount: 1 }),
    ];
    const run = (shards: DecoderShard[]) => {
      const out: number[] = [];
      const step = (tokens: number[], spans: { slot: number; pos0: number; start: number; n: number }[], outputRows: number[]) => {
        let x: Float32Array | undefined;
        for (const s of shards) x = s.forward({ nTokens: tokens.length, tokens: Int32Array.from(tokens), hidden: x, spans, outputRows });
        out.push(...x!);
      };
      step(
        [1, 260, 270, 280, 290],
        [
          { slot: 0, pos0: 0, start: 0, n: 3 },
          { slot: 1, pos0: 0, start: 3, n: 2 },
        ],
        [2, 4],
      );
      for (let i = 0; i < 4; i++)
        step(
          [261 + i, 271 + i],
          [
            { slot: 0, pos0: 3 + i, start: 0, n: 1 },
            { slot: 1, pos0: 2 + i, start: 1, n: 1 },
          ],
          [0, 1],
        );
      return out;
    };
    const a = run(whole);
    assert.equal(a.length, 5 * 2 * cfg.nVocab);
    assert.ok(a.every(Number.isFinite));
    assert.deepEqual(run(split), a);
    // The KV cache is what the family estimates: the second stage's two layers.
    assert.equal(kvCacheBytes(cfg, { layerStart: 1, layerEnd: 3 }, 2 * 32, GgmlType.F32), split[1].kv.bytes);
    const names = shardTensorNames(file, cfg, { layerStart: 1, layerEnd: 3 });
    assert.ok(
      names.every((n) => !n.startsWith(`blk.${cfg.nLayer}.`)),
      'no shard reads the prediction layer',
    );
  });
}

/** A synthetic model of `shape` re-written with `edit`. */
function variant(shape: SyntheticShape, name: string, edit: GgufEdit): string {
  const base = join(dir, `${name}-base.gguf`);
  writeSyntheticModel(base, { ...shape, quant: GgmlType.F32, seed: 1 }, quantize);
  const path = join(dir, `${name}.gguf`);
  rewriteGguf(base, path, edit);
  return path;
}

function load(path: string): void {
  const file = readGguf(path);
  const cfg = readModelConfig(file);
  const bytes = readFileSync(path);
  loadShard(file, cfg, wholeModel(cfg), (t) => bytes.subarray(t.offset, t.offset + t.byteLength), kernels, {
    slots: 1,
    ctx: 8,
    kvType: GgmlType.F32,
    maxBatch: 4,
  });
}

test('MoE files llama.cpp would refuse, or cairn cannot run, fail at load naming what is wrong', () => {
  const glm = SHAPES.glm4moe;
  const cases: [string, SyntheticShape, GgufEdit, CairnErrorCode, RegExp][] = [
    ['glm-no-shared', glm, { metadata: { 'glm4moe.expert_shared_count': gv.u32(0) } }, 'MODEL_UNSUPPORTED', /without shared experts/],
    [
      'glm-mrope',
      glm,
      { metadata: { 'glm4moe.rope.dimension_sections': gv.i32s([8, 8, 0, 0]) } },
      'MODEL_UNSUPPORTED',
      /rope\.dimension_sections/,
    ],
    ['glm-gating', glm, { metadata: { 'glm4moe.expert_gating_func': gv.u32(4) } }, 'MODEL_UNSUPPORTED', /expert gating function 4/],
    ['glm-no-bias', glm, { keep: (n) => n !== 'blk.2.exp_probs_b.bias' }, 'GGUF_MALFORMED', /"blk\.2\.exp_probs_b\.bias" is missing/],
    [
      'glm-nextn',
      glm,
      { metadata: { 'glm4moe.nextn_predict_layers': gv.u32(4) } },
      'GGUF_MALFORMED',
      /4 multi-token-prediction layers of 4 blocks/,
    ],
    [
      'glm-groups',
      glm,
      { metadata: { 'glm4moe.expert_group_count': gv.u32(3), 'glm4moe.expert_group_used_count': gv.u32(1) } },
      'GGUF_MALFORMED',
      /8 experts do not form 3 groups/,
    ],
    [
      'qwen3-used',
      SHAPES.qwen3moe,
      { metadata: { 'qwen3moe.expert_used_count': gv.u32(9) } },
      'GGUF_MALFORMED',
      /9 experts used per token of 8/,
    ],
    [
      'qwen3-none-used',
      SHAPES.qwen3moe,
      { metadata: { 'qwen3moe.expert_used_count': gv.u32(0) } },
      'GGUF_MALFORMED',
      /no expert is used per token/,
    ],
    [
      'qwen3-no-experts',
      SHAPES.qwen3moe,
      { metadata: { 'qwen3moe.expert_count': gv.u32(0) } },
      'GGUF_MALFORMED',
      /"qwen3moe\.expert_count" is missing or zero/,
    ],
    [
      'qwen3-width',
      SHAPES.qwen3moe,
      { metadata: { 'qwen3moe.expert_feed_forward_length': gv.u32(48) } },
      'GGUF_MALFORMED',
      /"blk\.0\.ffn_gate_exps\.weight" has dims \[64, 32, 8\], expected \[64, 48, 8\]/,
    ],
    ['qwen2-tied', SHAPES.qwen2moe, { keep: (n) => n !== 'output.weight' }, 'GGUF_MALFORMED', /"output\.weight" is missing/],
    [
      'qwen2-no-gate',
      SHAPES.qwen2moe,
      { keep: (n) => n !== 'blk.1.ffn_gate_inp_shexp.weight' },
      'GGUF_MALFORMED',
      /"blk\.1\.ffn_gate_inp_shexp\.weight" is missing/,
    ],
  ];
  for (const [name, shape, edit, code, msg] of cases) {
    const path = variant(shape, name, edit);
    assert.throws(
      () => load(path),
      (e) => isCairnError(e, code) && msg.test(e.message) && e.message.includes(`${name}.gguf`),
      name,
    );
  }
});

test("Qwen MoE widths missing or 0 take llama.cpp's fallbacks: feed_forward_length / experts used, and feed_forward_length for the shared expert", () => {
  // 3 used of experts 32 wide: feed_forward_length 98 gives 32 as integers divide.
  const shape: SyntheticShape = { ...SHAPES.qwen3moe, nFf: 98, moe: { experts: 8, used: 3, width: 32 } };
  for (const [name, width] of [
    ['qwen3-no-width', undefined],
    ['qwen3-zero-width', gv.u32(0)],
  ] as const) {
    const path = variant(shape, name, { metadata: { 'qwen3moe.expert_feed_forward_length': width } });
    load(path);
    const cfg = readModelConfig(readGguf(path));
    assert.deepEqual(familyOf(cfg).layerPlan(cfg, 0).ffn, { kind: 'moe', experts: 8, used: 3, shared: 0, width: 32, sharedWidth: 0 }, name);
  }
  // The shared expert is feed_forward_length (96) wide when its own key is 0.
  const path = variant(SHAPES.qwen2moe, 'qwen2-zero-shared', { metadata: { 'qwen2moe.expert_shared_feed_forward_length': gv.u32(0) } });
  load(path);
  const cfg = readModelConfig(readGguf(path));
  assert.deepEqual(familyOf(cfg).layerPlan(cfg, 0).ffn, { kind: 'moe', experts: 6, used: 2, shared: 1, width: 32, sharedWidth: 96 });
});

test('the qwen3-moe-15b-a2b benchmark shape is Qwen3-30B-A3B (30.5B parameters, 3.0B per token) with half its layers', () => {
  const shape = SYNTHETIC_SHAPES['qwen3-moe-15b-a2b'];
  assert.equal(shape.arch, 'qwen3moe');
  assert.equal(shape.nLayer, 24);
  /** Parameters held and read per token (the embedding table is a lookup) of the shape with nLayer layers. */
  const count = (nLayer: number) => {
    const spec = { ...shape, nLayer, quant: GgmlType.Q8_0, seed: 1 };
    const out = new SyntheticTensors(spec, quantize);
    familyFor(spec.arch).synthetic.write(spec, out);
    const elems = (t: { dims: readonly number[] }) => t.dims.reduce((a, b) => a * b, 1);
    const total = out.tensors.reduce((a, t) => a + elems(t), 0);
    const routed = out.tensors.filter((t) => t.name.endsWith('_exps.weight')).reduce((a, t) => a + elems(t), 0);
    const embed = elems(out.tensors.find((t) => t.name === 'token_embd.weight')!);
    return { total: total / 1e9, active: (total - routed + (routed * 8) / 128 - embed) / 1e9, meta: new Map(out.metadata) };
  };
  const real = count(48);
  assert.ok(Math.abs(real.total - 30.5) < 0.1, `${real.total}B parameters with 48 layers`);
  assert.ok(Math.abs(real.active - 3.0) < 0.1, `${real.active}B per token with 48 layers`);
  const half = count(24);
  assert.ok(Math.abs(half.total - 15.6) < 0.1, `${half.total}B parameters`);
  assert.ok(Math.abs(half.active - 1.7) < 0.1, `${half.active}B per token`);
  assert.deepEqual(half.meta.get('qwen3moe.expert_count'), gv.u32(128));
  assert.deepEqual(half.meta.get('qwen3moe.expert_used_count'), gv.u32(8));
  assert.deepEqual(half.meta.get('qwen3moe.expert_feed_forward_length'), gv.u32(768));
});

/**
 * The deepseek2 family beyond its oracle test (test/oracle-deepseek2.test.ts): two pipeline stages
 * compute what the whole model computes; bytes held and read per token (every head's k_b and v_b
 * slices read by every token, `used` of `experts` routed experts); llama.cpp's "lite" rule; the
 * files it cannot run fail at load naming what they are; and the deepseek-v2-lite benchmark shape
 * is DeepSeek-V2-Lite's size.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType, ggmlRowBytes } from '../../gguf/ggml-types.js';
import { readGguf, type GgufFile } from '../../gguf/reader.js';
import { gv } from '../../gguf/values.js';
import { createKernels } from '../../kernels/index.js';
import { isCairnError } from '../../util/errors.js';
import { loadShard } from '../build-shard.js';
import { readModelConfig } from '../config.js';
import type { DecoderShard } from '../decoder.js';
import { surveyModel } from '../model-bytes.js';
import { wholeModel, type ShardSpec } from '../shard.js';
import { SYNTHETIC_SHAPES, writeSyntheticModel, type SyntheticShape } from '../synthetic.js';
import { SyntheticTensors } from '../synthetic-tensors.js';
import { deepseek2Family, type Deepseek2Config } from './deepseek2.js';
import { rewriteGguf, type GgufEdit } from '../../../test/helpers/rewrite-gguf.js';
import { scratchDir } from '../../../test/helpers/paths.js';

const dir = scratchDir('deepseek2');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const kernels = createKernels();
const quantize = (type: GgmlType, src: Float32Array) => {
  const out = new Uint8Array(ggmlRowBytes(type, src.length));
  kernels.quantize(type, src, out, src.length);
  return out;
};

const V3: SyntheticShape = {
  arch: 'deepseek2',
  nEmbd: 64,
  nLayer: 3,
  nHead: 4,
  nKvHead: 1,
  nFf: 128,
  nVocab: 300,
  yarn: { factor: 40, origCtx: 16 },
  mla: { qLora: 32, kvLora: 32, nope: 16, ropeDim: 8, vDim: 16, mscaleAllDim: 1 },
  moe: { experts: 8, used: 2, width: 32, shared: 1, leadingDense: 1, sigmoid: true, normalize: true, scale: 2.5, groups: 4, groupsUsed: 2 },
};

function write(name: string, shape: SyntheticShape, quant: GgmlType): { path: string; file: GgufFile } {
  const path = join(dir, `${name}.gguf`);
  writeSyntheticModel(path, { ...shape, quant, seed: 9 }, quantize);
  return { path, file: readGguf(path) };
}

function shard(path: string, file: GgufFile, spec: ShardSpec): DecoderShard {
  const mapped = readFileSync(path);
  return loadShard(file, readModelConfig(file), spec, (t) => mapped.subarray(t.offset, t.offset + t.byteLength), kernels, {
    slots: 2,
    ctx: 32,
    kvType: GgmlType.F16,
    maxBatch: 8,
  });
}

test('two pipeline stages compute exactly what the whole model computes, batched sequences then decode steps', () => {
  const { path, file } = write('pipeline', V3, GgmlType.Q8_0);
  const cfg = readModelConfig(file);
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
    for (let i = 0; i < 20; i++) {
      step(
        [261 + i, 271 + i],
        [
          { slot: 0, pos0: 3 + i, start: 0, n: 1 },
          { slot: 1, pos0: 2 + i, start: 1, n: 1 },
        ],
        [0, 1],
      );
    }
    return out;
  };
  const whole = run([shard(path, file, wholeModel(cfg))]);
  const split = run([
    shard(path, file, { layerStart: 0, layerEnd: 2, splitRank: 0, splitCount: 1 }),
    shard(path, file, { layerStart: 2, layerEnd: 3, splitRank: 0, splitCount: 1 }),
  ]);
  assert.equal(whole.length, 21 * 2 * cfg.nVocab);
  assert.deepEqual(split, whole);
});

test('bytes: attention and shared experts read in full per token, routed experts used / experts of theirs', () => {
  const { file } = write('bytes', V3, GgmlType.Q8_0);
  const cfg = readModelConfig(file) as Deepseek2Config;
  const { bytes } = surveyModel(file, cfg);
  const size = (pred: (n: string) => boolean) => file.tensors.filter((t) => pred(t.name)).reduce((a, t) => a + t.byteLength, 0);
  for (let l = 0; l < cfg.nLayer; l++) {
    const layer = size((n) => n.startsWith(`blk.${l}.`));
    const routed = size((n) => n.startsWith(`blk.${l}.`) && n.endsWith('_exps.weight'));
    assert.equal(bytes.layers[l].total, layer, `layer ${l} holds its tensors`);
    assert.equal(routed > 0, l >= 1, 'the first layer is dense');
    assert.equal(bytes.layers[l].activePerToken, layer - routed + (routed * 2) / 8, `layer ${l} reads 2 of 8 experts`);
    assert.ok(size((n) => n === `blk.${l}.attn_k_b.weight` || n === `blk.${l}.attn_v_b.weight`) > 0);
  }
  const plans = Array.from({ length: cfg.nLayer }, (_, l) => deepseek2Family.layerPlan(cfg, l));
  assert.deepEqual(plans[0].ffn, { kind: 'dense', width: 128 });
  assert.deepEqual(plans[1].ffn, { kind: 'moe', experts: 8, used: 2, shared: 1, width: 32, sharedWidth: 32 });
  assert.deepEqual(plans[2].attention, { kind: 'mla', heads: 4, qLora: 32, kvLora: 32, nope: 16, ropeDim: 8, vDim: 16 });
  assert.deepEqual(plans[2].kv, { k: 40, v: 0, heads: 1 });
});

test("llama.cpp's lite rule: a 27-layer file projects queries directly and never reads q_lora_rank", () => {
  const lite: SyntheticShape = { ...V3, nLayer: 27, mla: { ...V3.mla!, qLora: 0 } };
  const { path } = write('lite', lite, GgmlType.F32);
  const claimed = join(dir, 'lite-claims-lora.gguf');
  rewriteGguf(path, claimed, { metadata: { 'deepseek2.attention.q_lora_rank': gv.u32(32) } });
  const cfg = readModelConfig(readGguf(claimed)) as Deepseek2Config;
  assert.equal(cfg.mla.qLora, 0);
  // The same key is required of other layer counts.
  const { path: v3 } = write('v3-for-keys', V3, GgmlType.F32);
  const noLora = join(dir, 'no-lora.gguf');
  rewriteGguf(v3, noLora, { metadata: { 'deepseek2.attention.q_lora_rank': undefined } });
  assert.throws(() => readModelConfig(readGguf(noLora)), /q_lora_rank/);
});

test('files deepseek2 cannot run fail at load, naming what they are', () => {
  const { path } = write('base', V3, GgmlType.F32);
  const load = (name: string, edit: GgufEdit) => {
    const p = join(dir, `${name}.gguf`);
    rewriteGguf(path, p, edit);
    const file = readGguf(p);
    const bytes = readFileSync(p);
    loadShard(
      file,
      readModelConfig(file),
      wholeModel(readModelConfig(file)),
      (t) => bytes.subarray(t.offset, t.offset + t.byteLength),
      kernels,
      {
        slots: 1,
        ctx: 8,
        kvType: GgmlType.F32,
        maxBatch: 4,
      },
    );
  };
  const cases: [string, GgufEdit, RegExp, string][] = [
    [
      'legacy',
      { metadata: { 'deepseek2.attention.key_length_mla': undefined, 'deepseek2.attention.value_length_mla': undefined } },
      /1 KV heads for 4 heads in a file without latent attention keys/,
      'GGUF_MALFORMED',
    ],
    [
      'half-mla-keys',
      { metadata: { 'deepseek2.attention.value_length_mla': undefined } },
      /key_length_mla" and ".*value_length_mla" come together/,
      'GGUF_MALFORMED',
    ],
    [
      'nextn',
      { metadata: { 'deepseek2.nextn_predict_layers': gv.u32(3) } },
      /3 multi-token-prediction layers of 3 blocks/,
      'GGUF_MALFORMED',
    ],
    ['kv-heads', { metadata: { 'deepseek2.attention.head_count_kv': gv.u32(4) } }, /head_count_kv" is 4/, 'GGUF_MALFORMED'],
    ['key-length', { metadata: { 'deepseek2.attention.key_length': gv.u32(24) } }, /not the latent cache row/, 'GGUF_MALFORMED'],
    ['no-shared', { metadata: { 'deepseek2.expert_shared_count': gv.u32(0) } }, /without shared experts/, 'MODEL_UNSUPPORTED'],
    ['temperature', { metadata: { 'deepseek2.attention.temperature_scale': gv.f32(0.1) } }, /temperature scaling/, 'MODEL_UNSUPPORTED'],
    [
      'log-multiplier',
      { metadata: { 'deepseek2.rope.scaling.yarn_log_multiplier': gv.f32(NaN) } },
      /"deepseek2\.rope\.scaling\.yarn_log_multiplier" is NaN, not a finite number/,
      'GGUF_MALFORMED',
    ],
    [
      'kv-b',
      {
        keep: (n) => !/^blk\.1\.attn_[kv]_b\.weight$/.test(n),
        add: [{ name: 'blk.1.attn_kv_b.weight', type: GgmlType.F32, dims: [32, 4 * 32], data: new Uint8Array(4 * 32 * 128) }],
      },
      /"blk\.1\.attn_kv_b\.weight" without "blk\.1\.attn_k_b\.weight" in a file with latent attention keys/,
      'MODEL_UNSUPPORTED',
    ],
    ['missing-v-b', { keep: (n) => n !== 'blk.2.attn_v_b.weight' }, /blk\.2\.attn_v_b\.weight/, 'GGUF_MALFORMED'],
  ];
  for (const [name, edit, message, code] of cases) {
    assert.throws(
      () => load(name, edit),
      (e) => isCairnError(e) && e.code === code && message.test(e.message),
      name,
    );
  }
});

test('the deepseek-v2-lite benchmark shape is DeepSeek-V2-Lite: 15.7B parameters, 2.4B read per token', () => {
  const shape = SYNTHETIC_SHAPES['deepseek-v2-lite'];
  assert.equal(shape.arch, 'deepseek2');
  const out = new SyntheticTensors({ ...shape, quant: GgmlType.F16, seed: 1 }, quantize);
  deepseek2Family.synthetic.write({ ...shape, quant: GgmlType.F16, seed: 1 }, out);
  const elems = (t: { dims: readonly number[] }) => t.dims.reduce((a, b) => a * b, 1);
  const total = out.tensors.reduce((a, t) => a + elems(t), 0);
  const routed = out.tensors.filter((t) => t.name.endsWith('_exps.weight')).reduce((a, t) => a + elems(t), 0);
  const embed = elems(out.tensors.find((t) => t.name === 'token_embd.weight')!);
  const active = total - routed + (routed * 6) / 64 - embed;
  assert.ok(Math.abs(total / 1e9 - 15.7) < 0.1, `${total / 1e9}B parameters`);
  assert.ok(Math.abs(active / 1e9 - 2.45) < 0.1, `${active / 1e9}B active`);
  assert.equal(out.tensors.filter((t) => t.name.endsWith('ffn_gate_exps.weight')).length, 26, 'every layer but the first has experts');
  assert.deepEqual(out.tensors.find((t) => t.name === 'blk.1.ffn_up_exps.weight')!.dims, [2048, 1408, 64]);
  assert.deepEqual(out.tensors.find((t) => t.name === 'blk.1.ffn_up_shexp.weight')!.dims, [2048, 2 * 1408]);
  assert.ok(out.tensors.some((t) => t.name === 'blk.0.attn_q.weight') && !out.tensors.some((t) => t.name.includes('attn_q_a')));
});

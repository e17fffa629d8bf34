/**
 * The families through their public parts: byte accounting checked against the file's own tensor
 * index, KV and activation sizes against what a loaded shard allocates, the tensors a shard needs,
 * and a model split in two stages computing exactly what it computes whole.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType, ggmlRowBytes } from '../gguf/ggml-types.js';
import { readGguf, type GgufFile } from '../gguf/reader.js';
import { createKernels } from '../kernels/index.js';
import { loadShard } from './build-shard.js';
import { readModelConfig } from './config.js';
import { kvCacheBytes } from './kv-cache.js';
import { shardTensorNames, surveyModel } from './model-bytes.js';
import { familyOf, MODEL_FAMILIES, supportedArchitectures } from './registry.js';
import { wholeModel, type ShardSpec } from './shard.js';
import { writeSyntheticModel, SYNTHETIC_SHAPES, type SyntheticShape } from './synthetic.js';
import type { DecoderShard } from './decoder.js';
import { scratchDir } from '../../test/helpers/paths.js';

const dir = scratchDir('families');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const kernels = createKernels();
const quantize = (type: GgmlType, src: Float32Array) => {
  const out = new Uint8Array(ggmlRowBytes(type, src.length));
  kernels.quantize(type, src, out, src.length);
  return out;
};

const SHAPES: Record<string, SyntheticShape> = {
  llama: { arch: 'llama', nEmbd: 64, nLayer: 3, nHead: 4, nKvHead: 2, nFf: 128, nVocab: 300, ropeFreqs: true },
  qwen2: { arch: 'qwen2', nEmbd: 64, nLayer: 3, nHead: 4, nKvHead: 2, nFf: 96, nVocab: 300, tied: true },
  qwen3: { arch: 'qwen3', nEmbd: 64, nLayer: 3, nHead: 4, nKvHead: 1, headDim: 32, nFf: 128, nVocab: 300 },
  gemma2: { arch: 'gemma2', nEmbd: 64, nLayer: 3, nHead: 4, nKvHead: 2, headDim: 32, nFf: 128, nVocab: 300, tied: true, slidingWindow: 4, attnLogitSoftcap: 20, finalLogitSoftcap: 30 },
  phi3: { arch: 'phi3', name: 'tiny', nEmbd: 64, nLayer: 3, nHead: 4, nKvHead: 2, headDim: 16, ropeDims: 12, nFf: 96, nVocab: 300, longRope: { origCtx: 16, attnFactor: 1.1 } },
  mistral3: { arch: 'mistral3', nEmbd: 64, nLayer: 3, nHead: 4, nKvHead: 2, nFf: 128, nVocab: 300, ctx: 64, yarn: { factor: 4, origCtx: 16 }, yarnLogMul: 1, attnTemperature: 0.1 },
  gemma3: { arch: 'gemma3', nEmbd: 64, nLayer: 3, nHead: 4, nKvHead: 2, headDim: 32, nFf: 128, nVocab: 300, tied: true, slidingWindow: 4, slidingWindowPattern: 2 },
};

function model(arch: string, quant: GgmlType): { path: string; file: GgufFile } {
  const path = join(dir, `${arch}-${quant}.gguf`);
  writeSyntheticModel(path, { ...SHAPES[arch], quant, seed: 5 }, quantize);
  return { path, file: readGguf(path) };
}

const bytesOf = (file: GgufFile, pred: (name: string) => boolean) =>
  file.tensors.filter((t) => pred(t.name)).reduce((a, t) => a + t.byteLength, 0);
const paramsOf = (file: GgufFile, pred: (name: string) => boolean) =>
  file.tensors.filter((t) => pred(t.name)).reduce((a, t) => a + t.elements, 0);

test('every family is registered under its GGUF architecture names, and every named benchmark shape has one', () => {
  assert.deepEqual(supportedArchitectures(), ['llama', 'qwen2', 'qwen3', 'gemma2', 'gemma3', 'phi3', 'mistral3', 'qwen2moe', 'qwen3moe', 'deepseek2', 'glm4moe', 'gpt-oss']);
  for (const f of MODEL_FAMILIES)
    for (const [name, shape] of Object.entries(f.synthetic.shapes)) assert.ok(f.architectures.includes(shape.arch), name);
  assert.deepEqual(Object.keys(SYNTHETIC_SHAPES), ['llama-1b', 'llama-8b', 'qwen3-0.6b', 'gemma2-2b', 'gemma3-1b', 'gemma3-4b', 'phi4-mini', 'ministral3-3b', 'qwen3-moe-15b-a2b', 'deepseek-v2-lite', 'gpt-oss-20b']);
});

for (const arch of Object.keys(SHAPES)) {
  test(`${arch}: bytes per part as the file's tensor index has them; a token reads one embedding row`, () => {
    const { file } = model(arch, GgmlType.Q8_0);
    const cfg = readModelConfig(file);
    const { bytes } = surveyModel(file, cfg);
    const tied = !file.tensors.some((t) => t.name === 'output.weight');
    const embed = file.tensors.find((t) => t.name === 'token_embd.weight')!;
    for (let l = 0; l < cfg.nLayer; l++) {
      const inLayer = (n: string) => n.startsWith(`blk.${l}.`);
      const [layer, params] = [bytesOf(file, inLayer), paramsOf(file, inLayer)];
      assert.deepEqual(bytes.layers[l], { total: layer, activePerToken: layer, parameters: params, activeParameters: params }, `layer ${l}`);
    }
    const row = ggmlRowBytes(embed.type, cfg.nEmbd);
    assert.deepEqual(bytes.embed, { total: embed.byteLength, activePerToken: row, parameters: embed.elements, activeParameters: cfg.nEmbd });
    const inHead = (n: string) => n === 'output_norm.weight' || n === (tied ? 'token_embd.weight' : 'output.weight');
    const [head, headParams] = [bytesOf(file, inHead), paramsOf(file, inHead)];
    assert.deepEqual(bytes.head, { total: head, activePerToken: head, parameters: headParams, activeParameters: headParams });
    const shared = bytesOf(file, (n) => /^rope_(freqs|factors_long|factors_short)\.weight$/.test(n));
    assert.equal(bytes.shared.total, shared);
    assert.equal(shared > 0, arch === 'llama' || arch === 'phi3', 'only the llama and phi3 models carry rope factors');
    const all = bytesOf(file, () => true);
    assert.equal(bytes.total, all, 'every tensor of the file is used, and counted once');
    // Every weight is read once per token, except the embedding table: one row of it (and all of it when it is the head).
    assert.equal(bytes.activePerToken, all - embed.byteLength + row + (tied ? embed.byteLength : 0));
    // Parameters: each counted once; a token uses all but the embedding rows of other tokens (all of them when tied).
    const params = paramsOf(file, () => true);
    assert.equal(bytes.parameters, params);
    assert.equal(bytes.activeParameters, params - (tied ? 0 : embed.elements - cfg.nEmbd));
  });

  test(`${arch}: KV cache and activations of a loaded shard are the sizes the family estimates`, () => {
    const { path, file } = model(arch, GgmlType.F32);
    const cfg = readModelConfig(file);
    const mapped = readFileSync(path);
    const spec: ShardSpec = { layerStart: 1, layerEnd: 3, splitRank: 0, splitCount: 1 };
    const shard = loadShard(file, cfg, spec, (t) => mapped.subarray(t.offset, t.offset + t.byteLength), kernels, {
      slots: 2,
      ctx: 40,
      kvType: GgmlType.F16,
      maxBatch: 16,
    });
    const plan = familyOf(cfg).layerPlan(cfg, 1);
    assert.deepEqual(plan.kv, { k: cfg.nKvHead * cfg.headDim, v: cfg.nKvHead * cfg.headDim, heads: cfg.nKvHead });
    assert.equal(shard.kv.bytes, 2 * 2 * 40 * 2 * cfg.nKvHead * cfg.headDim * 2);
    assert.equal(kvCacheBytes(cfg, spec, 2 * 40, GgmlType.F16), shard.kv.bytes);
    // The estimate covers any stage: the whole model's buffers, plus logits of up to 8 rows.
    assert.equal(surveyModel(file, cfg, 16).activationBytes, shard.activationBytes + 4 * cfg.nVocab * 8);
    const [qDim, kvDim] = [cfg.nHead * cfg.headDim, cfg.nKvHead * cfg.headDim];
    // Phi-3's fused products write their rows whole before they are split: q, k and v side by side, then gate and up.
    const fused = arch === 'phi3' ? qDim + 2 * kvDim + cfg.nFf : 0;
    const perToken = 3 * cfg.nEmbd + 2 * qDim + 2 * kvDim + 2 * cfg.nFf + fused;
    assert.equal(shard.activationBytes, 4 * 16 * perToken, 'stream, norm and block output; q, k, v, attention; gate and up');
  });

  test(`${arch}: a shard needs its layers' tensors, the embedding first and the head last; two shards need the whole file`, () => {
    const { file } = model(arch, GgmlType.F32);
    const cfg = readModelConfig(file);
    const first = shardTensorNames(file, cfg, { layerStart: 0, layerEnd: 1 });
    const last = shardTensorNames(file, cfg, { layerStart: 1, layerEnd: 3 });
    assert.ok(first.includes('token_embd.weight') && !first.includes('output_norm.weight'));
    assert.ok(first.filter((n) => n.startsWith('blk.')).every((n) => n.startsWith('blk.0.')));
    assert.ok(last.filter((n) => n.startsWith('blk.')).every((n) => /^blk\.[12]\./.test(n)));
    assert.equal(last.includes('token_embd.weight'), SHAPES[arch].tied === true, 'a tied head needs the embedding table');
    assert.deepEqual(new Set([...first, ...last]), new Set(file.tensors.map((t) => t.name)));
  });

  test(`${arch}: two shards in a row compute exactly what the whole model computes, for batched sequences`, () => {
    const { path, file } = model(arch, GgmlType.F32);
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
      build({ layerStart: 0, layerEnd: 2, splitRank: 0, splitCount: 1 }),
      build({ layerStart: 2, layerEnd: 3, splitRank: 0, splitCount: 1 }),
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
  });
}

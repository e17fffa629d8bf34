/**
 * The gpt-oss family through its public parts: which layers slide (llama.cpp's pattern), the
 * bytes a token reads (k of E experts), a model split in two stages computing exactly what it
 * computes whole on sequences longer than the window, and files it refuses, naming why.
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
import { surveyModel } from '../model-bytes.js';
import { familyOf } from '../registry.js';
import type { ShardSpec } from '../shard.js';
import { wholeModel } from '../shard.js';
import { SYNTHETIC_SHAPES, writeSyntheticModel, type SyntheticShape } from '../synthetic.js';
import { SyntheticTensors } from '../synthetic-tensors.js';
import { gptOssFamily } from './gpt-oss.js';
import type { DecoderShard } from '../decoder.js';
import type { GptOssConfig } from './gpt-oss.js';
import { rewriteGguf, type GgufEdit } from '../../../test/helpers/rewrite-gguf.js';
import { scratchDir } from '../../../test/helpers/paths.js';

const dir = scratchDir('gpt-oss');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const kernels = createKernels();
const quantize = (type: GgmlType, src: Float32Array) => {
  const out = new Uint8Array(ggmlRowBytes(type, src.length));
  kernels.quantize(type, src, out, src.length);
  return out;
};

const WINDOW = 4;
const SHAPE: SyntheticShape = {
  arch: 'gpt-oss',
  nEmbd: 64,
  nLayer: 3,
  nHead: 4,
  nKvHead: 2,
  headDim: 16,
  nFf: 64,
  nVocab: 300,
  slidingWindow: WINDOW,
  moe: { experts: 4, used: 2, width: 32, expertType: GgmlType.MXFP4 },
};

function model(name: string, quant: GgmlType, edit?: GgufEdit): { path: string; file: GgufFile } {
  let path = join(dir, `${name}.gguf`);
  writeSyntheticModel(path, { ...SHAPE, quant, seed: 3 }, quantize);
  if (edit) {
    const edited = join(dir, `${name}-edited.gguf`);
    rewriteGguf(path, edited, edit);
    path = edited;
  }
  return { path, file: readGguf(path) };
}

test('gpt-oss: even layers slide (llama.cpp pattern 2), the pattern key and the windowed rope base are read', () => {
  const { file } = model('plan', GgmlType.F32);
  const cfg = readModelConfig(file);
  const fam = familyOf(cfg);
  assert.equal(fam.name, 'gpt-oss');
  const windowOf = (c: typeof cfg, l: number) => {
    const a = familyOf(c).layerPlan(c, l).attention;
    return a.kind === 'gqa' ? a.window : -1;
  };
  const windows = [0, 1, 2].map((l) => windowOf(cfg, l));
  assert.deepEqual(windows, [WINDOW, undefined, WINDOW]);
  for (let l = 0; l < 3; l++) {
    assert.deepEqual(fam.layerPlan(cfg, l).ffn, { kind: 'moe', experts: 4, used: 2, shared: 0, width: 32, sharedWidth: 0 });
    assert.deepEqual(fam.layerPlan(cfg, l).kv, { k: 2 * 16, v: 2 * 16, heads: 2 }, 'every layer caches every position');
  }
  assert.match(fam.describe(cfg), /with sinks, window 4 on 2 layers, experts 2 of 4 of 32 \(softmax-selected\)/);

  const p3 = model('pattern3', GgmlType.F32, { metadata: { 'gpt-oss.attention.sliding_window_pattern': gv.u32(3) } });
  const cfg3 = readModelConfig(p3.file);
  assert.deepEqual(
    [0, 1, 2].map((l) => windowOf(cfg3, l)),
    [WINDOW, WINDOW, undefined],
  );
  // A per-layer array is not a pattern llama.cpp reads: it keeps every other layer.
  const arr = model('pattern-array', GgmlType.F32, {
    metadata: { 'gpt-oss.attention.sliding_window_pattern': gv.u32s([1, 1, 1]) },
  });
  const cfgArr = readModelConfig(arr.file);
  assert.deepEqual(
    [0, 1, 2].map((l) => windowOf(cfgArr, l)),
    [WINDOW, undefined, WINDOW],
  );
  assert.equal((cfg as GptOssConfig).freqBaseSwa, cfg.rope.freqBase, 'the windowed layers rope like the others by default');
  const swa = model('swa-base', GgmlType.F32, { metadata: { 'gpt-oss.rope.freq_base_swa': gv.f32(5000) } });
  assert.equal((readModelConfig(swa.file) as GptOssConfig).freqBaseSwa, 5000);
});

test('gpt-oss: a token reads the whole layer but its experts, of which it reads k of E', () => {
  const { file } = model('bytes', GgmlType.Q8_0);
  const cfg = readModelConfig(file);
  const { bytes } = surveyModel(file, cfg);
  for (let l = 0; l < cfg.nLayer; l++) {
    const layer = file.tensors.filter((t) => t.name.startsWith(`blk.${l}.`));
    const total = layer.reduce((a, t) => a + t.byteLength, 0);
    const experts = layer.filter((t) => /_exps\.weight$/.test(t.name));
    assert.equal(experts.length, 3);
    assert.ok(
      experts.every((t) => t.type === GgmlType.MXFP4),
      'the experts are MXFP4 as in the released files',
    );
    const expertBytes = experts.reduce((a, t) => a + t.byteLength, 0);
    assert.equal(bytes.layers[l].total, total);
    const active = bytes.layers[l].activePerToken;
    const rest = total - expertBytes;
    // The expert biases count whole or k of E: either way between these bounds.
    const biases = layer.filter((t) => /_exps\.bias$/.test(t.name)).reduce((a, t) => a + t.byteLength, 0);
    assert.ok(active >= rest - biases / 2 + expertBytes / 2 && active <= rest + expertBytes / 2, `layer ${l}: ${active}`);
  }
});

test('gpt-oss: two shards in a row compute exactly what the whole model computes, past the window, for batched sequences', () => {
  const { path, file } = model('split', GgmlType.F32);
  const cfg = readModelConfig(file);
  const mapped = readFileSync(path);
  const build = (spec: ShardSpec) =>
    loadShard(file, cfg, spec, (t) => mapped.subarray(t.offset, t.offset + t.byteLength), kernels, {
      slots: 2,
      ctx: 32,
      kvType: GgmlType.F16,
      maxBatch: 8,
    });
  const run = (shards: DecoderShard[]) => {
    const out: number[] = [];
    const step = (tokens: number[], spans: { slot: number; pos0: number; start: number; n: number }[], outputRows: number[]) => {
      let x: Float32Array | undefined;
      for (const s of shards) x = s.forward({ nTokens: tokens.length, tokens: Int32Array.from(tokens), hidden: x, spans, outputRows });
      out.push(...x!);
    };
    step(
      [1, 260, 270, 280, 290, 1, 261, 271],
      [
        { slot: 0, pos0: 0, start: 0, n: 5 },
        { slot: 1, pos0: 0, start: 5, n: 3 },
      ],
      [4, 7],
    );
    for (let i = 0; i < 6; i++)
      step(
        [262 + i, 272 + i],
        [
          { slot: 0, pos0: 5 + i, start: 0, n: 1 },
          { slot: 1, pos0: 3 + i, start: 1, n: 1 },
        ],
        [0, 1],
      );
    return out;
  };
  const whole = run([build(wholeModel(cfg))]);
  assert.equal(whole.length, 7 * 2 * cfg.nVocab);
  assert.ok(whole.every(Number.isFinite));
  const split = run([
    build({ layerStart: 0, layerEnd: 1, splitRank: 0, splitCount: 1 }),
    build({ layerStart: 1, layerEnd: 3, splitRank: 0, splitCount: 1 }),
  ]);
  assert.deepEqual(split, whole);
});

test('gpt-oss files cairn cannot run are refused, naming the key or the feature', () => {
  const refuse = (name: string, edit: GgufEdit, code: string, pattern: RegExp) => {
    const { file } = model(name, GgmlType.F32, edit);
    assert.throws(
      () => readModelConfig(file),
      (e) => isCairnError(e, code as never) && pattern.test(e.message),
      name,
    );
  };
  refuse(
    'no-window',
    { metadata: { 'gpt-oss.attention.sliding_window': undefined } },
    'GGUF_MALFORMED',
    /"gpt-oss\.attention\.sliding_window" is missing/,
  );
  refuse('zero-window', { metadata: { 'gpt-oss.attention.sliding_window': gv.u32(0) } }, 'GGUF_MALFORMED', /sliding window of 0 positions/);
  refuse(
    'huge-window',
    { metadata: { 'gpt-oss.attention.sliding_window': gv.u32(0xffffffff) } },
    'GGUF_MALFORMED',
    /sliding window of 4294967295 positions \(1 to 2147483647 supported\)/,
  );
  refuse(
    'no-expert-width',
    { metadata: { 'gpt-oss.expert_feed_forward_length': undefined } },
    'GGUF_MALFORMED',
    /expert_feed_forward_length/,
  );
  refuse(
    'rope-dims',
    { metadata: { 'gpt-oss.rope.dimension_count': gv.u32(8) } },
    'MODEL_UNSUPPORTED',
    /equal head sizes \(rope dimension count 8, key length 16/,
  );
  refuse('too-many-used', { metadata: { 'gpt-oss.expert_used_count': gv.u32(5) } }, 'GGUF_MALFORMED', /expert_used_count|5 experts used/);
  refuse(
    'groups',
    { metadata: { 'gpt-oss.expert_group_count': gv.u32(3), 'gpt-oss.expert_group_used_count': gv.u32(1) } },
    'GGUF_MALFORMED',
    /4 experts do not form 3 groups/,
  );
});

test('gpt-oss: a file without sinks or the output bias fails at load naming the tensor', () => {
  for (const missing of ['blk.1.attn_sinks.weight', 'blk.0.attn_output.bias', 'blk.2.ffn_down_exps.bias']) {
    const { path, file } = model(`no-${missing}`, GgmlType.F32, { keep: (n) => n !== missing });
    const cfg = readModelConfig(file);
    const bytes = readFileSync(path);
    assert.throws(
      () =>
        loadShard(file, cfg, wholeModel(cfg), (t) => bytes.subarray(t.offset, t.offset + t.byteLength), kernels, {
          slots: 1,
          ctx: 8,
          kvType: GgmlType.F32,
          maxBatch: 4,
        }),
      (e) => isCairnError(e, 'GGUF_MALFORMED') && e.message.includes(`"${missing}" is missing`),
      missing,
    );
  }
});

test('the gpt-oss-20b benchmark shape is gpt-oss-20b: 20.9B parameters, 3.6B read per token, MXFP4 experts, window 128, YaRN x32', () => {
  const shape = SYNTHETIC_SHAPES['gpt-oss-20b'];
  assert.equal(shape.arch, 'gpt-oss');
  const spec = { ...shape, quant: GgmlType.Q8_0, seed: 1 };
  const out = new SyntheticTensors(spec, quantize);
  gptOssFamily.synthetic.write(spec, out);
  const elems = (t: { dims: readonly number[] }) => t.dims.reduce((a, b) => a * b, 1);
  const total = out.tensors.reduce((a, t) => a + elems(t), 0);
  const routed = out.tensors.filter((t) => t.name.endsWith('_exps.weight'));
  const routedElems = routed.reduce((a, t) => a + elems(t), 0);
  const embed = elems(out.tensors.find((t) => t.name === 'token_embd.weight')!);
  const active = total - routedElems + (routedElems * 4) / 32 - embed;
  assert.ok(Math.abs(total / 1e9 - 20.9) < 0.1, `${total / 1e9}B parameters`);
  assert.ok(Math.abs(active / 1e9 - 3.6) < 0.1, `${active / 1e9}B active`);
  assert.equal(routed.length, 3 * 24);
  assert.ok(routed.every((t) => t.type === GgmlType.MXFP4));
  assert.deepEqual(out.tensors.find((t) => t.name === 'blk.23.ffn_down_exps.weight')!.dims, [2880, 2880, 32]);
  const meta = new Map(out.metadata);
  assert.deepEqual(meta.get('gpt-oss.attention.sliding_window'), gv.u32(128));
  assert.deepEqual(meta.get('gpt-oss.rope.scaling.type'), gv.str('yarn'));
  assert.deepEqual(meta.get('gpt-oss.rope.scaling.factor'), gv.f32(32));
  assert.deepEqual(meta.get('gpt-oss.expert_used_count'), gv.u32(4));
});

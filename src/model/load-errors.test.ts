/**
 * A model cairn cannot run fails at load with a message naming what it is: an architecture
 * without a family, a family's variant not run (Mixtral files of older converters), a head layout a block
 * cannot take, or a tensor missing or misshapen. Files are synthetic models re-written the way
 * other tools would write them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../gguf/ggml-types.js';
import { readGguf } from '../gguf/reader.js';
import { gv } from '../gguf/values.js';
import { writeGguf } from '../gguf/writer.js';
import { createKernels, openMapping } from '../kernels/index.js';
import { isCairnError, type CairnErrorCode } from '../util/errors.js';
import { loadShard } from './build-shard.js';
import { readModelConfig } from './config.js';
import { wholeModel } from './shard.js';
import { SHARD_SLICES_KEY } from './tensor-slices.js';
import { summarizeModel } from './summary.js';
import { writeSyntheticModel, type SyntheticShape } from './synthetic.js';
import { rewriteGguf, type GgufEdit } from '../../test/helpers/rewrite-gguf.js';
import { scratchDir } from '../../test/helpers/paths.js';

const dir = scratchDir('load-errors');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const kernels = createKernels({ backend: 'reference' });
const noQuantizer = () => {
  throw new Error('F32 needs no quantizer');
};

function variant(shape: SyntheticShape, name: string, edit: GgufEdit): string {
  const base = join(dir, `${shape.arch}-base.gguf`);
  writeSyntheticModel(base, { ...shape, quant: GgmlType.F32, seed: 1 }, noQuantizer);
  const path = join(dir, `${name}.gguf`);
  rewriteGguf(base, path, edit);
  return path;
}

/** Reads the config and builds the whole model, as loading does. */
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

const llama: SyntheticShape = { arch: 'llama', nEmbd: 64, nLayer: 2, nHead: 4, nKvHead: 2, nFf: 128, nVocab: 300 };

/** Mixtral as llama.cpp writes it: architecture `llama`, expert counts, a router and 3-D expert tensors instead of the dense FFN. */
function mixtral(): string {
  const experts = 4;
  const zeros = (n: number) => new Uint8Array(4 * n);
  const add = [0, 1].flatMap((l) => [
    { name: `blk.${l}.ffn_gate_inp.weight`, type: GgmlType.F32, dims: [64, experts], data: zeros(64 * experts) },
    { name: `blk.${l}.ffn_gate_exps.weight`, type: GgmlType.F32, dims: [64, 128, experts], data: zeros(64 * 128 * experts) },
    { name: `blk.${l}.ffn_up_exps.weight`, type: GgmlType.F32, dims: [64, 128, experts], data: zeros(64 * 128 * experts) },
    { name: `blk.${l}.ffn_down_exps.weight`, type: GgmlType.F32, dims: [128, 64, experts], data: zeros(128 * 64 * experts) },
  ]);
  return variant(llama, 'mixtral', {
    metadata: { 'llama.expert_count': gv.u32(experts), 'llama.expert_used_count': gv.u32(2) },
    keep: (n) => !/ffn_(gate|up|down)\.weight$/.test(n),
    add,
  });
}

test('a Mixtral file (llama with experts) loads as a Mixture of Experts; one written with a tensor per expert is refused by name', () => {
  const path = mixtral();
  load(path);
  const summary = summarizeModel(readGguf(path));
  assert.equal(summary.unsupportedReason, undefined);
  assert.match(summary.family?.shape ?? '', /experts 2 of 4 of 128/);
  // Converters before April 2024 wrote blk.N.ffn_gate.E.weight per expert; llama.cpp no longer loads those.
  const legacy = variant(llama, 'mixtral-split', {
    metadata: { 'llama.expert_count': gv.u32(2), 'llama.expert_used_count': gv.u32(1) },
    keep: (n) => !/ffn_(gate|up|down)\.weight$/.test(n),
    add: [0, 1].flatMap((l) =>
      [0, 1].flatMap((e) => [
        { name: `blk.${l}.ffn_gate.${e}.weight`, type: GgmlType.F32, dims: [64, 128], data: new Uint8Array(4 * 64 * 128) },
        { name: `blk.${l}.ffn_up.${e}.weight`, type: GgmlType.F32, dims: [64, 128], data: new Uint8Array(4 * 64 * 128) },
        { name: `blk.${l}.ffn_down.${e}.weight`, type: GgmlType.F32, dims: [128, 64], data: new Uint8Array(4 * 128 * 64) },
      ]),
    ),
  });
  const expected =
    /mixtral-split\.gguf: Mixtral with one tensor per expert \("blk\.0\.ffn_gate\.0\.weight", written by converters before April 2024\) is not supported/;
  assert.throws(
    () => load(legacy),
    (e) => isCairnError(e, 'MODEL_UNSUPPORTED') && expected.test(e.message),
  );
  assert.match(summarizeModel(readGguf(legacy)).unsupportedReason ?? '', expected, 'inspect says why it cannot run');
});

test('a llama file with expert_count 0 is a dense Llama and loads', () => {
  load(variant(llama, 'llama-0-experts', { metadata: { 'llama.expert_count': gv.u32(0) } }));
});

test('an unknown architecture names itself and the supported ones', () => {
  const path = variant(llama, 'mamba', { metadata: { 'general.architecture': gv.str('mamba') } });
  assert.throws(
    () => load(path),
    (e) =>
      isCairnError(e, 'MODEL_UNSUPPORTED') &&
      /mamba\.gguf: architecture "mamba" is not supported \(supported: llama, qwen2, qwen3, gemma2, gemma3, phi3, mistral3, qwen2moe, qwen3moe, deepseek2, glm4moe, gpt-oss\)/.test(
        e.message,
      ),
  );
});

test("a family's required tensors must be there: Qwen3's Q/K norms, Qwen2's Q/K/V biases", () => {
  const qwen3 = variant({ ...llama, arch: 'qwen3', headDim: 32 }, 'qwen3-no-knorm', { keep: (n) => n !== 'blk.1.attn_k_norm.weight' });
  assert.throws(
    () => load(qwen3),
    (e) => isCairnError(e, 'GGUF_MALFORMED') && /tensor "blk\.1\.attn_k_norm\.weight" is missing/.test(e.message),
  );
  const qwen2 = variant({ ...llama, arch: 'qwen2' }, 'qwen2-no-bias', { keep: (n) => n !== 'blk.0.attn_v.bias' });
  assert.throws(
    () => load(qwen2),
    (e) => isCairnError(e, 'GGUF_MALFORMED') && /tensor "blk\.0\.attn_v\.bias" is missing/.test(e.message),
  );
});

test('a misshapen tensor is named with its dims and the dims the config asks for', () => {
  const path = variant(llama, 'llama-bad-k', {
    keep: (n) => n !== 'blk.1.attn_k.weight',
    add: [{ name: 'blk.1.attn_k.weight', type: GgmlType.F32, dims: [64, 16], data: new Uint8Array(4 * 64 * 16) }],
  });
  assert.throws(
    () => load(path),
    (e) => isCairnError(e, 'GGUF_MALFORMED') && /"blk\.1\.attn_k\.weight" has dims \[64, 16\], expected \[64, 32\]/.test(e.message),
  );
});

test('features a family does not run yet are named: value heads of another size, LongRoPE scaling', () => {
  const wideV = variant({ ...llama, arch: 'qwen3', headDim: 16 }, 'qwen3-wide-v', {
    metadata: { 'qwen3.attention.value_length': gv.u32(32) },
  });
  assert.throws(
    () => readModelConfig(readGguf(wideV)),
    (e) => isCairnError(e, 'MODEL_UNSUPPORTED') && /value head size 32 differs from key head size 16/.test(e.message),
  );
  const longrope = variant(llama, 'llama-longrope', {
    metadata: { 'llama.rope.scaling.type': gv.str('longrope'), 'llama.rope.scaling.factor': gv.f32(4) },
  });
  assert.throws(
    () => readModelConfig(readGguf(longrope)),
    (e) => isCairnError(e, 'MODEL_UNSUPPORTED') && /rope scaling "longrope" is not supported/.test(e.message),
  );
  const yarn = variant(llama, 'llama-yarn', {
    metadata: { 'llama.rope.scaling.type': gv.str('yarn'), 'llama.rope.scaling.factor': gv.f32(4) },
  });
  assert.equal(readModelConfig(readGguf(yarn)).rope.yarn?.extFactor, 1, 'YaRN loads');
});

test('nonsense hyperparameters are refused at load, naming the key, not in every forward pass', () => {
  const cases: [string, ReturnType<typeof gv.u32>, RegExp][] = [
    ['llama.block_count', gv.f32(1.5), /"llama\.block_count" is 1\.5, not a whole number of at least 1/],
    ['llama.embedding_length', gv.f32(NaN), /"llama\.embedding_length" is NaN/],
    ['llama.context_length', gv.i32(-1), /"llama\.context_length" is -1, not a whole number of at least 1/],
    ['llama.rope.dimension_count', gv.u32(3), /"llama\.rope\.dimension_count" is 3, not an even number from 2 to the head size 16/],
    ['llama.rope.dimension_count', gv.u32(32), /"llama\.rope\.dimension_count" is 32/],
    ['llama.rope.dimension_count', gv.u32(0), /"llama\.rope\.dimension_count" is 0/],
    ['llama.rope.freq_base', gv.f32(0), /"llama\.rope\.freq_base" is 0, not a positive number/],
    [
      'llama.attention.layer_norm_rms_epsilon',
      gv.f32(-1e-5),
      /"llama\.attention\.layer_norm_rms_epsilon" is -0\.0000099\d*, not a non-negative number/,
    ],
    ['llama.attention.layer_norm_rms_epsilon', gv.f32(NaN), /"llama\.attention\.layer_norm_rms_epsilon" is NaN/],
  ];
  cases.forEach(([key, value, expected], i) => {
    const path = variant(llama, `llama-nonsense-${i}`, { metadata: { [key]: value } });
    assert.throws(
      () => readModelConfig(readGguf(path)),
      (e) => isCairnError(e, 'GGUF_MALFORMED') && expected.test(e.message),
      `${key} = ${String(value.value)}`,
    );
  });
});

test('a file with general.alignment 1 (F32 vectors at odd offsets) loads and computes what the aligned file does', () => {
  const base = join(dir, 'llama-base.gguf');
  writeSyntheticModel(base, { ...llama, quant: GgmlType.F32, seed: 1 }, noQuantizer);
  const file = readGguf(base);
  const bytes = readFileSync(base);
  const tensors = file.tensors.map((t) => ({
    name: t.name,
    type: t.type,
    dims: t.dims,
    data: bytes.subarray(t.offset, t.offset + t.byteLength),
  }));
  // A key whose length puts the data section, and so every tensor, off a 4-byte boundary.
  let odd = '';
  for (let pad = 1; pad <= 4; pad++) {
    odd = join(dir, `llama-align-1-${pad}.gguf`);
    writeGguf(odd, { alignment: 1, metadata: [['x.pad', gv.str('p'.repeat(pad))], ...file.metadata], tensors });
    if (readGguf(odd).tensors.some((t) => t.dims.length === 1 && t.offset % 4 !== 0)) break;
  }
  const oddFile = readGguf(odd);
  assert.ok(
    oddFile.tensors.some((t) => t.dims.length === 1 && t.offset % 4 !== 0),
    'an F32 vector is unaligned',
  );
  const forward = (f: typeof file, view: (t: { offset: number; byteLength: number }) => Uint8Array, k = kernels) => {
    const cfg = readModelConfig(f);
    const shard = loadShard(f, cfg, wholeModel(cfg), view, k, { slots: 1, ctx: 8, kvType: GgmlType.F32, maxBatch: 4 });
    return shard.forward({
      nTokens: 3,
      tokens: Int32Array.from([1, 260, 270]),
      spans: [{ slot: 0, pos0: 0, start: 0, n: 3 }],
      outputRows: [2],
    });
  };
  // In memory (as without the native library) and mapped, with the kernels of this machine.
  const expected = forward(file, (t) => bytes.subarray(t.offset, t.offset + t.byteLength));
  const oddBytes = readFileSync(odd);
  assert.deepEqual(
    forward(oddFile, (t) => oddBytes.subarray(t.offset, t.offset + t.byteLength)),
    expected,
  );
  const mapping = openMapping(odd);
  try {
    const native = forward(oddFile, (t) => mapping.view(t.offset, t.byteLength), createKernels());
    const reference = forward(file, (t) => bytes.subarray(t.offset, t.offset + t.byteLength), createKernels());
    assert.deepEqual(native, reference);
  } finally {
    mapping.close();
  }
});

test("a shard file's slice of a quantized row that does not cut whole blocks is refused as malformed", () => {
  // A Q8_0 matrix of 64 columns said to be columns [0, 64) of 65: the whole tensor's rows would not be whole blocks.
  const path = variant(llama, 'llama-slice-blocks', {
    metadata: { [SHARD_SLICES_KEY]: gv.str(JSON.stringify([{ name: 'x.weight', kind: 'columns', start: 0, end: 64, full: 65 }])) },
    add: [{ name: 'x.weight', type: GgmlType.Q8_0, dims: [64, 2], data: new Uint8Array(2 * 2 * 34) }],
  });
  assert.throws(
    () => load(path),
    (e) =>
      isCairnError(e, 'GGUF_MALFORMED') &&
      /cairn\.shard\.slices: "x\.weight": \[0, 64\) of 65 does not cut whole blocks of 32 elements/.test(e.message),
  );
});

test('Gemma files with settings cairn cannot run, or nonsense ones, fail at load naming the key', () => {
  const gemma3: SyntheticShape = { arch: 'gemma3', nEmbd: 64, nLayer: 2, nHead: 4, nKvHead: 2, headDim: 32, nFf: 128, nVocab: 300, slidingWindow: 4 };
  const gemma2: SyntheticShape = { ...gemma3, arch: 'gemma2' };
  const cases: [SyntheticShape, string, GgufEdit, CairnErrorCode, RegExp][] = [
    [gemma3, 'gemma3-yarn', { metadata: { 'gemma3.rope.scaling.type': gv.str('yarn'), 'gemma3.rope.scaling.factor': gv.f32(8) } }, 'MODEL_UNSUPPORTED', /Gemma 3 with YaRN rope scaling is not supported/],
    [gemma3, 'gemma3-softcap', { metadata: { 'gemma3.final_logit_softcapping': gv.f32(-1) } }, 'GGUF_MALFORMED', /"gemma3\.final_logit_softcapping" = -1 is not a non-negative number/],
    [gemma3, 'gemma3-swa-base', { metadata: { 'gemma3.rope.freq_base_swa': gv.f32(0) } }, 'GGUF_MALFORMED', /"gemma3\.rope\.freq_base_swa" = 0 is not a positive number/],
    [gemma2, 'gemma2-attn-softcap', { metadata: { 'gemma2.attn_logit_softcapping': gv.f32(Number.NaN) } }, 'GGUF_MALFORMED', /"gemma2\.attn_logit_softcapping" = NaN/],
    [gemma2, 'gemma2-window', { metadata: { 'gemma2.attention.sliding_window': gv.u32(0) } }, 'GGUF_MALFORMED', /sliding window of 0 positions/],
  ];
  for (const [shape, name, edit, code, message] of cases) {
    assert.throws(
      () => load(variant(shape, name, edit)),
      (e) => isCairnError(e, code) && message.test(e.message),
      name,
    );
  }
});

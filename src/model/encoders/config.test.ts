/**
 * What an encoder file must hold and what is refused at load, by name: llama.cpp's required keys,
 * Mixture-of-Experts layers, rerankers, other BERT variants' architectures and tensors; and what
 * `inspect` tells of an encoder (its shape, no KV cache, no rotation for learned positions).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../../gguf/ggml-types.js';
import { Metadata } from '../../gguf/metadata.js';
import { readGguf } from '../../gguf/reader.js';
import { gv } from '../../gguf/values.js';
import { isCairnError } from '../../util/errors.js';
import { readModelConfig } from '../config.js';
import { GgufTensorSource } from '../gguf-tensor-source.js';
import { summarizeModel } from '../summary.js';
import { writeSyntheticModel } from '../synthetic.js';
import { readEncoderFileConfig } from './registry.js';
import { declareEncoder } from './weights.js';
import { scratchDir } from '../../../test/helpers/paths.js';
import { rewriteGguf } from '../../../test/helpers/rewrite-gguf.js';

const dir = scratchDir('encoder-config');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const SHAPE = { nEmbd: 64, nLayer: 2, nHead: 4, nKvHead: 4, nFf: 96, nVocab: 300, ctx: 64, quant: GgmlType.F32, seed: 1 } as const;

function write(arch: string): string {
  const path = join(dir, `${arch}.gguf`);
  writeSyntheticModel(path, { ...SHAPE, arch, pooling: 'cls' }, () => {
    throw new Error('F32 needs no quantizer');
  });
  return path;
}

const bert = write('bert');
const nomic = write('nomic-bert');

function edited(src: string, name: string, edit: Parameters<typeof rewriteGguf>[2]): string {
  const path = join(dir, name);
  rewriteGguf(src, path, edit);
  return path;
}

const config = (path: string) => readEncoderFileConfig(new Metadata(readGguf(path)));

test('a BERT file reads as llama.cpp reads it: LayerNorm epsilon, token types, pooling, non-causal attention, no rotation', () => {
  const cfg = config(bert);
  assert.equal(cfg.arch, 'bert');
  assert.equal(cfg.normEps, Math.fround(1e-12));
  assert.equal(cfg.tokenTypes, 2);
  assert.equal(cfg.pooling, 'cls');
  assert.equal(cfg.causal, false);
  assert.equal(cfg.rope.nRot, 0);
  assert.deepEqual(cfg.kind, { positions: 'absolute', ffn: 'gelu' });
  const n = config(nomic);
  assert.deepEqual(n.kind, { positions: 'rope', ffn: 'swiglu' });
  assert.equal(n.rope.nRot, 16);
  assert.equal(n.rope.mode, 'neox');
  // llama.cpp's default without the key is causal attention.
  assert.equal(config(edited(bert, 'causal.gguf', { metadata: { 'bert.attention.causal': undefined } })).causal, true);
});

test('refused at load, by name: MoE layers, rerankers, missing keys, other architectures, other variants\' tensors', () => {
  const refuses = (f: () => unknown, code: string, message: RegExp) =>
    assert.throws(f, (e: unknown) => isCairnError(e) && e.code === code && message.test(e.message));
  refuses(() => config(edited(nomic, 'moe.gguf', { metadata: { 'nomic-bert.moe_every_n_layers': gv.u32(2) } })), 'MODEL_UNSUPPORTED', /Mixture-of-Experts/);
  refuses(() => config(edited(bert, 'rank.gguf', { metadata: { 'bert.pooling_type': gv.u32(4) } })), 'MODEL_UNSUPPORTED', /reranker/);
  refuses(() => config(edited(bert, 'pool9.gguf', { metadata: { 'bert.pooling_type': gv.u32(9) } })), 'GGUF_MALFORMED', /pooling_type/);
  refuses(() => config(edited(bert, 'types.gguf', { metadata: { 'tokenizer.ggml.token_type_count': undefined } })), 'GGUF_MALFORMED', /token_type_count/);
  refuses(() => config(edited(bert, 'eps.gguf', { metadata: { 'bert.attention.layer_norm_epsilon': undefined } })), 'GGUF_MALFORMED', /layer_norm_epsilon/);
  refuses(() => config(edited(nomic, 'yarn.gguf', { metadata: { 'nomic-bert.rope.scaling.type': gv.str('yarn'), 'nomic-bert.rope.scaling.factor': gv.f32(2) } })), 'MODEL_UNSUPPORTED', /YaRN/);
  const moeArch = edited(nomic, 'nomic-bert-moe.gguf', { metadata: { 'general.architecture': gv.str('nomic-bert-moe') } });
  refuses(() => readModelConfig(readGguf(moeArch)), 'MODEL_UNSUPPORTED', /"nomic-bert-moe" is not supported/);
  assert.match(summarizeModel(readGguf(moeArch)).unsupportedReason ?? '', /nomic-bert-moe/);
  // A decoder path (a cluster) is told what an encoder is.
  refuses(() => readModelConfig(readGguf(bert)), 'MODEL_UNSUPPORTED', /embedding model/);
  const jina = edited(bert, 'jina.gguf', { add: [{ name: 'blk.0.attn_norm_2.weight', type: GgmlType.F32, dims: [64], data: new Uint8Array(256) }] });
  const file = readGguf(jina);
  refuses(() => declareEncoder(config(jina), new GgufTensorSource(file)), 'MODEL_UNSUPPORTED', /attn_norm_2.*jina-bert/);
});

test('inspect: the family, its shape, and memory without a KV cache', () => {
  const s = summarizeModel(readGguf(bert), { ctx: 32 });
  assert.equal(s.family?.name, 'BERT (embeddings only)');
  assert.match(s.family?.shape ?? '', /^2 layers, embedding 64, 4 heads of 16, FFN 96 \(GELU\), vocab 300, absolute positions, cls pooling$/);
  assert.equal(s.memory?.kvCacheBytes, 0);
  assert.equal(s.memory?.weightsBytes, s.tensorBytes, 'every tensor of the file is used');
  assert.ok((s.memory?.activationBytes ?? 0) > 0);
  assert.equal(s.memory?.ctx, 32);
  assert.match(summarizeModel(readGguf(nomic)).family?.shape ?? '', /SwiGLU.*rotary positions \(base 1000\)/);
});

/**
 * Declaring tensors against a file: what a loaded shard gets (views of the data), what a dry build
 * gets (the same checks and accounting, no data), and expert banks addressed one expert at a time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType, ggmlRowBytes } from '../gguf/ggml-types.js';
import { readGguf } from '../gguf/reader.js';
import { writeGguf } from '../gguf/writer.js';
import { createKernels } from '../kernels/index.js';
import { isCairnError } from '../util/errors.js';
import { GgufTensorSource } from './gguf-tensor-source.js';
import { expertMatrix } from './tensor-source.js';
import { scratchDir } from '../../test/helpers/paths.js';

const dir = scratchDir('tensor-source');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const kernels = createKernels();

// 4 experts of 3 x 64 in Q8_0, an embedding table of 10 x 64, a norm and rope factors, all with distinct bytes.
const path = join(dir, 'parts.gguf');
const q8 = (n: number, seed: number) => {
  const out = new Uint8Array(ggmlRowBytes(GgmlType.Q8_0, n));
  kernels.quantize(
    GgmlType.Q8_0,
    new Float32Array(n).map((_, i) => Math.sin(seed + i)),
    out,
    n,
  );
  return out;
};
const f32 = (n: number, seed: number) => new Uint8Array(new Float32Array(n).map((_, i) => seed + i).buffer);
writeGguf(path, {
  metadata: [],
  tensors: [
    { name: 'token_embd.weight', type: GgmlType.Q8_0, dims: [64, 10], data: q8(640, 1) },
    { name: 'blk.0.ffn_up_exps.weight', type: GgmlType.Q8_0, dims: [64, 3, 4], data: q8(768, 2) },
    { name: 'blk.0.ffn_norm.weight', type: GgmlType.F32, dims: [64], data: f32(64, 3) },
    { name: 'rope_freqs.weight', type: GgmlType.F32, dims: [8], data: f32(8, 4) },
  ],
});
const file = readGguf(path);
const bytes = readFileSync(path);
const info = (name: string) => file.tensors.find((t) => t.name === name)!;
const dataOf = (name: string) => bytes.subarray(info(name).offset, info(name).offset + info(name).byteLength);

test('an expert bank is addressed expert by expert in place; a token reads `used` of its experts', () => {
  const src = new GgufTensorSource(file, { bytesOf: (t) => bytes.subarray(t.offset, t.offset + t.byteLength), kernels });
  src.enter(0);
  const bank = src.experts('blk.0.ffn_up_exps.weight', 4, 3, 64, 2);
  const one = 3 * ggmlRowBytes(GgmlType.Q8_0, 64);
  assert.equal(bank.expertBytes, one);
  for (let e = 0; e < 4; e++) {
    const m = expertMatrix(bank, e);
    assert.deepEqual([m.rows, m.cols, m.type], [3, 64, GgmlType.Q8_0]);
    assert.deepEqual(m.data, dataOf('blk.0.ffn_up_exps.weight').subarray(e * one, (e + 1) * one));
    assert.equal(m.data.buffer, bytes.buffer, 'a view of the file data, not a copy');
  }
  assert.throws(() => expertMatrix(bank, 4), RangeError);
  assert.deepEqual(src.bytesOf(0), { total: 4 * one, activePerToken: 2 * one, parameters: 4 * 3 * 64, activeParameters: 2 * 3 * 64 });
  assert.throws(
    () => src.experts('blk.0.ffn_up_exps.weight', 8, 3, 64, 2),
    (e) => isCairnError(e, 'GGUF_MALFORMED') && /has dims \[64, 3, 4\], expected \[64, 3, 8\]/.test(e.message),
  );
  assert.throws(
    () => src.experts('blk.0.ffn_up_exps.weight', 4, 3, 64, 5),
    (e) => isCairnError(e, 'GGUF_MALFORMED'),
  );
});

test('a dry build checks and accounts like a load, without data; shared tensors count once, in no layer', () => {
  const dry = new GgufTensorSource(file);
  for (const l of [0, 1]) {
    dry.enter(l);
    assert.equal(dry.sharedVector('rope_freqs.weight', 8, false), dry.sharedVector('rope_freqs.weight', 8, false));
  }
  dry.enter(0);
  assert.equal(dry.vector('blk.0.ffn_norm.weight', 64).length, 64);
  dry.enter('embed');
  const table = dry.embedding('token_embd.weight', 10, 64);
  assert.equal(table.data.length, 0, 'no data in a dry build');
  assert.deepEqual(dry.bytesOf('embed'), { total: info('token_embd.weight').byteLength, activePerToken: ggmlRowBytes(GgmlType.Q8_0, 64), parameters: 640, activeParameters: 64 });
  assert.deepEqual(dry.bytesOf(0), { total: 256, activePerToken: 256, parameters: 64, activeParameters: 64 });
  assert.deepEqual(dry.bytesOf(1), { total: 0, activePerToken: 0, parameters: 0, activeParameters: 0 });
  assert.deepEqual(dry.bytesOf('shared'), { total: 32, activePerToken: 32, parameters: 8, activeParameters: 8 });
  assert.equal(dry.totalParameters, 640 + 64 + 8);
  assert.equal(dry.totalBytes, info('token_embd.weight').byteLength + 256 + 32);
  assert.throws(() => dry.vector('blk.0.ffn_norm.weight', 32), /has 64 elements, expected 32/);
  assert.equal(dry.optionalMatrix('output.weight', 10, 64), undefined);

  const loaded = new GgufTensorSource(file, { bytesOf: (t) => bytes.subarray(t.offset, t.offset + t.byteLength), kernels });
  assert.deepEqual([...loaded.vector('blk.0.ffn_norm.weight', 64)].slice(0, 3), [3, 4, 5]);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType, ggmlRowBytes } from '../gguf/ggml-types.js';
import { readGguf } from '../gguf/reader.js';
import { createKernels } from '../kernels/index.js';
import { writeSyntheticModel, type SyntheticModelSpec } from './synthetic.js';
import { scratchDir } from '../../test/helpers/paths.js';

const dir = scratchDir('synthetic-pool');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const kernels = createKernels();
const quantize = (type: GgmlType, src: Float32Array) => {
  const out = new Uint8Array(ggmlRowBytes(type, src.length));
  kernels.quantize(type, src, out, src.length);
  return out;
};
const spec: SyntheticModelSpec = { arch: 'llama', nEmbd: 64, nLayer: 1, nHead: 4, nKvHead: 2, nFf: 256, nVocab: 300, quant: GgmlType.Q4_K, seed: 3 };

function rowsOf(path: string, name: string): string[] {
  const file = readGguf(path);
  const t = file.tensors.find((x) => x.name === name)!;
  const bytes = readFileSync(path).subarray(t.offset, t.offset + t.byteLength);
  const rowBytes = ggmlRowBytes(t.type, t.dims[0]);
  return Array.from({ length: t.byteLength / rowBytes }, (_, r) => Buffer.from(bytes.subarray(r * rowBytes, (r + 1) * rowBytes)).toString('hex'));
}

test('pooled rows: big matrices are copies of at most pooledRows distinct rows, small ones and the file layout unchanged; K-quant fallbacks; progress', () => {
  const plain = join(dir, 'plain.gguf');
  const pooled = join(dir, 'pooled.gguf');
  writeSyntheticModel(plain, spec, quantize);
  const progress: [number, number][] = [];
  writeSyntheticModel(pooled, { ...spec, pooledRows: 100 }, quantize, (done, total) => progress.push([done, total]));
  const a = readGguf(plain);
  const b = readGguf(pooled);
  assert.deepEqual(
    b.tensors.map((t) => [t.name, t.type, t.dims, t.byteLength]),
    a.tensors.map((t) => [t.name, t.type, t.dims, t.byteLength]),
  );
  // ffn_gate has 256 rows: drawn from 100; the plain file's rows are all different.
  const rows = rowsOf(pooled, 'blk.0.ffn_gate.weight');
  assert.equal(rows.length, 256);
  const distinct = new Set(rows).size;
  assert.ok(distinct <= 100 && distinct > 80, `${distinct} distinct rows`);
  assert.equal(new Set(rowsOf(plain, 'blk.0.ffn_gate.weight')).size, 256);
  // Progress after every tensor, up to all of their bytes.
  const dataBytes = b.tensors.reduce((n, t) => n + t.byteLength, 0);
  assert.equal(progress.length, b.tensors.length);
  assert.deepEqual(progress.at(-1), [dataBytes, dataBytes]);
  assert.ok(progress.every(([d], i) => i === 0 || d > progress[i - 1][0]));
  // Rows of 64 do not fit Q4_K's 256-blocks: llama.cpp's fallback (Q5_0), not F16.
  assert.equal(a.tensors.find((t) => t.name === 'blk.0.attn_q.weight')!.type, GgmlType.Q5_0);
  assert.equal(a.tensors.find((t) => t.name === 'blk.0.ffn_down.weight')!.type, GgmlType.Q4_K);
  // 64 rows (attn_q) stay as they are without a pool.
  assert.deepEqual(rowsOf(pooled, 'blk.0.attn_q.weight'), rowsOf(plain, 'blk.0.attn_q.weight'));
});

/**
 * Lossy exchanges of a tensor-parallel group, and what they cost in exactness: f16 rounds each
 * value to 11 significant bits, q8 to 8-bit blocks of 32; every rank adds the same rounded numbers
 * (so ranks stay equal); a 2-rank group of a random-weight model stays close to the whole model's
 * logits (within 1% with f16, 5% with q8, of the largest logit) and picks the same greedy tokens
 * but where the whole model's own top two are near a tie.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType, ggmlRowBytes } from '../gguf/ggml-types.js';
import { readGguf } from '../gguf/reader.js';
import { createKernels } from '../kernels/index.js';
import { loadShard } from '../model/build-shard.js';
import { readModelConfig } from '../model/config.js';
import { wholeModel } from '../model/shard.js';
import { writeSyntheticModel } from '../model/synthetic.js';
import { runGroup } from '../model/tensor-group.js';
import type { ShardBatch } from '../model/decoder.js';
import { ExchangeCodec, type ExchangeDtype } from './exchange-codec.js';
import { scratchDir } from '../../test/helpers/paths.js';

const kernels = createKernels();

test('f16 and q8 round each value within their stated bounds; f32 is exact', () => {
  const values = Float32Array.from({ length: 256 }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 13)));
  for (const dtype of ['f32', 'f16', 'q8'] as const) {
    const codec = new ExchangeCodec(kernels, dtype);
    const rounded = Float32Array.from(values);
    const bytes = codec.encode(rounded);
    assert.equal(bytes.length, codec.bytesFor(256));
    assert.deepEqual(codec.decode(bytes, 256), rounded, `${dtype}: the peers decode what this rank adds`);
    for (let b = 0; b < 256; b += 32) {
      const max = Math.max(...values.subarray(b, b + 32).map(Math.abs));
      for (let i = b; i < b + 32; i++) {
        const err = Math.abs(rounded[i] - values[i]);
        const bound = dtype === 'f32' ? 0 : dtype === 'f16' ? Math.abs(values[i]) * 2 ** -11 : max / 254 + max * 2 ** -11;
        assert.ok(err <= bound, `${dtype} value ${i}: error ${err} above ${bound}`);
      }
    }
  }
  assert.equal(new ExchangeCodec(kernels, 'f16').bytesFor(2048), 4096);
  assert.equal(new ExchangeCodec(kernels, 'q8').bytesFor(2048), 64 * 34);
  assert.throws(() => new ExchangeCodec(kernels, 'q8').bytesFor(100), /multiple of 32/);
});

test('a group exchanging f16 or q8 partials stays near the whole model and picks its greedy tokens but at near-ties', () => {
  const dir = scratchDir('exchange-codec');
  mkdirSync(dir, { recursive: true });
  try {
    const path = join(dir, 'm.gguf');
    writeSyntheticModel(
      path,
      { arch: 'llama', nEmbd: 256, nLayer: 3, nHead: 8, nKvHead: 4, headDim: 32, nFf: 512, nVocab: 400, quant: GgmlType.F32, seed: 17 },
      (type, src) => {
        const out = new Uint8Array(ggmlRowBytes(type, src.length));
        kernels.quantize(type, src, out, src.length);
        return out;
      },
    );
    const file = readGguf(path);
    const cfg = readModelConfig(file);
    const mapped = readFileSync(path);
    const build = (rank = 0, count = 1) =>
      loadShard(
        file,
        cfg,
        { ...wholeModel(cfg), splitRank: rank, splitCount: count },
        (t) => mapped.subarray(t.offset, t.offset + t.byteLength),
        kernels,
        {
          slots: 1,
          ctx: 64,
          kvType: GgmlType.F32,
          maxBatch: 8,
        },
      );
    const argmax = (v: Float32Array) => v.reduce((b, x, i, a) => (x > a[b] ? i : b), 0);
    const prompt = [1, 300, 310, 320];
    // The whole model's greedy run: its logits at each step, and the tokens it fed.
    const whole = build();
    const wholeLogits: Float32Array[] = [];
    const tokens = [...prompt];
    const batchAt = (pos: number, ids: number[]): ShardBatch => ({
      nTokens: ids.length,
      tokens: Int32Array.from(ids),
      spans: [{ slot: 0, pos0: pos, start: 0, n: ids.length }],
      outputRows: [ids.length - 1],
    });
    let out = whole.forward(batchAt(0, prompt));
    for (let i = 0; i < 12; i++) {
      wholeLogits.push(out.slice());
      tokens.push(argmax(out));
      out = whole.forward(batchAt(tokens.length - 1, [tokens[tokens.length - 1]]));
    }
    for (const [dtype, bound] of [
      ['f16', 0.01],
      ['q8', 0.05],
    ] as [ExchangeDtype, number][]) {
      const codec = new ExchangeCodec(kernels, dtype);
      const ranks = [build(0, 2), build(1, 2)];
      // Teacher-forced along the whole model's tokens, so every step compares like with like.
      let g = runGroup(ranks, batchAt(0, prompt), (p) => void codec.encode(p));
      for (let i = 0; i < 12; i++) {
        const w = wholeLogits[i];
        const scale = Math.max(...w.map(Math.abs));
        const diff = Math.max(...w.map((x, j) => Math.abs(x - g[j])));
        assert.ok(diff <= bound * scale, `${dtype} step ${i}: logits differ by ${diff} of ${scale}`);
        const pick = argmax(g);
        if (pick !== tokens[prompt.length + i])
          assert.ok(w[tokens[prompt.length + i]] - w[pick] <= 2 * diff, `${dtype} step ${i}: picked ${pick}, not a near-tie`);
        g = runGroup(ranks, batchAt(prompt.length + i, [tokens[prompt.length + i]]), (p) => void codec.encode(p));
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

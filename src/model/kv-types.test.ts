/**
 * KV cache types: a Q8_0 cache (34 bytes per 32 elements) scores text as an F16 one does within a
 * small error, round-trips through snapshots (the prompt cache) and slot copies byte for byte, holds
 * latent attention's rows too, and is refused, naming why, where a model cannot use it (heads or
 * latent rows not in blocks of 32).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../gguf/ggml-types.js';
import { loadModel, type LoadedModel } from '../engine/load.js';
import type { StepLogprobs } from '../sampling/index.js';
import type { SyntheticShape } from './synthetic.js';
import { KvCache } from './kv-cache.js';
import { NativeKernels } from '../kernels/native.js';
import { scratchDir } from '../../test/helpers/paths.js';
import { writeSyntheticFile } from '../../test/helpers/synthetic-file.js';

const dir = scratchDir('kv-types');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
function file(name: string, shape: SyntheticShape): string {
  const path = join(dir, `${name}.gguf`);
  writeSyntheticFile(path, { ...shape, quant: GgmlType.Q8_0, seed: 4 });
  return path;
}
const QWEN3: SyntheticShape = { arch: 'qwen3', nEmbd: 128, nLayer: 3, nHead: 4, nKvHead: 2, headDim: 32, nFf: 256, nVocab: 300 };

async function score(m: LoadedModel, prompt: number[]): Promise<readonly StepLogprobs[]> {
  for await (const ev of m.engine.generate({ prompt, maxTokens: 0, promptLogprobs: 0 })) if (ev.type === 'prompt') return ev.logprobs;
  throw new Error('no prompt logprobs');
}

test('a Q8_0 cache scores a prompt within a small error of F16, in about half the bytes', async () => {
  const path = file('qwen3', QWEN3);
  const prompt = Array.from({ length: 120 }, (_, i) => (i * 37 + 11) % 300);
  const opts = { ctx: 160, prefetch: false, progress: false, speculation: { maxDraft: 0 } } as const;
  const f16 = await loadModel(path, { ...opts, kvType: GgmlType.F16 });
  const q8 = await loadModel(path, { ...opts, kvType: GgmlType.Q8_0 });
  try {
    assert.equal(q8.kvBytes / f16.kvBytes, 34 / 64);
    const [a, b] = [await score(f16, prompt), await score(q8, prompt)];
    const diffs = a.map((x, i) => Math.abs(x.logprob - b[i].logprob));
    const mean = diffs.reduce((s, d) => s + d, 0) / diffs.length;
    assert.ok(mean < 0.05, `mean log-probability difference ${mean}`);
    assert.ok(diffs.some((d) => d > 0), 'the Q8_0 cache is really used (its rounding shows)');
  } finally {
    f16.close();
    q8.close();
  }
});

test('a tiled Q8_0 cache (where the kernels prefer tiles) scores as rows do, bit for bit, across chunks and a window', async (t) => {
  const kernels = new NativeKernels();
  if (!kernels.kvTilesPreferred()) {
    t.skip('this CPU level reads Q8_0 caches in rows (no AVX-512): tiles are checked in kv-tiles.test.ts');
    return;
  }
  // gemma2-like sliding windows are not needed here: qwen3 over 600 positions crosses two chunk edges.
  const path = file('qwen3-tiles', QWEN3);
  const prompt = Array.from({ length: 600 }, (_, i) => (i * 53 + 7) % 300);
  const opts = { ctx: 620, prefetch: false, progress: false, kvType: GgmlType.Q8_0, speculation: { maxDraft: 0 } } as const;
  const tiled = await loadModel(path, opts);
  const saved = process.env.CAIRN_KV_TILES;
  process.env.CAIRN_KV_TILES = '0';
  let rows: LoadedModel;
  try {
    rows = await loadModel(path, opts);
  } finally {
    if (saved === undefined) delete process.env.CAIRN_KV_TILES;
    else process.env.CAIRN_KV_TILES = saved;
  }
  try {
    assert.deepEqual(
      (await score(tiled, prompt)).map((x) => x.logprob),
      (await score(rows, prompt)).map((x) => x.logprob),
    );
  } finally {
    tiled.close();
    rows.close();
  }
});

test('a Q8_0 cache round-trips through snapshots and slot copies; a prompt-cache hit gives the fresh tokens', async () => {
  const kv = new KvCache([{ k: 64, v: 64, heads: 2 }, { k: 32, v: 96, heads: 1 }], 3, 40, GgmlType.Q8_0);
  for (let i = 0; i < 2; i++) for (let s = 0; s < 3; s++) for (const buf of [kv.keys(i, s), kv.values(i, s)]) buf.forEach((_, j) => (buf[j] = (j * 7 + s + i) & 0xff));
  const snap = kv.snapshot(0, 17);
  assert.equal(snap.layers[0].length, 17 * (64 + 64) * (34 / 32));
  kv.restore(snap, 2);
  kv.copyPrefix(0, 1, 17);
  // Each head's first 17 positions (its stretch of the slot is 40 positions long).
  const heads = (buf: Uint8Array, elems: number, count: number) =>
    Array.from({ length: count }, (_, h) => [...buf.subarray(h * 40 * elems * (34 / 32), (h * 40 + 17) * elems * (34 / 32))]);
  for (let i = 0; i < 2; i++) {
    const r = kv.rows[i];
    for (const s of [1, 2]) {
      assert.deepEqual(heads(kv.keys(i, s), r.k / r.heads, r.heads), heads(kv.keys(i, 0), r.k / r.heads, r.heads));
      assert.deepEqual(heads(kv.values(i, s), r.v / r.heads, r.heads), heads(kv.values(i, 0), r.v / r.heads, r.heads));
    }
  }
  assert.throws(() => new KvCache([{ k: 48, v: 48, heads: 1 }], 1, 8, GgmlType.Q8_0), /whole blocks of 32/);

  const path = file('qwen3-cache', QWEN3);
  const m = await loadModel(path, { ctx: 128, slots: 1, kvType: GgmlType.Q8_0, prefetch: false, progress: false, promptCache: { budgetBytes: 1 << 20 }, speculation: { maxDraft: 0 } });
  try {
    const run = async (prompt: number[]) => {
      for await (const ev of m.engine.generate({ prompt, maxTokens: 12, sampler: { temperature: 0 }, ignoreEos: true })) if (ev.type === 'done') return ev.summary;
      throw new Error('no summary');
    };
    const a = [1, 5, 9, 13, 17, 21, 25, 29, 33, 37];
    const first = await run(a);
    await run([2, 4, 6, 8]); // the slot is overwritten; the first prefix is saved aside
    const again = await run(a);
    assert.ok(again.cachedTokens > 0, 'the saved Q8_0 prefix was reused');
    assert.deepEqual(again.tokens, first.tokens);
  } finally {
    m.close();
  }
});

test('a Q8_0 cache is refused where the model cannot use it, saying why', async () => {
  const llama16 = file('llama-hd16', { arch: 'llama', nEmbd: 64, nLayer: 2, nHead: 4, nKvHead: 2, nFf: 128, nVocab: 300 });
  await assert.rejects(loadModel(llama16, { ctx: 64, kvType: GgmlType.Q8_0, prefetch: false, progress: false }), /blocks of 32.*16: use --kv-type f16/);
  const mla = file('deepseek2', {
    arch: 'deepseek2',
    nEmbd: 64,
    nLayer: 2,
    nHead: 4,
    nKvHead: 1,
    nFf: 128,
    nVocab: 300,
    mla: { qLora: 32, kvLora: 32, nope: 16, ropeDim: 8, vDim: 16, mscaleAllDim: 1 },
    moe: { experts: 4, used: 2, width: 32, shared: 1, leadingDense: 1 },
  });
  await assert.rejects(
    loadModel(mla, { ctx: 64, kvType: GgmlType.Q8_0, prefetch: false, progress: false }),
    /latent rows \(latent \+ rope part\) in blocks of 32, and deepseek2 layer 0 has 40: use --kv-type f16/,
  );
});

/** DeepSeek-style latent attention whose cached row (latent 64 + rope part 32) is three Q8_0 blocks. */
const MLA: SyntheticShape = {
  arch: 'deepseek2',
  nEmbd: 128,
  nLayer: 3,
  nHead: 4,
  nKvHead: 1,
  nFf: 256,
  nVocab: 300,
  mla: { qLora: 48, kvLora: 64, nope: 16, ropeDim: 32, vDim: 32, mscaleAllDim: 1 },
  moe: { experts: 4, used: 2, width: 64, shared: 1, leadingDense: 1 },
};

test('latent attention caches its rows in Q8_0 (as llama.cpp -ctk q8_0): half the bytes, scores near F16, prefix reuse', async () => {
  const path = file('deepseek2-q8', MLA);
  const prompt = Array.from({ length: 100 }, (_, i) => (i * 41 + 7) % 300);
  const opts = { ctx: 140, slots: 1, prefetch: false, progress: false, speculation: { maxDraft: 0 } } as const;
  const f32 = await loadModel(path, { ...opts, kvType: GgmlType.F32 });
  const f16 = await loadModel(path, { ...opts, kvType: GgmlType.F16 });
  const q8 = await loadModel(path, { ...opts, kvType: GgmlType.Q8_0, promptCache: { budgetBytes: 1 << 20 } });
  try {
    // The cache holds only the latent and its rope part, now in Q8_0 blocks.
    assert.equal(q8.kvBytes / f16.kvBytes, 34 / 64);
    assert.equal(q8.kvBytes, MLA.nLayer * 140 * ((64 + 32) / 32) * 34);
    // This random-weight model's log-probabilities move by ~0.05 between an F32 and an F16 cache
    // already: the Q8_0 cache must stay within the same order of that distance.
    const [exact, half, q] = [await score(f32, prompt), await score(f16, prompt), await score(q8, prompt)];
    const distance = (xs: readonly StepLogprobs[]) => xs.reduce((sum, x, i) => sum + Math.abs(x.logprob - exact[i].logprob), 0) / xs.length;
    const [dHalf, dQ8] = [distance(half), distance(q)];
    assert.ok(dQ8 < 2.5 * dHalf && dQ8 < 0.2, `mean log-probability distance from F32: Q8_0 ${dQ8}, F16 ${dHalf}`);
    assert.ok(q.some((x, i) => x.logprob !== half[i].logprob), 'the Q8_0 cache is really used (its rounding shows)');
    const run = async (p: number[]) => {
      for await (const ev of q8.engine.generate({ prompt: p, maxTokens: 12, sampler: { temperature: 0 }, ignoreEos: true })) if (ev.type === 'done') return ev.summary;
      throw new Error('no summary');
    };
    const first = await run(prompt.slice(0, 40));
    await run([2, 4, 6, 8]);
    const again = await run(prompt.slice(0, 40));
    assert.ok(again.cachedTokens > 0, 'the saved Q8_0 latent prefix was reused');
    assert.deepEqual(again.tokens, first.tokens);
  } finally {
    f32.close();
    f16.close();
    q8.close();
  }
});

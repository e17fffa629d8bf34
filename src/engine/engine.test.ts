import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType, ggmlRowBytes } from '../gguf/ggml-types.js';
import { createKernels } from '../kernels/index.js';
import { writeSyntheticModel } from '../model/synthetic.js';
import { loadModel, type LoadedModel } from './load.js';
import { Engine, type GenerateRequest, type GenerationSummary } from './engine.js';
import type { ForwardRunner } from './runner.js';
import { scratchDir } from '../../test/helpers/paths.js';

const dir = scratchDir('engine');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const kernels = createKernels();
const path = join(dir, 'model.gguf');
writeSyntheticModel(path, { arch: 'llama', nEmbd: 128, nLayer: 2, nHead: 4, nKvHead: 2, nFf: 256, nVocab: 512, quant: GgmlType.Q8_0, seed: 11 }, (type, src) => {
  const out = new Uint8Array(ggmlRowBytes(type, src.length));
  kernels.quantize(type, src, out, src.length);
  return out;
});

function prompt(seed: number, n: number): number[] {
  return [1, ...Array.from({ length: n - 1 }, (_, i) => 259 + ((seed * 131 + i * 17) % 250))];
}

async function run(model: LoadedModel, req: Omit<GenerateRequest, 'sampler'> & { sampler?: GenerateRequest['sampler'] }): Promise<GenerationSummary> {
  for await (const ev of model.engine.generate({ sampler: { temperature: 0 }, ignoreEos: true, ...req })) {
    if (ev.type === 'done') return ev.summary;
  }
  throw new Error('no summary');
}

test('concurrent sequences decode in shared batches and give exactly their serial outputs', async () => {
  const model = await loadModel(path, { ctx: 256, slots: 4, maxBatch: 64, progress: false });
  try {
    const prompts = [prompt(1, 40), prompt(2, 7), prompt(3, 90), prompt(4, 1), prompt(5, 33), prompt(6, 12)];
    const serial: number[][] = [];
    for (const p of prompts) serial.push([...(await run(model, { prompt: p, maxTokens: 20 })).tokens]);
    const stepsBefore = model.engine.stats.steps;
    const together = await Promise.all(prompts.map((p) => run(model, { prompt: p, maxTokens: 20 })));
    assert.deepEqual(together.map((s) => [...s.tokens]), serial);
    // Six sequences of 20 tokens in far fewer steps than 6 x 20: they were batched.
    assert.ok(model.engine.stats.steps - stepsBefore < 60, `${model.engine.stats.steps - stepsBefore} steps`);
  } finally {
    model.close();
  }
});

test('a longer prompt that extends an earlier one reuses its KV (slot cache) and gives the same tokens', async () => {
  const model = await loadModel(path, { ctx: 256, slots: 1, progress: false });
  try {
    const base = prompt(7, 60);
    const first = await run(model, { prompt: base, maxTokens: 10 });
    const longer = [...base, ...first.tokens, 300, 301];
    const cached = await run(model, { prompt: longer, maxTokens: 10 });
    assert.ok(cached.cachedTokens >= base.length, `reused ${cached.cachedTokens}`);
    const fresh = await loadModel(path, { ctx: 256, slots: 1, progress: false });
    try {
      const uncached = await run(fresh, { prompt: longer, maxTokens: 10 });
      assert.equal(uncached.cachedTokens, 0);
      assert.deepEqual(cached.tokens, uncached.tokens);
    } finally {
      fresh.close();
    }
  } finally {
    model.close();
  }
});

test('prompt cache without a directory: shutting down copies no slot aside', async () => {
  const model = await loadModel(path, { ctx: 256, slots: 2, progress: false, promptCache: { budgetBytes: 64 << 20 } });
  try {
    await run(model, { prompt: prompt(8, 80), maxTokens: 4 });
    assert.equal(model.engine.prefixCache!.bytes, 0, 'nothing overwritten, nothing saved yet');
    assert.equal(await model.engine.persistPromptCache(), 0);
    assert.equal(model.engine.prefixCache!.bytes, 0, 'the slots were not copied into memory');
  } finally {
    model.close();
  }
});

test('prompt cache: an overwritten slot is kept in memory, found again, and survives a restart on disk', async () => {
  const cacheDir = join(dir, 'prompt-cache');
  const opts = { ctx: 256, slots: 1, progress: false, promptCache: { budgetBytes: 64 << 20, dir: cacheDir } };
  const a = prompt(8, 80);
  const b = prompt(9, 50);
  const model = await loadModel(path, opts);
  let expected: readonly number[];
  try {
    expected = (await run(model, { prompt: [...a, 400], maxTokens: 8 })).tokens;
    await run(model, { prompt: b, maxTokens: 8 }); // overwrites the only slot
    const again = await run(model, { prompt: [...a, 400], maxTokens: 8 });
    assert.ok(again.cachedTokens >= a.length, `reused ${again.cachedTokens} from the saved prefix`);
    assert.deepEqual(again.tokens, expected);
    assert.ok(model.engine.prefixCache!.bytes > 0);
    assert.ok((await model.engine.persistPromptCache()) > 0);
  } finally {
    model.close();
  }
  assert.ok(readdirSync(cacheDir).some((f) => f.endsWith('.kv')));
  const restarted = await loadModel(path, opts);
  try {
    const r = await run(restarted, { prompt: [...a, 400], maxTokens: 8 });
    assert.ok(r.cachedTokens >= a.length, `after restart reused ${r.cachedTokens}`);
    assert.deepEqual(r.tokens, expected);
  } finally {
    restarted.close();
  }
  // A byte flipped on disk: the entry no longer matches its hash, so it is dropped (and deleted), never used.
  const files = readdirSync(cacheDir).filter((n) => n.endsWith('.kv'));
  for (const f of files) {
    const bytes = readFileSync(join(cacheDir, f));
    bytes[bytes.length - 7] ^= 0x40;
    writeFileSync(join(cacheDir, f), bytes);
  }
  const damaged = await loadModel(path, opts);
  try {
    const r = await run(damaged, { prompt: [...a, 400], maxTokens: 8 });
    assert.equal(r.cachedTokens, 0, 'the damaged entry was not used');
    assert.deepEqual(r.tokens, expected);
  } finally {
    damaged.close();
  }
  assert.equal(readdirSync(cacheDir).filter((n) => n.endsWith('.kv')).length, files.length - 1, 'the damaged entry that was tried is deleted');
});

test('the prompt cache stays within its byte budget', async () => {
  const model = await loadModel(path, { ctx: 256, slots: 1, progress: false, promptCache: { budgetBytes: 200_000 } });
  try {
    for (let i = 0; i < 8; i++) await run(model, { prompt: prompt(20 + i, 100), maxTokens: 2 });
    const cache = model.engine.prefixCache!;
    assert.ok(cache.bytes <= 200_000 && cache.bytes > 0, `${cache.bytes} bytes`);
  } finally {
    model.close();
  }
});

test('a prefix larger than the prompt cache is kept as far as the budget reaches', async () => {
  const ctx = 256;
  const probe = await loadModel(path, { ctx, slots: 1, progress: false });
  const perPosition = probe.kvBytes / ctx;
  probe.close();
  assert.ok(Number.isInteger(perPosition), `${perPosition} bytes a position`);
  const budgetBytes = 40 * perPosition;
  const model = await loadModel(path, { ctx, slots: 1, progress: false, promptCache: { budgetBytes } });
  try {
    const a = [...prompt(40, 80), 400];
    const expected = (await run(model, { prompt: a, maxTokens: 8 })).tokens;
    await run(model, { prompt: prompt(41, 50), maxTokens: 8 }); // overwrites the only slot: 88 positions to keep, room for 40
    const cache = model.engine.prefixCache!;
    assert.equal(cache.bytes, budgetBytes, 'the first 40 positions were kept');
    const again = await run(model, { prompt: a, maxTokens: 8 });
    assert.equal(again.cachedTokens, 40);
    assert.deepEqual(again.tokens, expected);
  } finally {
    model.close();
  }
});

test('stopping iteration early cancels the sequence and frees its slot', async () => {
  const model = await loadModel(path, { ctx: 256, slots: 1, progress: false });
  try {
    let n = 0;
    for await (const ev of model.engine.generate({ prompt: prompt(30, 5), maxTokens: 200, sampler: { temperature: 0 }, ignoreEos: true })) {
      if (ev.type === 'token' && ++n === 3) break;
    }
    const next = await run(model, { prompt: prompt(31, 5), maxTokens: 4 });
    assert.equal(next.finishReason, 'length');
    assert.equal(model.engine.activeCount, 0);
  } finally {
    model.close();
  }
});

test('bad requests fail clearly: empty prompt, prompt longer than the context, ids outside the vocabulary', async () => {
  const model = await loadModel(path, { ctx: 64, progress: false });
  try {
    assert.throws(() => model.engine.generate({ prompt: [], maxTokens: 1 }), /prompt is empty/);
    assert.throws(() => model.engine.generate({ prompt: prompt(1, 80), maxTokens: 1 }), /context holds 64/);
    assert.throws(() => model.engine.generate({ prompt: [1, 99999], maxTokens: 1 }), /outside the vocabulary/);
    const ok = await run(model, { prompt: prompt(1, 10), maxTokens: 100 });
    assert.equal(ok.finishReason, 'length');
    assert.equal(ok.completionTokens, 64 - 10, 'generation stops when the context is full');
  } finally {
    model.close();
  }
});

test('with a pipeline depth of 2, two micro-batches are in flight at once and outputs equal serial runs', async () => {
  const model = await loadModel(path, { ctx: 256, slots: 4, progress: false });
  try {
    const prompts = [prompt(40, 9), prompt(41, 20), prompt(42, 3), prompt(43, 15)];
    const serial: number[][] = [];
    for (const p of prompts) serial.push([...(await run(model, { prompt: p, maxTokens: 12 })).tokens]);

    const inner = model.engine.runner;
    let current = 0;
    let peak = 0;
    // A two-stage pipeline as the engine sees it: each step takes a while, off the main thread.
    const piped: ForwardRunner = Object.assign(Object.create(inner) as ForwardRunner, {
      pipelineDepth: 2,
      forward: async (req: Parameters<ForwardRunner['forward']>[0]) => {
        current++;
        peak = Math.max(peak, current);
        await new Promise((r) => setTimeout(r, 2));
        const out = await inner.forward(req);
        current--;
        return { tokens: out.tokens.slice(), logprobs: out.logprobs, logits: out.logits.slice() };
      },
    });
    const engine = new Engine(piped, model.tokenizer);
    const results = await Promise.all(
      prompts.map(async (p) => {
        for await (const ev of engine.generate({ prompt: p, maxTokens: 12, sampler: { temperature: 0 }, ignoreEos: true })) if (ev.type === 'done') return [...ev.summary.tokens];
        return [];
      }),
    );
    assert.deepEqual(results, serial);
    assert.equal(peak, 2, 'two steps overlapped');
  } finally {
    model.close();
  }
});

/** Lets only `id` come next: the engine then reports `id`'s logprob from the unmasked logits. */
function only(id: number): NonNullable<GenerateRequest['constraint']> {
  let done = false;
  return {
    mask(logits) {
      const keep = logits[id];
      logits.fill(-Infinity);
      logits[id] = keep;
    },
    accept() {
      done = true;
    },
    get complete() {
      return done;
    },
  };
}

test("prompt logprobs: every prompt token's logprob, as a generation after its prefix would see it, read in several steps", async () => {
  const model = await loadModel(path, { ctx: 256, slots: 2, maxBatch: 16, progress: false });
  try {
    const p = prompt(9, 40);
    // A cached prefix must not skip positions: warm the cache with the same prompt first.
    await run(model, { prompt: p, maxTokens: 1 });
    let told: readonly import('../sampling/index.js').StepLogprobs[] | undefined;
    let summary: GenerationSummary | undefined;
    for await (const ev of model.engine.generate({ prompt: p, maxTokens: 0, promptLogprobs: 3, sampler: { temperature: 0 } })) {
      if (ev.type === 'prompt') told = ev.logprobs;
      if (ev.type === 'token') assert.fail('max_tokens 0 generates nothing');
      if (ev.type === 'done') summary = ev.summary;
    }
    assert.equal(summary?.finishReason, 'length');
    assert.equal(summary?.completionTokens, 0);
    assert.equal(told?.length, p.length - 1);
    for (const i of [1, 2, 15, 16, 17, 39]) {
      let ref: import('../sampling/index.js').StepLogprobs | undefined;
      for await (const ev of model.engine.generate({ prompt: p.slice(0, i), maxTokens: 1, logprobs: 3, sampler: { temperature: 0 }, constraint: only(p[i]) })) {
        if (ev.type === 'token') ref = ev.logprobs;
      }
      const got: import('../sampling/index.js').StepLogprobs = told![i - 1];
      assert.equal(got.id, p[i]);
      assert.ok(Math.abs(got.logprob - ref!.logprob) < 1e-3, `token ${i}: ${got.logprob} vs ${ref!.logprob}`);
      assert.deepEqual(got.top.map((t) => t.id), ref!.top.map((t) => t.id));
    }
  } finally {
    model.close();
  }
});

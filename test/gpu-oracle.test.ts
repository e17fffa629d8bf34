/**
 * The GPU backend against the external oracle: the dense families' random-weight models (the shapes
 * of test/llamacpp-oracle.test.ts), their layers on the GPU through WebGPU (in CI, Mesa's lavapipe),
 * must give llama.cpp's greedy tokens, up to a near-tie of llama.cpp's own logits. The GPU keeps
 * activations in f32 where llama.cpp's CPU path quantizes them for quantized weights (as llama.cpp's
 * own GPU backends do), so quantized models differ from the oracle by that rounding too. Without the
 * optional `webgpu` package or an adapter, these tests are skipped and say why.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../src/gguf/ggml-types.js';
import { writeSyntheticModel, type SyntheticModelSpec, type SyntheticQuant, type SyntheticShape } from '../src/model/synthetic.js';
import { loadModel, loadShards } from '../src/engine/load.js';
import { assertClose } from './helpers/kernel-inputs.js';
import { isCairnError } from '../src/util/errors.js';
import { llamaCppGreedy } from './helpers/llama-cpp.js';
import { assertSameGreedy, assertVaried, cairnGreedy, maxLogProbGap, oraclePrompt, quantizeWithKernels } from './helpers/oracle-greedy.js';
import { loadGpuParts } from '../src/engine/load-gpu.js';
import { alongOracle, gpuLogProbsAlong } from './helpers/gpu-oracle.js';
import { ROOT, scratchDir } from './helpers/paths.js';
import { GEMMA2, GEMMA3, GEMMA3_WINDOW, GPT_OSS, MINISTRAL3, MISTRAL3, PHI3, PHI4_MINI, QWEN3MOE } from './helpers/family-shapes.js';
import { startServer } from './helpers/server.js';
import { spawnSync } from 'node:child_process';
import { gpuSkip } from './helpers/test-gpu.js';
import { WebGpuKernels } from '../src/kernels/webgpu/gpu-kernels.js';

const skip = await gpuSkip('GPU backend');

const dir = scratchDir('gpu-oracle');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const ARCHS: Record<string, Omit<SyntheticModelSpec, 'quant' | 'seed'>> = {
  llama: { arch: 'llama', nEmbd: 256, nLayer: 3, nHead: 8, nKvHead: 2, nFf: 512, nVocab: 1000, ropeBase: 500000, ropeFreqs: true },
  qwen2: { arch: 'qwen2', nEmbd: 256, nLayer: 3, nHead: 4, nKvHead: 2, nFf: 512, nVocab: 1000, ropeBase: 1000000, tied: true },
  qwen3: { arch: 'qwen3', nEmbd: 256, nLayer: 3, nHead: 4, nKvHead: 2, headDim: 128, nFf: 512, nVocab: 1000, ropeBase: 1000000 },
};
/**
 * Weights, and for float weights (f32 activations on both sides) the largest log-probability gap
 * allowed along llama.cpp's continuation: both engines keep an F16 cache, llama.cpp rounds the
 * attention weights to f16 where the GPU keeps them f32.
 */
const QUANTS: [string, SyntheticQuant, number?][] = [
  ['F32', GgmlType.F32, 0.015],
  ['F16', GgmlType.F16, 0.03],
  ['Q8_0', GgmlType.Q8_0],
  ['Q4_K_M', 'Q4_K_M'],
];

/** One oracle case: greedy tokens of the model on the GPU equal llama.cpp's (and, with a tolerance, its log-probabilities). */
function oracleCase(arch: string, shape: Omit<SyntheticModelSpec, 'quant' | 'seed'>, qname: string, quant: SyntheticQuant, tolerance?: number): void {
  test(`GPU backend, ${arch} ${qname}: greedy tokens equal llama.cpp's`, { skip, timeout: 300_000 }, async (t) => {
    const path = join(dir, `${arch}-${qname}.gguf`);
    writeSyntheticModel(path, { ...shape, quant, seed: 11 }, quantizeWithKernels);
    const prompt = oraclePrompt(shape.nVocab);
    const oracle = await llamaCppGreedy(path, prompt, 32, { kvType: 'F16' });
    assertVaried(oracle);
    assertSameGreedy(await cairnGreedy(path, prompt, 32, GgmlType.F16, 'gpu'), oracle);
    if (tolerance === undefined) return;
    const gap = maxLogProbGap(await gpuLogProbsAlong(path, prompt, oracle), oracle);
    t.diagnostic(`largest log-probability gap ${gap}`);
    assert.ok(gap < tolerance, `log-probabilities differ from llama.cpp's by up to ${gap}`);
  });
}

for (const [arch, shape] of Object.entries(ARCHS)) for (const [qname, quant, tolerance] of QUANTS) oracleCase(arch, shape, qname, quant, tolerance);
// Models on a software adapter keep the per-block products; these cases run the item products (a
// hardware GPU's: rows in items of 32 weights, the residual add and the SwiGLU folded into them) on
// whatever adapter there is, along llama.cpp's continuation: each step's choice is llama.cpp's, up
// to a near-tie, and with F16 weights the log-probabilities agree as above.
for (const [qname, quant, tolerance] of [['F16', GgmlType.F16, 0.03], ['Q8_0', GgmlType.Q8_0], ['Q4_K_M', 'Q4_K_M']] as const) {
  test(`GPU backend with the item products, llama ${qname}: llama.cpp's greedy choices`, { skip, timeout: 300_000 }, async (t) => {
    const path = join(dir, `items-llama-${qname}.gguf`);
    writeSyntheticModel(path, { ...ARCHS.llama, quant, seed: 11 }, quantizeWithKernels);
    const prompt = oraclePrompt(ARCHS.llama.nVocab);
    const oracle = await llamaCppGreedy(path, prompt, 32, { kvType: 'F16' });
    assertVaried(oracle);
    const gpu = await WebGpuKernels.open({ itemProducts: true });
    try {
      assert.ok(gpu.gpu.itemProducts, 'the item products are on');
      const logProbs = await gpuLogProbsAlong(path, prompt, oracle, gpu);
      const argmax = (v: Float64Array) => v.reduce((best, x, i) => (x > v[best] ? i : best), 0);
      assertSameGreedy(logProbs.map(argmax), oracle);
      if (tolerance !== undefined) {
        const gap = maxLogProbGap(logProbs, oracle);
        t.diagnostic(`largest log-probability gap ${gap}`);
        assert.ok(gap < tolerance, `log-probabilities differ from llama.cpp's by up to ${gap}`);
      }
    } finally {
      gpu.destroy();
    }
  });
}

// The legacy block types older files use, and the 2- and 3-bit K-quants of large models' files.
for (const [qname, quant] of [
  ['Q4_1', GgmlType.Q4_1],
  ['Q5_0', GgmlType.Q5_0],
  ['Q5_1', GgmlType.Q5_1],
  ['Q2_K', GgmlType.Q2_K],
  ['Q3_K_M', 'Q3_K_M'],
  ['IQ4_XS', GgmlType.IQ4_XS],
  ['IQ4_NL', GgmlType.IQ4_NL],
] as const)
  oracleCase('llama', ARCHS.llama, qname, quant);

for (const [arch, shape] of [
  ['llama', { arch: 'llama', nEmbd: 128, nLayer: 2, nHead: 4, nKvHead: 2, nFf: 256, nVocab: 600, ctx: 256, yarn: { factor: 8, origCtx: 32 } }],
  ['qwen3', { arch: 'qwen3', nEmbd: 128, nLayer: 2, nHead: 4, nKvHead: 2, headDim: 64, nFf: 256, nVocab: 600, ctx: 256, ropeBase: 1e6, yarn: { factor: 16, origCtx: 24 } }],
] as const) {
  test(`GPU backend, ${arch} F32 with YaRN scaling: greedy tokens and log-probabilities equal llama.cpp's`, { skip, timeout: 300_000 }, async (t) => {
    const path = join(dir, `yarn-${arch}.gguf`);
    writeSyntheticModel(path, { ...shape, quant: GgmlType.F32, seed: 11 }, quantizeWithKernels);
    const prompt = oraclePrompt(shape.nVocab, 20);
    const oracle = await llamaCppGreedy(path, prompt, 24, { kvType: 'F16' });
    assertVaried(oracle);
    assertSameGreedy(await cairnGreedy(path, prompt, 24, GgmlType.F16, 'gpu'), oracle);
    // A rope without YaRN's ramp and magnitude is off by 0.3 to 4.
    const gap = maxLogProbGap(await gpuLogProbsAlong(path, prompt, oracle), oracle);
    t.diagnostic(`largest log-probability gap ${gap}`);
    assert.ok(gap < 0.015, `log-probabilities differ from llama.cpp's by up to ${gap}`);
  });
}

/**
 * An F32 model of `shape` on the GPU after BOS and `promptLength` tokens: llama.cpp's greedy tokens,
 * and its next-token log-probabilities to `tolerance` along its continuation.
 */
function floatCase(label: string, shape: SyntheticShape, promptLength: number, tolerance: number, seed = 11): void {
  test(`GPU backend, ${label} F32: greedy tokens and log-probabilities equal llama.cpp's`, { skip, timeout: 300_000 }, async (t) => {
    const path = join(dir, `${label.replace(/\W+/g, '-')}.gguf`);
    writeSyntheticModel(path, { ...shape, quant: GgmlType.F32, seed }, quantizeWithKernels);
    const prompt = oraclePrompt(shape.nVocab, promptLength);
    const oracle = await llamaCppGreedy(path, prompt, 24, { kvType: 'F16' });
    assertVaried(oracle);
    assertSameGreedy(await cairnGreedy(path, prompt, 24, GgmlType.F16, 'gpu'), oracle);
    const gap = maxLogProbGap(await gpuLogProbsAlong(path, prompt, oracle), oracle);
    t.diagnostic(`largest log-probability gap ${gap}`);
    assert.ok(gap < tolerance, `log-probabilities differ from llama.cpp's by up to ${gap}`);
  });
}

// Gemma: sandwich norms, GeGLU (gelu through f16 as llama.cpp's CPU takes it), scaled embeddings,
// windows with their own rope base past which the prompt runs (a wrong rope on the windowed layers
// moves the log-probabilities by 5 or more); Gemma 2's scores softcapped on the device, the logits
// on the host.
const GEMMA_PROMPT = 3 * GEMMA3_WINDOW + 5;
floatCase('gemma3', GEMMA3, GEMMA_PROMPT, 0.03);
floatCase('gemma3 with a window pattern of 2, softcapped logits and an untied head', { ...GEMMA3, nLayer: 4, slidingWindowPattern: 2, finalLogitSoftcap: 3, tied: false, linearRopeFactor: undefined }, GEMMA_PROMPT, 0.03);
oracleCase('gemma3', GEMMA3, 'Q4_K_M', 'Q4_K_M');
floatCase('gemma2 with softcapped scores and logits', GEMMA2, GEMMA_PROMPT, 0.03);

// Phi-3: the fused QKV and gate/up matrices uploaded stacked and paired; Phi-4-mini's partial
// rotation with the long-context rope factors and attention factor.
floatCase('phi3 (Phi-3-mini)', PHI3, 40, 0.015, 13);
floatCase('mistral3 (Mistral Small 3.x)', MISTRAL3, 40, 0.015, 17);
test('GPU backend: Ministral 3\'s attention temperature is refused on the GPU, saying so', { skip, timeout: 300_000 }, async () => {
  const path = join(dir, 'ministral3.gguf');
  writeSyntheticModel(path, { ...MINISTRAL3, quant: GgmlType.F32, seed: 17 }, quantizeWithKernels);
  await assert.rejects(loadGpuParts(path, { ctx: 256 }), (e) => isCairnError(e, 'MODEL_UNSUPPORTED') && /attention temperature \(Ministral 3\) does not run on the GPU yet/.test((e as Error).message));
});
floatCase('phi3 (Phi-4-mini past the original context)', PHI4_MINI, 40, 0.015, 13);
oracleCase('phi3', PHI3, 'Q4_K_M', 'Q4_K_M');

test('GPU backend with --gpu-layers: the first layers on the CPU, the last on the GPU, give llama.cpp\'s greedy tokens and log-probabilities', { skip, timeout: 300_000 }, async (t) => {
  const path = join(dir, 'split.gguf');
  writeSyntheticModel(path, { ...ARCHS.llama, quant: GgmlType.F32, seed: 11 }, quantizeWithKernels);
  const prompt = oraclePrompt(ARCHS.llama.nVocab);
  const oracle = await llamaCppGreedy(path, prompt, 32, { kvType: 'F16' });
  const model = await loadModel(path, { ctx: 256, compute: 'gpu', gpuLayers: 2, progress: false });
  try {
    const ids: number[] = [];
    for await (const ev of model.engine.generate({ prompt, maxTokens: 32, sampler: { temperature: 0 }, ignoreEos: true })) if (ev.type === 'done') ids.push(...ev.summary.tokens);
    assertSameGreedy(ids, oracle);
  } finally {
    model.close();
  }
  const parts = await loadGpuParts(path, { ctx: 256, gpuLayers: 2 });
  try {
    assert.equal(parts.shards.length, 1, 'one CPU shard in front');
    const gap = maxLogProbGap(await alongOracle(parts, prompt, oracle), oracle);
    t.diagnostic(`largest log-probability gap ${gap}`);
    assert.ok(gap < 0.015, `log-probabilities differ from llama.cpp's by up to ${gap}`);
  } finally {
    parts.close();
  }
});

test('GPU backend: the model says where it runs; caches the GPU cannot hold are refused by name', { skip, timeout: 300_000 }, async () => {
  const path = join(dir, 'placement.gguf');
  writeSyntheticModel(path, { ...ARCHS.qwen3, quant: GgmlType.Q8_0, seed: 3 }, quantizeWithKernels);
  const model = await loadModel(path, { ctx: 64, compute: 'gpu', progress: false });
  try {
    assert.equal(model.placement.backend, 'gpu');
    assert.ok(model.placement.adapter && model.placement.adapter.length > 0);
  } finally {
    model.close();
  }
  await assert.rejects(loadModel(path, { ctx: 64, compute: 'gpu', kvType: GgmlType.F32, progress: false }), (e: unknown) => isCairnError(e, 'MODEL_UNSUPPORTED') && /F16 or Q8_0/.test((e as Error).message));
  // 16M positions: a layer's cache of 8 GiB, past what any GPU lets one kernel see.
  await assert.rejects(loadModel(path, { ctx: 1 << 24, compute: 'gpu', progress: false }), (e: unknown) => isCairnError(e, 'MODEL_UNSUPPORTED') && /use --ctx \d+ or less/.test((e as Error).message));
  // Weights of a type the GPU kernels do not read (the IQ codebook formats run on the CPU): refused naming the tensor and its type.
  const iqPath = join(dir, 'placement-iq.gguf');
  writeSyntheticModel(iqPath, { ...ARCHS.qwen3, quant: GgmlType.IQ2_XXS, seed: 3 }, quantizeWithKernels);
  await assert.rejects(loadModel(iqPath, { ctx: 64, compute: 'gpu', progress: false }), (e: unknown) => isCairnError(e, 'MODEL_UNSUPPORTED') && /tensor \S+ is IQ2_XXS, a type the GPU kernels do not read yet/.test((e as Error).message));
  // auto passes a software adapter by, saying so, and runs on the CPU.
  const auto = await loadModel(path, { ctx: 64, compute: 'auto', progress: false });
  try {
    assert.equal(auto.placement.backend, auto.placement.note ? 'cpu' : 'gpu');
  } finally {
    auto.close();
  }
});

test('GPU backend: a vocabulary whose logits for a whole batch outgrow one binding runs in smaller batches, with the CPU\'s logits', { skip, timeout: 300_000 }, async () => {
  const path = join(dir, 'wide-vocab.gguf');
  writeSyntheticModel(path, { arch: 'llama', nEmbd: 64, nLayer: 2, nHead: 4, nKvHead: 2, nFf: 128, nVocab: 40000, ropeBase: 10000, quant: GgmlType.F32, seed: 7 }, quantizeWithKernels);
  // A device that lets one kernel see 32 MiB (lavapipe: 128 MiB): 512 rows of 40000 logits need 78 MiB.
  const base = await WebGpuKernels.open();
  const gpu = new WebGpuKernels({ ...base.gpu, maxBinding: 32 << 20 });
  const parts = await loadGpuParts(path, { ctx: 512 }, gpu);
  const cpu = await loadShards(path, { ctx: 512, progress: false });
  try {
    assert.ok(parts.runner.maxBatch >= 1 && parts.runner.maxBatch < 512, `a batch of ${parts.runner.maxBatch}`);
    const n = 24;
    const batch = { nTokens: n, tokens: Int32Array.from({ length: n }, (_, i) => (i * 977 + 5) % 40000), spans: [{ slot: 0, pos0: 0, start: 0, n }] };
    const want = cpu.shards[0].forward(batch);
    const got = await parts.shard.forward(batch);
    // Both keep an F16 cache; the GPU sums attention in f32 where the CPU rounds some of it: the gap is rounding.
    assertClose(got, want, { rtol: 1e-2, atol: 1e-2 }, 'logits');
  } finally {
    cpu.close();
    parts.close();
    gpu.destroy();
  }
});

test('GPU backend: a lost device fails each step by name, without hanging', { skip, timeout: 300_000 }, async () => {
  const path = join(dir, 'lost.gguf');
  writeSyntheticModel(path, { ...ARCHS.llama, quant: GgmlType.F32, seed: 5 }, quantizeWithKernels);
  const gpu = await WebGpuKernels.open();
  const parts = await loadGpuParts(path, { ctx: 64 }, gpu);
  try {
    const req = { nTokens: 3, tokens: Int32Array.from([1, 5, 9]), spans: [{ slot: 0, pos0: 0, start: 0, n: 3 }], outputs: [{ row: 2, seq: 1, mode: 'logits' as const }] };
    await parts.runner.forward(req);
    gpu.gpu.device.destroy();
    for (let i = 0; i < 2; i++) {
      await assert.rejects(parts.runner.forward(req), (e: unknown) => isCairnError(e, 'GPU_UNAVAILABLE') && /the GPU device was lost/.test((e as Error).message));
    }
  } finally {
    parts.close();
  }
});

test('cairn generate and serve --backend: gpu runs there and says on which adapter, auto says why it stayed on the CPU, a cache the GPU cannot hold fails by name', { skip, timeout: 300_000 }, async () => {
  const path = join(dir, 'cli.gguf');
  writeSyntheticModel(path, { ...ARCHS.llama, quant: GgmlType.F32, seed: 5 }, quantizeWithKernels);
  const run = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, 'bin/cairn.js'), 'generate', '-m', path, '-p', 'hello', '-n', '6', '--temperature', '0', '--json', ...args], { encoding: 'utf8', timeout: 120_000 });
  const gpu = run('--backend', 'gpu');
  assert.equal(gpu.status, 0, gpu.stderr);
  const g = JSON.parse(gpu.stdout);
  assert.equal(g.backend.name, 'gpu');
  assert.ok(typeof g.backend.adapter === 'string' && g.backend.adapter.length > 0);
  assert.equal(g.tokens.length, 6);
  const auto = JSON.parse(run('--backend', 'auto').stdout);
  if (auto.backend.name === 'cpu') assert.match(auto.backend.note, /computing on the CPU: /);
  const cpu = JSON.parse(run('--backend', 'cpu').stdout);
  assert.deepEqual(cpu.backend, { name: 'cpu', adapter: null, gpu_layers: 0, note: null });
  const split = JSON.parse(run('--backend', 'gpu', '--gpu-layers', '2').stdout);
  assert.equal(split.backend.gpu_layers, 2);
  const inspect = spawnSync(process.execPath, [join(ROOT, 'bin/cairn.js'), 'inspect', path, '--load', '--backend', 'gpu', '--gpu-layers', '2', '--json', '--no-tensors'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(inspect.status, 0, inspect.stderr);
  const layers = JSON.parse(inspect.stdout).loaded.layers;
  assert.deepEqual([layers.cpu, layers.gpu], [[0, 1], [1, 3]], 'inspect --load: where the layers run');
  // The server says where it runs.
  const server = await startServer(['-m', path, '--ctx', '128', '--backend', 'gpu', '--gpu-layers', '2']);
  try {
    await server.ready();
    const props = (await (await fetch(`${server.url}/props`)).json()) as { model_alias: string; backend: { name: string; adapter: string; gpu_layers: number } };
    assert.equal(props.backend.name, 'gpu');
    assert.equal(props.backend.gpu_layers, 2);
    const r = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: props.model_alias, prompt: 'hello', max_tokens: 4, temperature: 0 }) });
    assert.equal(r.status, 200, await r.clone().text());
  } finally {
    await server.stop();
  }
  const refusedSplit = run('--gpu-layers', '2');
  assert.notEqual(refusedSplit.status, 0);
  assert.match(refusedSplit.stderr, /--gpu-layers goes with --backend gpu or auto/);
  const refused = spawnSync(process.execPath, [join(ROOT, 'bin/cairn.js'), 'generate', '-m', path, '-p', 'hi', '-n', '2', '--backend', 'gpu', '--kv-type', 'f32'], { encoding: 'utf8', timeout: 120_000 });
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /the GPU backend keeps its KV cache in F16 or Q8_0; use --kv-type f16 or q8_0, or --backend cpu/);
  assert.doesNotMatch(refused.stderr, /\n\s+at /, 'no stack trace');
});

for (const [label, shape, gpuLayers] of [
  ['qwen2', ARCHS.qwen2, undefined],
  ['qwen2', ARCHS.qwen2, 1],
  // Experts: a step's pairs grouped by expert in tiles, whatever the other sequences chose.
  ['qwen3moe', QWEN3MOE, undefined],
] as const) {
test(`GPU backend under the engine, ${label}${gpuLayers ? `, the first layers on the CPU (--gpu-layers ${gpuLayers})` : ''}: concurrent sequences give exactly their serial outputs, a longer prompt reuses the cached prefix`, { skip, timeout: 300_000 }, async () => {
  const path = join(dir, `engine-${label}-${gpuLayers ?? 'all'}.gguf`);
  writeSyntheticModel(path, { ...shape, quant: GgmlType.Q8_0, seed: 8 }, quantizeWithKernels);
  const run = async (model: Awaited<ReturnType<typeof loadModel>>, prompt: number[], maxTokens: number) => {
    for await (const ev of model.engine.generate({ prompt, maxTokens, sampler: { temperature: 0 }, ignoreEos: true })) {
      if (ev.type === 'done') {
        if (ev.summary.error) throw ev.summary.error;
        return ev.summary;
      }
    }
    throw new Error('no summary');
  };
  const model = await loadModel(path, { ctx: 256, slots: 3, maxBatch: 64, compute: 'gpu', gpuLayers, progress: false });
  assert.equal(model.placement.gpuLayers, gpuLayers ?? shape.nLayer);
  try {
    const prompts = [oraclePrompt(shape.nVocab, 30, 1), oraclePrompt(shape.nVocab, 5, 2), oraclePrompt(shape.nVocab, 50, 3)];
    const serial: number[][] = [];
    for (const p of prompts) serial.push([...(await run(model, p, 12)).tokens]);
    assert.ok(new Set(serial.flat()).size > 6, 'varied outputs');
    const together = await Promise.all(prompts.map((p) => run(model, p, 12)));
    assert.deepEqual(together.map((s) => [...s.tokens]), serial);
    const longer = [...prompts[2], ...serial[2], 300, 301];
    const cached = await run(model, longer, 8);
    assert.ok(cached.cachedTokens >= prompts[2].length, `reused ${cached.cachedTokens}`);
    // A fresh model that ran no step before: the same tokens, on the CPU alone (greedy, up to the rounding of f32 activations).
    const fresh = await loadModel(path, { ctx: 256, slots: 1, compute: 'gpu', gpuLayers, progress: false });
    try {
      const uncached = await run(fresh, longer, 8);
      assert.equal(uncached.cachedTokens, 0);
      assert.deepEqual([...cached.tokens], [...uncached.tokens]);
    } finally {
      fresh.close();
    }
  } finally {
    model.close();
  }
});
}

for (const [label, shape] of [
  ['llama', ARCHS.llama],
  ['gpt-oss (windows, sinks)', GPT_OSS],
] as const) {
  test(`GPU backend with a Q8_0 KV cache, ${label} F32: greedy tokens equal the CPU's with a Q8_0 cache`, { skip, timeout: 300_000 }, async () => {
    const path = join(dir, `kv-q8-${label.split(' ')[0]}.gguf`);
    writeSyntheticModel(path, { ...shape, quant: GgmlType.F32, seed: 13 }, quantizeWithKernels);
    const prompt = oraclePrompt(shape.nVocab, 20);
    const cpu = await cairnGreedy(path, prompt, 24, GgmlType.Q8_0);
    assert.ok(new Set(cpu).size > 5, 'varied tokens');
    assert.deepEqual(await cairnGreedy(path, prompt, 24, GgmlType.Q8_0, 'gpu'), cpu);
    const model = await loadModel(path, { ctx: 256, compute: 'gpu', kvType: GgmlType.Q8_0, progress: false });
    try {
      const f16 = await loadModel(path, { ctx: 256, compute: 'gpu', progress: false });
      // A Q8_0 cache takes 34 bytes for every 32 elements where F16 takes 64.
      assert.equal(model.kvBytes * 64, f16.kvBytes * 34);
      f16.close();
    } finally {
      model.close();
    }
  });
}

for (const [label, shape, quant] of [
  ['llama Q4_K_M', ARCHS.llama, 'Q4_K_M'],
  ['llama Q8_0', ARCHS.llama, GgmlType.Q8_0],
  ['qwen2 Q8_0 (biases)', ARCHS.qwen2, GgmlType.Q8_0],
  ['Qwen3-MoE Q8_0', QWEN3MOE, GgmlType.Q8_0],
] as const) {
  test(`GPU backend, ${label}: the pipelines a step needs are compiled at load, off the event loop (no step compiles one)`, { skip, timeout: 300_000 }, async () => {
    const path = join(dir, `precompile-${label.replace(/\W+/g, '-')}.gguf`);
    writeSyntheticModel(path, { ...shape, quant, seed: 5 }, quantizeWithKernels);
    const gpu = await WebGpuKernels.open({ itemProducts: true });
    const parts = await loadGpuParts(path, { ctx: 64, slots: 2 }, gpu);
    try {
      const made = gpu.pipelineCount;
      assert.ok(made > 5, `${made} pipelines compiled at load`);
      const prompt = Int32Array.from(oraclePrompt(shape.nVocab, 6)).subarray(0, 6);
      await parts.shard.forward({ nTokens: 6, tokens: prompt, spans: [{ slot: 0, pos0: 0, start: 0, n: 6 }] });
      await parts.shard.forward({ nTokens: 1, tokens: prompt.subarray(0, 1), spans: [{ slot: 0, pos0: 6, start: 0, n: 1 }] });
      // Two sequences in one step (continuous batching).
      await parts.shard.forward({ nTokens: 2, tokens: prompt.subarray(0, 2), spans: [{ slot: 0, pos0: 7, start: 0, n: 1 }, { slot: 1, pos0: 0, start: 1, n: 1 }], outputRows: [0, 1] });
      assert.equal(gpu.pipelineCount, made, 'no step compiled a pipeline');
      if (label === 'llama Q8_0') {
        // Q/K/V stacked into one product, RoPE and the cache store one kernel, gate and up one product,
        // both residual adds in their products: 8 dispatches a layer, and the head's norm and product.
        const before = gpu.dispatchCount;
        await parts.shard.forward({ nTokens: 1, tokens: prompt.subarray(1, 2), spans: [{ slot: 0, pos0: 8, start: 0, n: 1 }] });
        assert.equal(gpu.dispatchCount - before, 8 * shape.nLayer + 2);
      }
    } finally {
      parts.close();
      gpu.destroy();
    }
  });
}

/**
 * Cluster nodes computing on a GPU (`cairn node --backend gpu`; in CI, Mesa's lavapipe), with real
 * processes on loopback: the node advertises its backend, adapter and the GPU's measured read rate,
 * which the coordinator's status shows; a GPU node holding every layer gives the text of
 * `cairn generate --backend gpu`; a pipeline of the coordinator's CPU and a GPU node gives the tokens
 * of `generate --backend gpu --gpu-layers` with the same split; a Mixture-of-Experts model runs on a
 * GPU stage too; a node asked for a KV cache type the GPU cannot hold (F32) refuses by name. Without the
 * optional `webgpu` package or an adapter, these tests are skipped and say why.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../src/gguf/ggml-types.js';
import { WebGpuKernels } from '../src/kernels/webgpu/gpu-kernels.js';
import { writeSyntheticModel } from '../src/model/synthetic.js';
import { QWEN3MOE } from './helpers/family-shapes.js';
import { quantizeWithKernels } from './helpers/oracle-greedy.js';
import { ROOT, scratchDir } from './helpers/paths.js';
import { startNode } from './helpers/node.js';
import { gpuSkip } from './helpers/test-gpu.js';
import { clusterRunner, clusterStatus } from './helpers/cluster.js';

const skip = await gpuSkip();

const dir = scratchDir('cluster-gpu');
const env = { XDG_CACHE_HOME: join(dir, 'cache') };
const dense = join(dir, 'dense.gguf');
const moe = join(dir, 'moe.gguf');
const N_LAYER = 6;

before(() => {
  mkdirSync(join(dir, 'cache'), { recursive: true });
  // 6 layers of about 3 MiB each (F32), so memory limits of a few MiB shape the plan.
  writeSyntheticModel(dense, { arch: 'llama', nEmbd: 256, nLayer: N_LAYER, nHead: 8, nKvHead: 4, nFf: 768, nVocab: 1000, quant: GgmlType.F32, seed: 31 }, quantizeWithKernels);
  writeSyntheticModel(moe, { ...QWEN3MOE, quant: GgmlType.Q8_0, seed: 5 }, quantizeWithKernels);
});
after(() => rmSync(dir, { recursive: true, force: true }));

function generate(model: string, n: number, ...args: string[]): string {
  const out = execFileSync(process.execPath, [join(ROOT, 'bin/cairn.js'), 'generate', '-m', model, '-p', 'hello', '-n', String(n), '--temperature', '0', '--ignore-eos', '--json', '--ctx', '256', ...args], { encoding: 'utf8' });
  return JSON.parse(out).text as string;
}

async function complete(url: string, model: string, n: number): Promise<string> {
  const r = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt: 'hello', max_tokens: n, temperature: 0, ignore_eos: true }),
  });
  assert.equal(r.status, 200, await r.clone().text());
  return ((await r.json()) as { choices: { text: string }[] }).choices[0].text;
}

const status = clusterStatus;
const withCluster = clusterRunner(env);

test('a GPU node says so; holding every layer it gives the text of generate --backend gpu', { skip, timeout: 300_000 }, async () => {
  const expected = generate(dense, 24, '--backend', 'gpu');
  await withCluster([['--backend', 'gpu']], ['-m', dense, '--no-local-compute'], async (s, [n]) => {
    assert.match(n.stderr(), /offers [\d.]+ GiB, [\d.]+ GB\/s, on the GPU .+/);
    assert.match(n.stderr(), /loading layers 0-5 of dense\.gguf onto the GPU/);
    const st = await status(s.url);
    const node = st.nodes.find((x) => !x.local)!;
    assert.equal(node.backend, 'gpu');
    assert.ok(node.adapter && node.adapter.length > 0);
    assert.ok(node.bytesPerSecond > 0);
    assert.deepEqual(await complete(s.url, 'dense', 24), expected);
  });
});

test('a pipeline of the coordinator\'s CPU and a GPU node gives the text of generate --gpu-layers with the same split', { skip, timeout: 300_000 }, async () => {
  // Room for about half the layers on each (the model needs some 92 MiB on one node, 67 of them fixed).
  await withCluster([['--backend', 'gpu', '--max-memory', String(82 << 20)]], ['-m', dense, '--max-memory', String(82 << 20)], async (s) => {
    const st = await status(s.url);
    const stages = st.plan!.stages;
    assert.equal(stages.length, 2, JSON.stringify(stages));
    const gpuStage = stages.find((x) => x.nodeId !== st.nodes.find((n) => n.local)!.id)!;
    assert.equal(gpuStage.layerEnd, N_LAYER, 'the GPU node holds the last layers');
    const expected = generate(dense, 24, '--backend', 'gpu', '--gpu-layers', String(N_LAYER - gpuStage.layerStart));
    assert.deepEqual(await complete(s.url, 'dense', 24), expected);
  });
});

test('a Mixture-of-Experts model runs on a GPU node as on a single GPU', { skip, timeout: 300_000 }, async () => {
  const expected = generate(moe, 16, '--backend', 'gpu');
  await withCluster([['--backend', 'gpu']], ['-m', moe, '--no-local-compute'], async (s) => {
    assert.deepEqual(await complete(s.url, 'moe', 16), expected);
  });
});

test('a GPU node asked for an F32 KV cache refuses by name; cairn node --help offers --backend', { skip, timeout: 300_000 }, async () => {
  await withCluster([['--backend', 'gpu']], ['-m', dense, '--no-local-compute', '--kv-type', 'f32'], async (s, [n]) => {
    await new Promise((r) => setTimeout(r, 2000));
    const st = await status(s.url);
    assert.notEqual(st.state, 'ready');
    assert.match(`${st.error ?? ''} ${n.stderr()}`, /F16 or Q8_0/);
  }).catch((e: Error) => {
    // The coordinator may give up before it is ready (no plan can run): it says why.
    assert.match(e.message, /F16 or Q8_0/);
  });
  const help = spawnSync(process.execPath, [join(ROOT, 'bin/cairn.js'), 'node', '--help'], { encoding: 'utf8' });
  assert.match(help.stdout, /--backend <name>/);
});

test('cairn node --backend auto passes a software adapter by, saying why, and offers its CPU', { skip, timeout: 120_000 }, async () => {
  const node = await startNode(['--backend', 'auto'], { env });
  try {
    const software = (await WebGpuKernels.open().then((g) => [g.gpu.adapter.software, g.destroy()][0])) as boolean;
    if (software) {
      assert.match(node.stderr(), /computing on the CPU: the only GPU adapter is .+ \(ask for it with --backend gpu\)/);
      assert.match(node.stderr(), /offers [\d.]+ GiB, [\d.]+ GB\/s, \d+ threads/);
    } else assert.match(node.stderr(), /on the GPU /);
  } finally {
    await node.stop();
  }
});

/**
 * Mixture-of-Experts models served as dense ones are: for a small random-weight model of every MoE
 * architecture, concurrent sequences batch into shared steps and give exactly their serial outputs
 * (tokens of a step routed to different experts), a prompt that extends an earlier one reuses its
 * KV cache and gives the tokens of a fresh run, and a 2-stage pipeline (a `cairn serve --cluster`
 * coordinator and a `cairn node`, real processes on loopback) gives single-node `cairn generate`'s
 * greedy text. Whether each family's tokens are llama.cpp's is the oracle tests' job.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../src/gguf/ggml-types.js';
import { loadModel, type LoadedModel } from '../src/engine/load.js';
import type { GenerateRequest, GenerationSummary } from '../src/engine/engine.js';
import { writeSyntheticModel, type SyntheticShape } from '../src/model/synthetic.js';
import { quantizeWithKernels } from './helpers/oracle-greedy.js';
import { ROOT, scratchDir } from './helpers/paths.js';
import { startNode, type NodeProcess } from './helpers/node.js';
import { startServer, type ServerProcess } from './helpers/server.js';

const dir = scratchDir('moe-serving');
const cache = join(dir, 'cache');
const env = { XDG_CACHE_HOME: cache };
before(() => mkdirSync(cache, { recursive: true }));
after(() => rmSync(dir, { recursive: true, force: true }));

const base = { nEmbd: 128, nLayer: 4, nHead: 4, nKvHead: 2, nFf: 256, nVocab: 400 };
/** One small model per MoE architecture, routing as its real files do. */
const MODELS: [name: string, shape: SyntheticShape][] = [
  // Mixtral's experts are feed_forward_length wide (its files have no expert width of their own).
  ['mixtral', { ...base, arch: 'llama', moe: { experts: 8, used: 2, width: base.nFf } }],
  ['qwen2moe', { ...base, arch: 'qwen2moe', moe: { experts: 8, used: 2, width: 64, shared: 1, sharedWidth: 128 } }],
  ['qwen3moe', { ...base, arch: 'qwen3moe', headDim: 48, moe: { experts: 8, used: 2, width: 64, normalize: true } }],
  ['glm4moe', { ...base, arch: 'glm4moe', attnExtras: { qkvBias: true, qkNorm: true }, moe: { experts: 8, used: 2, width: 64, shared: 1, leadingDense: 1, sigmoid: true, normalize: true, scale: 2.5, groups: 2, groupsUsed: 1 } }],
  ['gpt-oss', { ...base, arch: 'gpt-oss', headDim: 32, slidingWindow: 16, moe: { experts: 8, used: 2, width: 64 } }],
  [
    'deepseek2',
    {
      ...base,
      arch: 'deepseek2',
      nKvHead: 1,
      mla: { qLora: 48, kvLora: 64, nope: 32, ropeDim: 16, vDim: 32 },
      moe: { experts: 8, used: 2, width: 64, shared: 1, leadingDense: 1, sigmoid: true, normalize: true, scale: 2.5, groups: 4, groupsUsed: 2 },
    },
  ],
];

function prompt(seed: number, n: number, nVocab: number): number[] {
  return [1, ...Array.from({ length: n - 1 }, (_, i) => 3 + ((seed * 131 + i * 17) % (nVocab - 3)))];
}

async function run(model: LoadedModel, req: Omit<GenerateRequest, 'sampler'>): Promise<GenerationSummary> {
  for await (const ev of model.engine.generate({ sampler: { temperature: 0 }, ignoreEos: true, ...req })) if (ev.type === 'done') return ev.summary;
  throw new Error('no summary');
}

function generate(model: string, text: string, n: number): string {
  const out = execFileSync(process.execPath, [join(ROOT, 'bin/cairn.js'), 'generate', '-m', model, '-p', text, '-n', String(n), '--temperature', '0', '--ignore-eos', '--json', '--ctx', '256'], { encoding: 'utf8' });
  return (JSON.parse(out) as { text: string }).text;
}

for (const [name, shape] of MODELS) {
  describe(`${name}: batching, prompt reuse and a 2-stage pipeline`, () => {
    const path = join(dir, `${name}.gguf`);
    before(() => writeSyntheticModel(path, { ...shape, quant: GgmlType.Q8_0, seed: 17 }, quantizeWithKernels));

    test('cairn inspect shows the experts (routed / used / shared) and the parameters a token uses', () => {
      const m = shape.moe!;
      const moeLayers = shape.nLayer - (m.leadingDense ?? 0);
      const j = JSON.parse(execFileSync(process.execPath, [join(ROOT, 'bin/cairn.js'), 'inspect', path, '--json', '--no-tensors'], { encoding: 'utf8' })) as {
        experts: { routed: number; used: number; shared: number; width: number; layers: number };
        bytes: { parameters: number; activeParameters: number; total: number; activePerToken: number };
        parameters: number;
      };
      assert.deepEqual(j.experts, { routed: m.experts, used: m.used, shared: m.shared ?? 0, width: m.width, layers: moeLayers });
      assert.equal(j.bytes.parameters, j.parameters);
      // A token uses used/experts of every routed bank: the active share is below the whole by about that much.
      const bank = (e: number) => e * 3 * m.width * shape.nEmbd;
      const unused = moeLayers * (bank(m.experts) - bank(m.used));
      const embedRows = (shape.nVocab - 1) * shape.nEmbd;
      assert.equal(j.bytes.activeParameters, j.parameters - unused - embedRows);
      assert.ok(j.bytes.activePerToken < j.bytes.total);
      const text = execFileSync(process.execPath, [join(ROOT, 'bin/cairn.js'), 'inspect', path, '--no-tensors'], { encoding: 'utf8' });
      assert.match(text, new RegExp(`experts +${m.experts} routed \\(${m.used} used per token\\)${m.shared ? ` \\+ ${m.shared} shared` : ''}, width ${m.width}, in ${moeLayers} of ${shape.nLayer} layers`));
    });

    test('concurrent sequences share steps and give exactly their serial outputs; a longer prompt reuses the KV cache', async () => {
      const model = await loadModel(path, { ctx: 256, slots: 4, maxBatch: 64, progress: false });
      try {
        const prompts = [prompt(1, 30, shape.nVocab), prompt(2, 5, shape.nVocab), prompt(3, 60, shape.nVocab), prompt(4, 12, shape.nVocab)];
        const serial: number[][] = [];
        for (const p of prompts) serial.push([...(await run(model, { prompt: p, maxTokens: 16 })).tokens]);
        assert.ok(new Set(serial.flat()).size > 8, 'varied outputs');
        const stepsBefore = model.engine.stats.steps;
        const together = await Promise.all(prompts.map((p) => run(model, { prompt: p, maxTokens: 16 })));
        assert.deepEqual(
          together.map((s) => [...s.tokens]),
          serial,
        );
        assert.ok(model.engine.stats.steps - stepsBefore < 40, `${model.engine.stats.steps - stepsBefore} steps for 4 x 16 tokens: batched`);

        const longer = [...prompts[2], ...serial[2], 7, 8];
        const cached = await run(model, { prompt: longer, maxTokens: 12 });
        assert.ok(cached.cachedTokens >= prompts[2].length, `reused ${cached.cachedTokens}`);
        const fresh = await loadModel(path, { ctx: 256, slots: 1, progress: false });
        try {
          const uncached = await run(fresh, { prompt: longer, maxTokens: 12 });
          assert.equal(uncached.cachedTokens, 0);
          assert.deepEqual([...cached.tokens], [...uncached.tokens]);
        } finally {
          fresh.close();
        }
      } finally {
        model.close();
      }
    });

    test('2 stages (coordinator + a node) give single-node cairn generate\'s text', { timeout: 120_000 }, async () => {
      const expected = generate(path, 'hello there', 24);
      let node: NodeProcess | undefined;
      let server: ServerProcess | undefined;
      try {
        node = await startNode([], { env });
        server = await startServer(['-m', path, '--cluster', '--peers', node.peer, '--ctx', '256'], env);
        await server.ready();
        const st = (await (await fetch(`${server.url}/v1/cluster`)).json()) as { plan: { stages: unknown[] } };
        assert.equal(st.plan.stages.length, 2);
        const r = await fetch(`${server.url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: name, prompt: 'hello there', max_tokens: 24, temperature: 0, ignore_eos: true }),
        });
        assert.equal(r.status, 200);
        assert.equal(((await r.json()) as { choices: { text: string }[] }).choices[0].text, expected);
      } finally {
        await server?.stop();
        await node?.stop();
      }
    });
  });
}

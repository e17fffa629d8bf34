/**
 * Speculative decoding keeps the output of plain decoding: on every family, greedy and seeded
 * sampled generations are the same tokens with drafts that are partly right (accepted and rejected
 * rows in one step), with prompt lookup, and with a draft model; and several sequences speculate
 * inside one batched step.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../gguf/ggml-types.js';
import type { SyntheticShape } from '../model/synthetic.js';
import type { SamplerOptions } from '../sampling/index.js';
import { scratchDir } from '../../test/helpers/paths.js';
import { writeSyntheticFile } from '../../test/helpers/synthetic-file.js';
import { MOE_SHAPES } from '../../test/helpers/moe-shapes.js';
import type { DraftRequest, DraftSource } from './draft-source.js';
import { loadModel, type LoadedModel } from './load.js';
import type { Engine, GenerationSummary } from './engine.js';

const dir = scratchDir('speculative');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

/** One small model of every family (and the block kinds they are built from). */
const FAMILIES: Record<string, SyntheticShape> = {
  llama: { arch: 'llama', nEmbd: 64, nLayer: 3, nHead: 4, nKvHead: 2, nFf: 128, nVocab: 300, ropeFreqs: true },
  qwen2: { arch: 'qwen2', nEmbd: 64, nLayer: 3, nHead: 4, nKvHead: 2, nFf: 96, nVocab: 300, tied: true },
  qwen3: { arch: 'qwen3', nEmbd: 64, nLayer: 3, nHead: 4, nKvHead: 1, headDim: 32, nFf: 128, nVocab: 300 },
  // The Mixture-of-Experts families as the parallelism tests build them (latent attention, sinks and windows among them).
  ...MOE_SHAPES,
};

function modelFile(name: string, shape: SyntheticShape, quant: GgmlType, seed = 3): string {
  const path = join(dir, `${name}-${quant}-${seed}.gguf`);
  writeSyntheticFile(path, { ...shape, quant, seed });
  return path;
}

async function run(engine: Engine, prompt: number[], maxTokens: number, sampler: SamplerOptions): Promise<GenerationSummary> {
  for await (const ev of engine.generate({ prompt, maxTokens, sampler, ignoreEos: true })) if (ev.type === 'done') return ev.summary;
  throw new Error('no done event');
}

/**
 * Drafts that are the given continuation with every `wrongEvery`-th draft token changed: steps
 * then keep some draft tokens and reject the rest, and some drafts are wrong at their first token.
 */
class ScriptedDrafts implements DraftSource {
  readonly name = 'scripted';
  proposed = 0;
  constructor(
    private readonly prompt: readonly number[],
    private readonly truth: readonly number[],
    private readonly wrongEvery: number,
    private readonly nVocab: number,
  ) {}
  propose(requests: readonly DraftRequest[]): number[][] {
    return requests.map((r) => {
      const at = r.history.length - this.prompt.length;
      const draft = this.truth.slice(at, at + r.max).map((t, i) => ((at + i) % this.wrongEvery === 0 ? (t + 1) % this.nVocab : t));
      this.proposed += draft.length;
      return draft;
    });
  }
  forget(): void {}
}

const PROMPT = [1, 17, 42, 99, 5, 17, 42, 7, 250, 13];
const TOKENS = 40;

for (const [family, shape] of Object.entries(FAMILIES)) {
  test(`${family}: greedy and seeded sampling give the same tokens with drafts partly right as without speculation`, async () => {
    const path = modelFile(family, shape, GgmlType.Q8_0);
    const opts = { ctx: 128, prefetch: false, progress: false } as const;
    const plain = await loadModel(path, { ...opts, speculation: { maxDraft: 0 } });
    let models: LoadedModel[] = [plain];
    try {
      for (const sampler of [{ temperature: 0 }, { temperature: 0.9, topK: 40, seed: 11 }] as SamplerOptions[]) {
        const expected = await run(plain.engine, PROMPT, TOKENS, sampler);
        assert.equal(expected.draftTokens, 0);
        const drafts = new ScriptedDrafts(PROMPT, expected.tokens, 4, shape.nVocab);
        const spec = await loadModel(path, { ...opts, speculation: { source: drafts, maxDraft: 6, unpaced: true } });
        models.push(spec);
        const got = await run(spec.engine, PROMPT, TOKENS, sampler);
        assert.deepEqual(got.tokens, expected.tokens, `temperature ${sampler.temperature}`);
        assert.ok(got.acceptedDraftTokens > 0, 'some draft tokens were kept');
        assert.ok(got.acceptedDraftTokens < got.draftTokens, 'some draft tokens were rejected');
        // Each kept draft token is a generated token that took no step of its own.
        assert.ok(spec.engine.stats.steps < plain.engine.stats.steps, `${spec.engine.stats.steps} steps vs ${plain.engine.stats.steps}`);
      }
      const lookup = await loadModel(path, { ...opts, speculation: { unpaced: true } });
      models.push(lookup);
      const expected = await run(plain.engine, PROMPT, TOKENS, { temperature: 0 });
      const got = await run(lookup.engine, PROMPT, TOKENS, { temperature: 0 });
      assert.deepEqual(got.tokens, expected.tokens, 'prompt lookup (the default)');
    } finally {
      for (const m of models) m.close();
      models = [];
    }
  });
}

test('a draft model of the same vocabulary: same tokens, drafts verified; another vocabulary is refused', async () => {
  const shape = FAMILIES.llama;
  const path = modelFile('target', shape, GgmlType.Q8_0, 3);
  // The model as its own draft agrees with itself; a model of other weights mostly does not.
  const same = modelFile('target', shape, GgmlType.Q8_0, 3);
  const other = modelFile('other', { ...shape, nLayer: 1 }, GgmlType.Q8_0, 8);
  const opts = { ctx: 128, slots: 2, prefetch: false, progress: false } as const;
  const plain = await loadModel(path, { ...opts, speculation: { maxDraft: 0 } });
  const models: LoadedModel[] = [plain];
  try {
    const expected = await run(plain.engine, PROMPT, TOKENS, { temperature: 0 });
    for (const draftModel of [same, other]) {
      const spec = await loadModel(path, { ...opts, speculation: { draftModel, maxDraft: 5, unpaced: true } });
      models.push(spec);
      // Two at once: both sequences draft in the same passes of the draft model.
      const [a, b] = await Promise.all([run(spec.engine, PROMPT, TOKENS, { temperature: 0 }), run(spec.engine, PROMPT.slice(0, 6), TOKENS, { temperature: 0 })]);
      assert.deepEqual(a.tokens, expected.tokens);
      assert.deepEqual(b.tokens, (await run(plain.engine, PROMPT.slice(0, 6), TOKENS, { temperature: 0 })).tokens);
      assert.ok(a.draftTokens > 0);
      if (draftModel === same) assert.ok(a.acceptedDraftTokens > a.draftTokens / 2, `${a.acceptedDraftTokens} of ${a.draftTokens} kept from the model itself`);
    }
    const foreign = modelFile('foreign', { ...shape, nVocab: 600 }, GgmlType.Q8_0, 4);
    await assert.rejects(loadModel(path, { ...opts, speculation: { draftModel: foreign } }), /draft model .* 600 tokens/);
  } finally {
    for (const m of models) m.close();
  }
});

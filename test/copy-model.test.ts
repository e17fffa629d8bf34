/**
 * The copy model (`cairn bench --make-model SHAPE --copy-period N`): a llama model whose weights
 * are built to repeat its context every N tokens, the workload on which speculative decoding from
 * the context pays. Its output must be the repeat (in cairn and in llama.cpp on the same file, so
 * the file is an ordinary llama model and not one only cairn reads), and cairn's prompt lookup must
 * draft that repeat and keep it, with the tokens those of plain decoding.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../src/gguf/ggml-types.js';
import type { SyntheticModelSpec, SyntheticQuant } from '../src/model/synthetic.js';
import { copyPrompt } from '../src/model/families/copy-decoder.js';
import { loadModel } from '../src/engine/load.js';
import type { GenerationSummary } from '../src/engine/engine.js';
import { llamaCppGreedy } from './helpers/llama-cpp.js';
import { scratchDir } from './helpers/paths.js';
import { writeSyntheticFile } from './helpers/synthetic-file.js';

const dir = scratchDir('copy-model');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const PERIOD = 50;
const SHAPE: Omit<SyntheticModelSpec, 'quant' | 'seed'> = { arch: 'llama', nEmbd: 256, nLayer: 3, nHead: 8, nKvHead: 2, nFf: 512, nVocab: 400, ctx: 512, copyPeriod: PERIOD };

function write(name: string, quant: SyntheticQuant): string {
  const path = join(dir, `${name}.gguf`);
  writeSyntheticFile(path, { ...SHAPE, quant, seed: 3 });
  return path;
}

async function generate(path: string, prompt: number[], tokens: number, opts: { speculate: boolean; temperature?: number }): Promise<GenerationSummary> {
  const model = await loadModel(path, { ctx: 512, progress: false, speculation: opts.speculate ? undefined : { maxDraft: 0 } });
  try {
    for await (const ev of model.engine.generate({ prompt, maxTokens: tokens, sampler: { temperature: opts.temperature ?? 0, seed: 11 }, ignoreEos: true })) {
      if (ev.type === 'done') {
        if (ev.summary.error) throw ev.summary.error;
        return ev.summary;
      }
    }
    throw new Error('no summary');
  } finally {
    model.close();
  }
}

for (const [name, quant] of [
  ['F32', GgmlType.F32],
  ['Q4_K_M', 'Q4_K_M'],
] as [string, SyntheticQuant][]) {
  test(`copy model ${name}: greedy decoding repeats the context, in cairn and in llama.cpp`, { timeout: 300_000 }, async () => {
    const path = write(`copy-${name}`, quant);
    const { prompt, continuation } = copyPrompt(PERIOD, SHAPE.nVocab, 7, 80);
    const plain = await generate(path, prompt, 80, { speculate: false });
    assert.deepEqual(plain.tokens, continuation, 'cairn continues with the tokens one period back, round again past the prompt');
    const oracle = await llamaCppGreedy(path, prompt, 24, { kvType: 'F16' });
    assert.deepEqual(
      oracle.map((s) => s.token),
      continuation.slice(0, 24),
      'llama.cpp reads the same file as the same copying model',
    );
  });
}

test('copy model: prompt lookup drafts the repeat and keeps it, the tokens those of plain decoding', { timeout: 300_000 }, async () => {
  const path = write('copy-speculative', GgmlType.F32);
  const { prompt, continuation } = copyPrompt(PERIOD, SHAPE.nVocab, 5, 100);
  const plain = await generate(path, prompt, 100, { speculate: false });
  const speculative = await generate(path, prompt, 100, { speculate: true });
  assert.equal(plain.draftTokens, 0, 'no drafts with speculation off');
  assert.deepEqual(speculative.tokens, plain.tokens, 'speculative greedy output is plain greedy output');
  assert.deepEqual(speculative.tokens, continuation);
  assert.ok(speculative.draftTokens >= 50, `prompt lookup drafted ${speculative.draftTokens} tokens`);
  assert.ok(speculative.acceptedDraftTokens >= 0.9 * speculative.draftTokens, `kept ${speculative.acceptedDraftTokens} of ${speculative.draftTokens} drafted`);
  // Sampled at temperature 1 the copy still holds: the copied token's logit stands far above the rest.
  const sampled = await generate(path, prompt, 40, { speculate: true, temperature: 1 });
  assert.deepEqual(sampled.tokens, continuation.slice(0, 40));
  assert.ok(sampled.acceptedDraftTokens > 0, 'sampled decoding keeps drafts too');
});

test('copy model: a period the context cannot hold, a shape without room for the codes, or a bad copy prompt is refused', () => {
  assert.throws(() => copyPrompt(PERIOD, SHAPE.nVocab, PERIOD + 1, 4), /repeated start must be 0 to 50 tokens/);
  assert.throws(() => copyPrompt(PERIOD, 259, 3, 4), /vocabulary past its 259 special and byte tokens/);
  assert.throws(() => writeSyntheticFile(join(dir, 'bad-period.gguf'), { ...SHAPE, copyPeriod: 512, quant: GgmlType.F32, seed: 1 }), /copy period must be an integer in \[2, 511\]/);
  assert.throws(
    () => writeSyntheticFile(join(dir, 'bad-shape.gguf'), { ...SHAPE, nKvHead: 8, quant: GgmlType.F32, seed: 1 }),
    /needs an embedding of at least 513/,
  );
});

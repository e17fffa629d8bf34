import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCairnError } from '../util/errors.js';
import { chooseGguf, describeChoices, ggufChoices, quantTag } from './gguf-choice.js';
import type { HubFile, RepoListing } from './hub-client.js';
import { parseHubRef } from './hub-ref.js';

const MiB = 1 << 20;

function listing(files: [string, number][]): RepoListing {
  return { repo: 'o/r', commit: 'a'.repeat(40), files: files.map(([path, size]): HubFile => ({ path, size })) };
}

const repo = listing([
  ['README.md', 100],
  ['Model-Q4_K_M.gguf', 400 * MiB],
  ['Model-Q4_K_S.gguf', 380 * MiB],
  ['Model-Q4_K.gguf', 390 * MiB],
  ['Model-IQ4_XS.gguf', 350 * MiB],
  ['model-bf16.gguf', 1600 * MiB],
  ['mmproj-Model-F16.gguf', 600 * MiB],
  ['Q8_0/Model-Q8_0-00002-of-00002.gguf', 300 * MiB],
  ['Q8_0/Model-Q8_0-00001-of-00002.gguf', 500 * MiB],
  ['F32/Model-F32-00001-of-00003.gguf', 1000 * MiB],
  ['F32/Model-F32-00003-of-00003.gguf', 1000 * MiB],
  ['imatrix.gguf', 5 * MiB],
]);

test('quantTag: llama.cpp type names as whole tokens, canonical case', () => {
  assert.equal(quantTag('Model-Q4_K_M'), 'Q4_K_M');
  assert.equal(quantTag('model.q4_k_m'), 'Q4_K_M');
  assert.equal(quantTag('Model-IQ2_XXS'), 'IQ2_XXS');
  assert.equal(quantTag('Qwen3-30B-A3B-UD-Q4_K_XL'), 'UD-Q4_K_XL');
  assert.equal(quantTag('gpt-oss-20b-mxfp4'), 'MXFP4');
  assert.equal(quantTag('Llama-3.2-1B-Instruct-BF16'), 'BF16');
  assert.equal(quantTag('Model-Q4_0_4_4'), 'Q4_0_4_4');
  assert.equal(quantTag('Qwen2.5-7B-Instruct'), undefined);
  assert.equal(quantTag('SomeQ4_K_M'), undefined);
});

test('ggufChoices: models only, split sets grouped when complete, sorted by size', () => {
  const choices = ggufChoices(repo.files);
  assert.deepEqual(
    choices.map((c) => [c.name, c.tag, c.parts.length, c.size / MiB]),
    [
      ['Model-IQ4_XS', 'IQ4_XS', 1, 350],
      ['Model-Q4_K_S', 'Q4_K_S', 1, 380],
      ['Model-Q4_K', 'Q4_K', 1, 390],
      ['Model-Q4_K_M', 'Q4_K_M', 1, 400],
      ['Model-Q8_0', 'Q8_0', 2, 800],
      ['model-bf16', 'BF16', 1, 1600],
    ],
  );
  const q8 = choices.find((c) => c.tag === 'Q8_0')!;
  assert.deepEqual(
    q8.parts.map((p) => p.path),
    ['Q8_0/Model-Q8_0-00001-of-00002.gguf', 'Q8_0/Model-Q8_0-00002-of-00002.gguf'],
  );
});

test('chooseGguf: by tag in any case, Q4_K not matching Q4_K_M', () => {
  assert.equal(chooseGguf(repo, parseHubRef('hf:o/r:q4_k_m')).parts[0].path, 'Model-Q4_K_M.gguf');
  assert.equal(chooseGguf(repo, parseHubRef('hf:o/r:Q4_K')).parts[0].path, 'Model-Q4_K.gguf');
  assert.equal(chooseGguf(repo, parseHubRef('hf:o/r:bf16')).parts[0].path, 'model-bf16.gguf');
  assert.equal(chooseGguf(repo, parseHubRef('hf:o/r:Q8_0')).parts.length, 2);
  const only = listing([['x/Model-Q4_K_M.gguf', 10]]);
  assert.throws(
    () => chooseGguf(only, parseHubRef('hf:o/r:Q4_K')),
    (err: unknown) => isCairnError(err, 'HUB_NOT_FOUND') && /no GGUF file tagged Q4_K\b/.test(err.message),
  );
  // A tag typed without the UD- prefix still finds the Unsloth dynamic quant.
  const ud = listing([
    ['Model-UD-Q4_K_XL.gguf', 10],
    ['Model-Q8_0.gguf', 20],
  ]);
  assert.equal(chooseGguf(ud, parseHubRef('hf:o/r:Q4_K_XL')).parts[0].path, 'Model-UD-Q4_K_XL.gguf');
});

test('chooseGguf: by path, a part gives the whole set', () => {
  assert.equal(chooseGguf(repo, parseHubRef('hf:o/r/Model-IQ4_XS.gguf')).tag, 'IQ4_XS');
  const set = chooseGguf(repo, parseHubRef('hf:o/r/Q8_0/Model-Q8_0-00002-of-00002.gguf'));
  assert.equal(set.parts.length, 2);
  assert.equal(set.parts[0].path, 'Q8_0/Model-Q8_0-00001-of-00002.gguf');
  assert.equal(chooseGguf(repo, parseHubRef('hf:o/r/mmproj-Model-F16.gguf')).size, 600 * MiB);
  assert.throws(
    () => chooseGguf(repo, parseHubRef('hf:o/r/F32/Model-F32-00001-of-00003.gguf')),
    (err: unknown) => isCairnError(err, 'HUB_NOT_FOUND') && /other parts are missing/.test(err.message),
  );
  assert.throws(
    () => chooseGguf(repo, parseHubRef('hf:o/r/nope.gguf')),
    (err: unknown) => isCairnError(err, 'HUB_NOT_FOUND') && /not in the repo/.test(err.message) && /Q4_K_M/.test(err.message),
  );
});

test('chooseGguf: with no tag, the only model or a listing of all', () => {
  const one = listing([
    ['Model-Q4_0.gguf', 10],
    ['mmproj-x.gguf', 5],
  ]);
  assert.equal(chooseGguf(one, parseHubRef('hf:o/r')).tag, 'Q4_0');
  assert.throws(
    () => chooseGguf(repo, parseHubRef('hf:o/r')),
    (err: unknown) =>
      isCairnError(err, 'BAD_ARGUMENT') &&
      err.message.includes('cairn pull hf:o/r:TAG') &&
      /Q4_K_M\s+400 MiB\s+Model-Q4_K_M\.gguf/.test(err.message) &&
      /Q8_0\s+800 MiB\s+Q8_0\/Model-Q8_0-00001-of-00002\.gguf \(2 parts\)/.test(err.message),
  );
  assert.throws(
    () => chooseGguf(listing([['README.md', 1]]), parseHubRef('hf:o/r')),
    (err: unknown) => isCairnError(err, 'HUB_NOT_FOUND'),
  );
});

test('chooseGguf: a tag in several folders prefers the shortest path, a tie lists them', () => {
  const nested = listing([
    ['old/v1/Model-Q4_K_M.gguf', 10],
    ['Model-Q4_K_M.gguf', 10],
  ]);
  assert.equal(chooseGguf(nested, parseHubRef('hf:o/r:Q4_K_M')).parts[0].path, 'Model-Q4_K_M.gguf');
  const tie = listing([
    ['a/Model-Q4_K_M.gguf', 10],
    ['b/Model-Q4_K_M.gguf', 10],
  ]);
  assert.throws(
    () => chooseGguf(tie, parseHubRef('hf:o/r:Q4_K_M')),
    (err: unknown) =>
      isCairnError(err, 'BAD_ARGUMENT') && err.message.includes('a/Model-Q4_K_M.gguf') && err.message.includes('b/Model-Q4_K_M.gguf'),
  );
});

test('describeChoices: aligned columns', () => {
  const text = describeChoices(
    ggufChoices(
      listing([
        ['M-Q4_0.gguf', 1000],
        ['M-F16.gguf', 3 * MiB],
        ['plain.gguf', 5],
      ]).files,
    ),
  );
  assert.equal(text, ['  -          5 B  plain.gguf', '  Q4_0    1000 B  M-Q4_0.gguf', '  F16   3.00 MiB  M-F16.gguf'].join('\n'));
});

test('chooseGguf: an error lists at most 50 of a huge listing and counts the rest', () => {
  const huge = listing(Array.from({ length: 5000 }, (_, i): [string, number] => [`m${String(i).padStart(4, '0')}/Model-Q8_0.gguf`, MiB + i]));
  for (const ref of ['hf:o/r', 'hf:o/r:Q4_K_M', 'hf:o/r:Q8_0']) {
    assert.throws(
      () => chooseGguf(huge, parseHubRef(ref)),
      (err: unknown) => isCairnError(err) && err.message.split('\n').length <= 52 && /and 4950 more/.test(err.message),
    );
  }
});

/**
 * llama.cpp's own tokenizer vectors: every string of every vocab-only GGUF fixture must give the
 * ids llama.cpp gives (no BOS, special tokens not parsed), and decoding must give the input back
 * wherever llama.cpp's detokenizer does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fixture, missingFixture } from '../../test/helpers/paths.js';
import { tokenizerFromGguf, type Tokenizer } from './tokenizer.js';
import { decodeRoundTrips, readVocabVectors } from './testing/vocab-vectors.js';

const VOCAB_DIR = 'vocab';
const dir = fixture(VOCAB_DIR);

function checkVectors(tok: Tokenizer, base: string): void {
  const vectors = readVocabVectors(base);
  assert.ok(vectors.length > 0);
  for (const { text, ids } of vectors) {
    const got = tok.encode(text, { addSpecial: false, parseSpecial: false });
    assert.deepEqual(got, ids, `ids of ${JSON.stringify(text)}`);
    if (decodeRoundTrips(tok, text)) assert.equal(tok.decode(got), text, `decode of the ids of ${JSON.stringify(text)}`);
  }
}

if (!dir) {
  test('vocab fixtures', (t) => t.skip(missingFixture(VOCAB_DIR)));
} else {
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.gguf')).sort()) {
    const path = join(dir, file);
    const hasVectors = existsSync(`${path}.inp`) && existsSync(`${path}.out`);
    test(`${file}: ${hasVectors ? "llama.cpp's test vectors" : 'loads and round-trips (no vectors shipped)'}`, () => {
      const tok = tokenizerFromGguf(path);
      if (hasVectors) {
        checkVectors(tok, path);
        return;
      }
      const text = 'Hello world, 3333 ids\n\tand ünïcödé 🦙';
      const ids = tok.encode(text, { addSpecial: false });
      assert.ok(ids.length > 0);
      if (decodeRoundTrips(tok, text)) assert.equal(tok.decode(ids), text);
    });
  }
}

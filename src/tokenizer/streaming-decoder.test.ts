/**
 * Streaming detokenization: characters split across byte tokens come out whole, a stream that
 * starts a sequence gives exactly decode()'s text, a continuation keeps its leading space, and the
 * space clean-up of some vocabularies is applied without emitting text a later token could change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fixture, missingFixture, scratchDir } from '../../test/helpers/paths.js';
import { tokenizerFromGguf, type Tokenizer } from './tokenizer.js';
import { bpeEntries, spmEntries, tinyTokenizer } from './testing/tiny-vocab.js';
import { readVocabVectors } from './testing/vocab-vectors.js';
import type { StreamingDecoderOptions } from './streaming-decoder.js';
import { Prng } from '../util/prng.js';

const dir = scratchDir('stream');
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

/** Pushes ids one by one; returns what each push returned and the flushed rest. */
function stream(tok: Tokenizer, ids: readonly number[], options?: StreamingDecoderOptions): { steps: string[]; rest: string } {
  const d = tok.streamDecoder(options);
  const steps = ids.map((id) => d.push(id));
  return { steps, rest: d.flush() };
}

test('an emoji spelled by four byte tokens appears whole with its last byte (SPM)', () => {
  const tok = tinyTokenizer(dir, spmEntries([['▁', -1]], { bytes: true }));
  const ids = tok.encode('🦙', { addSpecial: false });
  assert.equal(ids.length, 5, '"▁" and four byte tokens');
  const { steps, rest } = stream(tok, ids);
  assert.deepEqual(steps, [' ', '', '', '', '🦙']);
  assert.equal(rest, '');
});

test('CJK characters split across byte-level BPE tokens appear whole', () => {
  const tok = tinyTokenizer(dir, bpeEntries([], []));
  const ids = tok.encode('我想', { addSpecial: false });
  assert.deepEqual(ids, [0xe6, 0x88, 0x91, 0xe6, 0x83, 0xb3]);
  assert.deepEqual(stream(tok, ids).steps, ['', '', '我', '', '', '想']);
});

test('an unfinished character is flushed as U+FFFD, and the decoder starts over', () => {
  const tok = tinyTokenizer(dir, bpeEntries([], []));
  const d = tok.streamDecoder();
  assert.equal(d.push(0xe6), '');
  assert.equal(d.push(0x88), '');
  assert.equal(d.flush(), '\ufffd');
  assert.equal(d.push(0x61), 'a');
});

test('a continuation keeps its leading space; after a leading BOS the space prefix is removed', () => {
  const tok = tinyTokenizer(dir, spmEntries([['▁', -9], ['▁was', -1], ['▁Once', -1]]));
  const was = tok.tokenId('▁was')!;
  const once = tok.tokenId('▁Once')!;
  assert.equal(stream(tok, [was]).steps.join(''), ' was');
  assert.equal(stream(tok, [tok.bosId!, once, was]).steps.join(''), 'Once was');
  assert.equal(stream(tok, [once, was], { sequenceStart: true }).steps.join(''), 'Once was');
  assert.equal(tok.decode([tok.bosId!, once, was]), 'Once was');
  assert.equal(tok.decode([once, was]), 'Once was');
  assert.equal(stream(tok, [tok.bosId!, once], { skipSpecial: false }).steps.join(''), '<s>Once');
});

test('the space clean-up is applied to the stream exactly as decode() applies it', () => {
  const tok = tinyTokenizer(dir, bpeEntries([], []));
  assert.ok(tok.vocab.flags.cleanSpaces);
  for (const text of ["Hello , world ! It 's 'd ' x ?", ' . , ! ?', "a ' b ' ' c 're 've 'll 'm", '...!!! ?? x']) {
    const ids = tok.encode(text, { addSpecial: false });
    const { steps, rest } = stream(tok, ids, { sequenceStart: true });
    assert.equal(steps.join('') + rest, tok.decode(ids), JSON.stringify(text));
  }
  assert.equal(tok.decode(tok.encode("Hello , world ! It 's", { addSpecial: false })), "Hello, world! It's");

  // Random runs of the bytes the clean-up looks at, one byte token per push.
  const rng = new Prng(7);
  const pieces = [' ', ' ', "'", '?', '!', '.', ',', 's', 'm', 'r', 'v', 'e', 'l', 't', 'x', '我'];
  for (let i = 0; i < 2000; i++) {
    let text = '';
    const n = 1 + Math.floor(rng.next() * 16);
    for (let k = 0; k < n; k++) text += pieces[Math.floor(rng.next() * pieces.length)];
    const ids = tok.encode(text, { addSpecial: false });
    const { steps, rest } = stream(tok, ids, { sequenceStart: true });
    assert.equal(steps.join('') + rest, tok.decode(ids), JSON.stringify(text));
  }
});

test('over every fixture vocabulary and string, a sequence stream equals decode()', (t) => {
  const vocabDir = fixture('vocab');
  if (!vocabDir) return t.skip(missingFixture('vocab'));
  const texts = readVocabVectors(join(vocabDir, 'ggml-vocab-llama-spm.gguf')).map((v) => v.text);
  for (const file of readdirSync(vocabDir).filter((f) => f.endsWith('.gguf'))) {
    const tok = tokenizerFromGguf(join(vocabDir, file));
    for (const text of texts) {
      const ids = tok.encode(text);
      for (const skipSpecial of [true, false]) {
        const { steps, rest } = stream(tok, ids, { sequenceStart: true, skipSpecial });
        assert.equal(steps.join('') + rest, tok.decode(ids, { skipSpecial }), `${file}: ${JSON.stringify(text)}`);
      }
    }
  }
});

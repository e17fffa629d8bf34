/**
 * Byte-level BPE: the GPT-2 byte alphabet, merges by rank, ties, ignore_merges, and bytes that
 * no merge covers; on hand-built vocabularies whose ids are the byte values for single bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { scratchDir } from '../../test/helpers/paths.js';
import { BYTE_TO_CHAR } from './byte-level.js';
import { bpeEntries, tinyTokenizer } from './testing/tiny-vocab.js';

const dir = scratchDir('bpe');
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

test("GPT-2's byte alphabet: printable bytes stand for themselves, the rest from U+0100 on", () => {
  assert.equal(new Set(BYTE_TO_CHAR).size, 256);
  assert.equal(BYTE_TO_CHAR[0x41], 'A');
  assert.equal(BYTE_TO_CHAR[0xe9], 'é');
  assert.equal(BYTE_TO_CHAR[0x00], '\u0100');
  assert.equal(BYTE_TO_CHAR[0x0a], 'Ċ');
  assert.equal(BYTE_TO_CHAR[0x20], 'Ġ');
  assert.equal(BYTE_TO_CHAR[0x7f], '\u0121');
  assert.equal(BYTE_TO_CHAR[0xad], 'Ń');
});

test('merges apply lowest rank first', () => {
  // Extra tokens get ids 256, 257, ...
  const tok = tinyTokenizer(dir, bpeEntries([['ab'], ['abc'], ['bc']], ['a b', 'ab c', 'b c']));
  assert.deepEqual(tok.encode('abc', { addSpecial: false }), [257]);
  const rev = tinyTokenizer(dir, bpeEntries([['ab'], ['bc']], ['b c', 'a b']));
  assert.deepEqual(rev.encode('abc', { addSpecial: false }), [0x61, 257]);
});

test('equal ranks merge the leftmost pair first', () => {
  const tok = tinyTokenizer(dir, bpeEntries([['aa']], ['a a']));
  assert.deepEqual(tok.encode('aaa', { addSpecial: false }), [256, 0x61]);
});

test('words are merged separately and spaces travel as Ġ', () => {
  const tok = tinyTokenizer(dir, bpeEntries([['ab'], ['Ġab']], ['a b', 'Ġ ab']));
  assert.deepEqual(tok.encode('ab ab', { addSpecial: false }), [256, 257]);
  assert.equal(tok.decode([256, 257]), 'ab ab');
});

test('multi-byte characters are spelled by their UTF-8 bytes when no merge joins them', () => {
  const tok = tinyTokenizer(dir, bpeEntries([], []));
  assert.deepEqual(tok.encode('é我', { addSpecial: false }), [0xc3, 0xa9, 0xe6, 0x88, 0x91]);
  assert.equal(tok.decode([0xc3, 0xa9, 0xe6, 0x88, 0x91]), 'é我');
});

test('ignore_merges (llama-bpe): a word that is a token is taken whole', () => {
  // "abc" is a token but no merge leads to it.
  const merges = ['a b'];
  const llama3 = tinyTokenizer(dir, bpeEntries([['ab'], ['abc']], merges, 'llama-bpe'));
  assert.deepEqual(llama3.encode('abc', { addSpecial: false }), [257]);
  const gpt2 = tinyTokenizer(dir, bpeEntries([['ab'], ['abc']], merges, 'gpt-2'));
  assert.deepEqual(gpt2.encode('abc', { addSpecial: false }), [256, 0x63]);
});

test('BPE adds no BOS unless the pre-tokenizer or the file says so', () => {
  const gpt2 = tinyTokenizer(dir, bpeEntries([['<|endoftext|>', 3]], []));
  assert.deepEqual(gpt2.encode('a'), [0x61]);
});

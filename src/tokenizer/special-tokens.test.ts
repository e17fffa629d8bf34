/**
 * Special tokens: verbatim matching before tokenization (control tokens only with parseSpecial,
 * user-defined always, longest first, whitespace stripping), the end-of-generation set, and the
 * BOS/EOS/SEP rules of each vocabulary type.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { fixture, missingFixture, scratchDir } from '../../test/helpers/paths.js';
import { gv } from '../gguf/values.js';
import { TokenType } from './token-attr.js';
import { tokenizerFromGguf } from './tokenizer.js';
import { bpeEntries, spmEntries, tinyTokenizer, type SpmToken } from './testing/tiny-vocab.js';

const dir = scratchDir('special');
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const C = TokenType.CONTROL;
const U = TokenType.USER_DEFINED;

// Ids: 3 "▁", 4 "x", 5 "▁x", 6 "<|a|>", 7 "<|a|>!", 8 "<u>", 9 "<|eot_id|>" (typed normal on purpose).
const TOKENS: SpmToken[] = [
  ['▁', -9],
  ['x', -5],
  ['▁x', -1],
  ['<|a|>', 0, C],
  ['<|a|>!', 0, C],
  ['<u>', 0, U],
  ['<|eot_id|>', 0],
];

test('control tokens are matched only with parseSpecial, user-defined tokens always', () => {
  const tok = tinyTokenizer(dir, spmEntries(TOKENS, { bytes: true }));
  const plain = tok.encode('x<u>x<|a|>', { addSpecial: false });
  assert.deepEqual(plain.slice(0, 3), [5, 8, 5], '<u> is cut out even without parseSpecial');
  assert.ok(!plain.includes(6), '<|a|> is plain text without parseSpecial');
  assert.equal(tok.decode(plain), 'x<u> x<|a|>');
  assert.deepEqual(tok.encode('x<u>x<|a|>', { addSpecial: false, parseSpecial: true }), [5, 8, 5, 6]);
});

test('the longest special token wins where several match', () => {
  const tok = tinyTokenizer(dir, spmEntries(TOKENS, { bytes: true }));
  assert.deepEqual(tok.encode('<|a|>!<|a|>', { addSpecial: false, parseSpecial: true }), [7, 6]);
});

test('a special token that names an end of turn becomes control and ends generation', () => {
  const tok = tinyTokenizer(dir, spmEntries(TOKENS, { bytes: true }));
  assert.equal(tok.eotId, 9, 'found by its text');
  assert.ok(tok.isEog(9) && tok.isEog(2), '<|eot_id|> and EOS');
  assert.ok(!tok.isEog(6) && !tok.isEog(1) && !tok.isEog(5));
  assert.ok(tok.isControl(9));
  assert.equal(tok.decode([5, 9], { skipSpecial: false }), 'x<|eot_id|>');
  assert.equal(tok.decode([5, 9], { skipSpecial: true }), 'x');
});

test('EOG ids from metadata and well-known texts', () => {
  const extra: SpmToken[] = [['<|im_end|>', 0, C], ['<|endoftext|>', 0, C], ['<end_of_turn>', 0, C], ['<|eom_id|>', 0, C], ['<stop>', 0, C]];
  const tok = tinyTokenizer(dir, [...spmEntries(extra), ['tokenizer.ggml.eot_token_id', gv.u32(7)]]);
  for (const text of ['<|im_end|>', '<|endoftext|>', '<end_of_turn>', '<|eom_id|>', '<stop>', '</s>']) {
    assert.ok(tok.isEog(tok.tokenId(text)!), `${text} ends generation`);
  }
  assert.equal(tok.eotId, 7);
  assert.equal(tok.eomId, tok.tokenId('<|eom_id|>'));
  assert.ok(!tok.isEog(1));
});

test('phi-3 strips whitespace after its chat markers (RSTRIP), as llama.cpp does for that model', (t) => {
  const path = fixture('vocab/ggml-vocab-phi-3.gguf');
  if (!path) return t.skip(missingFixture('vocab/ggml-vocab-phi-3.gguf'));
  const tok = tokenizerFromGguf(path);
  const user = tok.tokenId('<|user|>')!;
  const newline = tok.tokenId('<0x0A>')!;
  const ids = tok.encode('<|user|>\nHi', { addSpecial: false, parseSpecial: true });
  assert.equal(ids[0], user);
  assert.ok(!ids.includes(newline), 'the newline after <|user|> is swallowed');
  assert.deepEqual(ids.slice(1), tok.encode('Hi', { addSpecial: false }));
});

test('BOS/EOS: SPM adds BOS, gpt-2 BPE adds nothing, BERT wraps in CLS ... SEP', (t) => {
  const spm = tinyTokenizer(dir, spmEntries(TOKENS));
  assert.equal(spm.encode('x')[0], spm.bosId);
  const bpe = tinyTokenizer(dir, bpeEntries([], []));
  assert.deepEqual(bpe.encode('x'), [0x78]);
  const withBos = tinyTokenizer(dir, [...bpeEntries([['<s>', C]], []), ['tokenizer.ggml.bos_token_id', gv.u32(256)], ['tokenizer.ggml.add_bos_token', gv.bool(true)]]);
  assert.deepEqual(withBos.encode('x'), [256, 0x78]);

  const bert = fixture('vocab/ggml-vocab-bert-bge.gguf');
  if (!bert) return t.skip(missingFixture('vocab/ggml-vocab-bert-bge.gguf'));
  const wpm = tokenizerFromGguf(bert);
  const body = wpm.encode('Hello world', { addSpecial: false });
  assert.deepEqual(wpm.encode('Hello world'), [wpm.tokenId('[CLS]'), ...body, wpm.tokenId('[SEP]')]);
  assert.equal(wpm.decode(body).trim(), 'hello world');
});

test('special token ids outside the vocabulary are ignored', () => {
  const tok = tinyTokenizer(dir, [
    ...spmEntries(TOKENS),
    ['tokenizer.ggml.eot_token_id', gv.u32(4294967295)],
    ['tokenizer.ggml.padding_token_id', gv.u32(100000)],
  ]);
  assert.equal(tok.padId, undefined);
  assert.equal(tok.eotId, 9, 'falls back to the token found by its text');
});

/**
 * Runs `run` with String.prototype.indexOf and includes counting the characters their searches
 * pass over where `counted(haystack, search)`; returns what `run` returned and that count.
 */
function withSearchesCounted<T>(counted: (haystack: string, search: string) => boolean, run: () => T): { result: T; scanned: number } {
  let scanned = 0;
  const { includes, indexOf } = String.prototype;
  String.prototype.includes = function (this: string, search: string, from?: number): boolean {
    if (counted(this, search)) scanned += this.length - (from ?? 0);
    return includes.call(this, search, from);
  };
  String.prototype.indexOf = function (this: string, search: string, from?: number): number {
    const at = indexOf.call(this, search, from);
    if (counted(this, search)) scanned += (at === -1 ? this.length : at) - (from ?? 0);
    return at;
  };
  try {
    return { result: run(), scanned };
  } finally {
    String.prototype.includes = includes;
    String.prototype.indexOf = indexOf;
  }
}

test('a text holding many special tokens is cut in one pass per token, not one search to its end per piece', () => {
  // Ids 256 "<aa>", 257 "<b>": "<aa>" is cut first (longest), leaving n pieces in which "<b>" is sought.
  const tok = tinyTokenizer(dir, bpeEntries([['<aa>', U], ['<b>', U]], []));
  const n = 5000;
  const text = '<aa>x'.repeat(n) + '<b>';
  // Counts the characters the searches for "<b>" pass over (a search from each piece would pass over n * text / 2).
  const { result: ids, scanned } = withSearchesCounted(
    (_, search) => search === '<b>',
    () => tok.encode(text, { addSpecial: false }),
  );
  assert.ok(scanned <= text.length, `the searches passed over ${scanned} characters of ${text.length}`);
  assert.equal(ids.length, 2 * n + 1);
  assert.deepEqual(ids.slice(0, 4), [256, 0x78, 256, 0x78]);
  assert.equal(ids.at(-1), 257);
  assert.deepEqual(tok.encode('x<b><aa>x<b>', { addSpecial: false }), [0x78, 257, 256, 0x78, 257]);
});

test('special tokens that begin alike or lie inside one another are each found', () => {
  const texts = ['<t>', '<t1>', '<t12>', '[P]', '[PAD1]', '[PAD12]', 't1'];
  const tok = tinyTokenizer(dir, bpeEntries(texts.map((t) => [t, U] as const), []));
  const id = (t: string): number => 256 + texts.indexOf(t);
  const x = 0x78;
  assert.deepEqual(tok.encode('x<t12>x<t1>x<t>x[PAD1][P][PAD12', { addSpecial: false }).slice(0, 9), [
    x,
    id('<t12>'),
    x,
    id('<t1>'),
    x,
    id('<t>'),
    x,
    id('[PAD1]'),
    id('[P]'),
  ]);
  // "t1" is inside "<t1>" but cut only where no longer token holds it.
  assert.deepEqual(tok.encode('<t1>t1', { addSpecial: false }), [id('<t1>'), id('t1')]);
  assert.deepEqual(tok.encode('<t', { addSpecial: false }).includes(id('<t>')), false);
});

test('a long text is searched for special tokens in one pass, however many the vocabulary has', () => {
  const n = 3000;
  const tok = tinyTokenizer(
    dir,
    bpeEntries(
      Array.from({ length: n }, (_, i) => [`[PAD${i}]`, U] as const),
      [],
    ),
  );
  const text = 'x [PAD7] y [PAD'.repeat(2000);
  // Counts the characters that searches of the input pass over (one per token would be n * text).
  const { result: ids, scanned } = withSearchesCounted(
    (haystack) => haystack === text,
    () => tok.encode(text, { addSpecial: false }),
  );
  assert.ok(scanned <= 2 * text.length, `the searches passed over ${scanned} characters of ${text.length}`);
  assert.equal(ids.filter((t) => t === 256 + 7).length, 2000);
  assert.ok(!ids.some((t) => t >= 256 && t !== 256 + 7), 'only [PAD7] is in the text');
});

test('special tokens the trie leaves out (long ones, or past its bound on nodes) are still found, each sought on its own', () => {
  // 9000 tokens of 121 characters that part after their sixth fill the trie's million nodes (the
  // last few hundred are left out); a 300-character one is longer than any it takes.
  const many = Array.from({ length: 9000 }, (_, i) => `<${String(i).padStart(5, '0')}${'z'.repeat(114)}>`);
  const long = 'y'.repeat(300);
  const texts = [...many, long];
  const tok = tinyTokenizer(dir, bpeEntries(texts.map((t) => [t, U] as const), []));
  const input = `${long}-${many[8999]}-${many[0]}`;
  assert.deepEqual(tok.encode(input, { addSpecial: false }), [256 + 9000, 0x2d, 256 + 8999, 0x2d, 256]);
});

test('WordPiece: a word longer than 100 characters is the unknown token, as in BERT, however long the tokens', () => {
  // A token of 300 characters would make the longest-match search cost 300^2 per position.
  const tok = tinyTokenizer(dir, [
    ['tokenizer.ggml.model', gv.str('bert')],
    ['tokenizer.ggml.tokens', gv.strs(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '▁a', 'a', `${'a'.repeat(300)}b`])],
    ['tokenizer.ggml.unknown_token_id', gv.u32(1)],
    ['tokenizer.ggml.bos_token_id', gv.u32(2)],
    ['tokenizer.ggml.seperator_token_id', gv.u32(3)],
  ]);
  assert.deepEqual(tok.encode('a'.repeat(100), { addSpecial: false }), [4, ...Array<number>(99).fill(5)]);
  assert.deepEqual(tok.encode(`${'a'.repeat(101)} a`, { addSpecial: false }), [1, 4]);
});

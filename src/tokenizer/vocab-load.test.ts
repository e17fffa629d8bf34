/**
 * Loading tokenizer metadata that is missing, inconsistent or of a kind we do not implement must
 * fail with a CairnError that says what is wrong, never with a crash.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { scratchDir } from '../../test/helpers/paths.js';
import { gv, type GgufValue } from '../gguf/values.js';
import { isCairnError, type CairnErrorCode } from '../util/errors.js';
import { bpeEntries, spmEntries, tinyTokenizer } from './testing/tiny-vocab.js';

const dir = scratchDir('vocab-load');
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

type Entries = [string, GgufValue][];

function without(entries: Entries, key: string): Entries {
  return entries.filter(([k]) => k !== key);
}

function replaced(entries: Entries, key: string, value: GgufValue): Entries {
  return [...without(entries, key), [key, value]];
}

function rejects(entries: Entries, code: CairnErrorCode, mentions: RegExp): void {
  assert.throws(
    () => tinyTokenizer(dir, entries),
    (err: unknown) => isCairnError(err, code) && mentions.test(err.message),
  );
}

const SPM = spmEntries([['▁a', -1]]);
const BPE = bpeEntries([['ab']], ['a b']);

test('a missing or empty token list', () => {
  rejects(without(SPM, 'tokenizer.ggml.tokens'), 'GGUF_MALFORMED', /tokenizer\.ggml\.tokens.*missing/);
  rejects(replaced(SPM, 'tokenizer.ggml.tokens', gv.strs([])), 'GGUF_MALFORMED', /empty/);
  rejects(replaced(SPM, 'tokenizer.ggml.tokens', gv.i32s([1, 2])), 'GGUF_MALFORMED', /tokenizer\.ggml\.tokens/);
});

test('a missing tokenizer model', () => {
  rejects(without(SPM, 'tokenizer.ggml.model'), 'GGUF_MALFORMED', /tokenizer\.ggml\.model/);
});

test('token_type and scores arrays of the wrong length or type', () => {
  rejects(replaced(SPM, 'tokenizer.ggml.token_type', gv.i32s([2, 3, 3])), 'GGUF_MALFORMED', /token_type.*3 entries for 4 tokens/);
  rejects(replaced(SPM, 'tokenizer.ggml.token_type', gv.f32s([1, 1, 1, 1])), 'GGUF_MALFORMED', /token_type.*integers/);
  rejects(replaced(SPM, 'tokenizer.ggml.scores', gv.f32s([0, 0, 0, 0, 0])), 'GGUF_MALFORMED', /scores.*5 entries for 4 tokens/);
  rejects(replaced(SPM, 'tokenizer.ggml.scores', gv.strs(['0', '0', '0', '0'])), 'GGUF_MALFORMED', /scores/);
});

test('merges that refer to unknown tokens, malformed merges, missing merges', () => {
  rejects(replaced(BPE, 'tokenizer.ggml.merges', gv.strs(['a b', 'ab zz'])), 'GGUF_MALFORMED', /merge #1 "ab zz".*"zz"/);
  rejects(replaced(BPE, 'tokenizer.ggml.merges', gv.strs(['ab'])), 'GGUF_MALFORMED', /merge #0/);
  rejects(without(BPE, 'tokenizer.ggml.merges'), 'GGUF_MALFORMED', /merges.*missing/);
});

test('a token listed twice', () => {
  rejects(replaced(SPM, 'tokenizer.ggml.tokens', gv.strs(['<unk>', '<s>', '</s>', '<s>'])), 'GGUF_MALFORMED', /"<s>" appears twice/);
});

test('add_bos_token without a BOS token', () => {
  // Two tokens: BPE's default BOS id (11, as in llama.cpp) is out of range, so there is no BOS.
  const tiny: Entries = [
    ['tokenizer.ggml.model', gv.str('gpt2')],
    ['tokenizer.ggml.pre', gv.str('gpt-2')],
    ['tokenizer.ggml.tokens', gv.strs(['a', 'b'])],
    ['tokenizer.ggml.merges', gv.strs([])],
    ['tokenizer.ggml.add_bos_token', gv.bool(true)],
  ];
  rejects(tiny, 'GGUF_MALFORMED', /add_bos_token.*bos_token_id/);
  // With 258 tokens the default BOS id exists and the flag is accepted.
  assert.ok(tinyTokenizer(dir, replaced(BPE, 'tokenizer.ggml.add_bos_token', gv.bool(true))).addBos);
});

test('tokenizer models and pre-tokenizers we do not implement', () => {
  for (const model of ['t5', 'rwkv', 'plamo2']) {
    rejects(replaced(SPM, 'tokenizer.ggml.model', gv.str(model)), 'TOKENIZER_UNSUPPORTED', /not supported/);
  }
  rejects(replaced(SPM, 'tokenizer.ggml.model', gv.str('mystery')), 'TOKENIZER_UNSUPPORTED', /unknown tokenizer model "mystery"/);
  rejects(replaced(BPE, 'tokenizer.ggml.pre', gv.str('kimi-k2')), 'TOKENIZER_UNSUPPORTED', /pre-tokenizer "kimi-k2"/);
});

test('bad input to encode and decode is a clear error', () => {
  const tok = tinyTokenizer(dir, SPM);
  assert.throws(() => tok.encode(42 as unknown as string), (e: unknown) => isCairnError(e, 'BAD_ARGUMENT'));
  assert.throws(() => tok.decode([3, 4]), (e: unknown) => isCairnError(e, 'BAD_ARGUMENT') && /4 is not in the vocabulary/.test(e.message));
  assert.throws(() => tok.decode([-1]), (e: unknown) => isCairnError(e, 'BAD_ARGUMENT'));
  assert.throws(() => tok.decode([1.5]), (e: unknown) => isCairnError(e, 'BAD_ARGUMENT'));
  assert.throws(() => tok.tokenText(99), (e: unknown) => isCairnError(e, 'BAD_ARGUMENT'));
  assert.throws(() => tok.streamDecoder().push(99), (e: unknown) => isCairnError(e, 'BAD_ARGUMENT'));
});

test('lone surrogates in the input are read as U+FFFD, as their UTF-8 encoding is', () => {
  const tok = tinyTokenizer(dir, spmEntries([['▁', -1], ['\ufffd', -1]]));
  assert.deepEqual(tok.encode('\ud800', { addSpecial: false }), tok.encode('\ufffd', { addSpecial: false }));
});

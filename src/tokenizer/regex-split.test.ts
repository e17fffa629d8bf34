/**
 * Pre-tokenizer splitting: the hand-written GPT-2 / Llama 3 scanners and the collapsed-category
 * regex path must cut text exactly where a regex engine cuts it with the same pattern (with
 * llama.cpp's White_Space set for \s), including on whitespace runs, contractions, marks and
 * astral characters; plus the llama.cpp quirks we keep on purpose.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from '../util/prng.js';
import { knownPreTokenizers, preTokenizerSpec } from './pre-tokenizers.js';
import { compileSplitRegex, regexSplit } from './regex-split.js';

// llama.cpp's White_Space set, written out for the reference regexes.
const WS = '\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

/** Splits with a JavaScript regex the way llama.cpp splits: matches and the gaps between them. */
function referenceSplit(re: RegExp, text: string): string[] {
  const out: string[] = [];
  let prev = 0;
  for (const m of text.matchAll(re)) {
    if (m[0] === '') continue;
    if (m.index > prev) out.push(text.slice(prev, m.index));
    out.push(m[0]);
    prev = m.index + m[0].length;
  }
  if (prev < text.length) out.push(text.slice(prev));
  return out;
}

const GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const GPT2_REF = new RegExp(`'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])`, 'gu');

const CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
const LLAMA3_REF = new RegExp(
  `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*|[${WS}]*[\\r\\n]+|[${WS}]+(?![^${WS}])|[${WS}]+`,
  'gu',
);
const QWEN2_REF = new RegExp(
  `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*|[${WS}]*[\\r\\n]+|[${WS}]+(?![^${WS}])|[${WS}]+`,
  'gu',
);

// Pieces chosen to hit every branch: letters of several scripts, digits (ASCII and not), marks,
// contractions in both cases, every kind of whitespace, CR/LF, punctuation, emoji, controls.
const ALPHABET = [
  'a', 'Z', 'é', 'ж', '中', 'ß', '😀', '🦙', '1', '23', '٣', '½', '\u0301', '\u200d', '\ufeff', '\u0000',
  ' ', ' ', '  ', '\t', '\n', '\r', '\r\n', '\u00a0', '\u0085', '\u3000', '\u2028',
  "'", "'s", "'S", "'re", "'LL", "'d", "'x", 't', 'm', 'e', 'v', 'l',
  '!', '?', '.', ',', '~', '$', '(', '-', '_', '`', '…', '«', '+',
];

function randomText(rng: Prng): string {
  const n = 1 + Math.floor(rng.next() * 24);
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(rng.next() * ALPHABET.length)];
  return s;
}

function compareOnRandomText(exprs: string[], ref: RegExp, seed: number): void {
  const rng = new Prng(seed);
  for (let i = 0; i < 3000; i++) {
    const text = randomText(rng);
    assert.deepEqual(regexSplit(text, exprs), referenceSplit(ref, text), `split of ${JSON.stringify(text)}`);
  }
}

test('the GPT-2 scanner cuts where the GPT-2 regex does', () => {
  compareOnRandomText([GPT2], GPT2_REF, 1);
});

test('the Llama 3 scanner cuts where the Llama 3 regex does', () => {
  compareOnRandomText(preTokenizerSpec('llama-bpe')!.regexes as string[], LLAMA3_REF, 2);
  const original = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  compareOnRandomText([original], LLAMA3_REF, 3);
});

test('the collapsed-category regex path (Qwen2) cuts where the regex does on real code points', () => {
  compareOnRandomText(preTokenizerSpec('qwen2')!.regexes as string[], QWEN2_REF, 4);
});

test('known cuts', () => {
  assert.deepEqual(regexSplit("Hello world  it's 12345", [GPT2]), ['Hello', ' world', ' ', ' it', "'s", ' 12345']);
  const llama3 = preTokenizerSpec('llama-bpe')!.regexes;
  assert.deepEqual(regexSplit("I'VE 12345\n\n  x", llama3), ['I', "'VE", ' ', '123', '45', '\n\n', ' ', ' x']);
  assert.deepEqual(regexSplit('', llama3), []);
});

test('qwen35 keeps combining marks with their letters, qwen2 does not', () => {
  const text = 'e\u0301x';
  assert.deepEqual(regexSplit(text, preTokenizerSpec('qwen2')!.regexes), ['e', '\u0301x']);
  assert.deepEqual(regexSplit(text, preTokenizerSpec('qwen35')!.regexes), [text]);
});

test("llama.cpp's collapsed classes: ASCII '~' is neither punctuation nor symbol", () => {
  // llama.cpp maps \p{S} to [$+<=>^`|] for ASCII, so '~' stays in the unmatched gap.
  assert.deepEqual(regexSplit('a$$b', ['[\\p{P}\\p{S}]+']), ['a', '$$', 'b']);
  assert.deepEqual(regexSplit('a~~b', ['[\\p{P}\\p{S}]+']), ['a~~b']);
  assert.deepEqual(regexSplit('a«»b', ['[\\p{P}\\p{S}]+']), ['a', '«»', 'b']);
});

test('regexes without categories see non-ASCII whitespace as \\v and astral characters whole', () => {
  assert.deepEqual(regexSplit('a\u3000b', ['\\s+']), ['a', '\u3000', 'b']);
  assert.deepEqual(regexSplit('a\ufeffb', ['\\s+']), ['a\ufeffb'], 'U+FEFF is not White_Space');
  assert.deepEqual(regexSplit('😀😀x', ['[😀]']), ['😀', '😀', 'x']);
  assert.deepEqual(regexSplit('ab  ', ['\\s+$']), ['ab', '  ']);
});

test('every known pre-tokenizer compiles and its pieces put the text back together', () => {
  const text = "Hello, y'all! 3333 héllo\u0301 日本語 🦙🦙\n\n\tx\u00a0~~ I'M";
  for (const name of knownPreTokenizers()) {
    const spec = preTokenizerSpec(name)!;
    for (const r of spec.regexes) compileSplitRegex(r);
    const pieces = regexSplit(text, spec.regexes);
    assert.equal(pieces.join(''), text, name);
    assert.ok(pieces.every((p) => p.length > 0), name);
  }
});

test('deepseek-llm: a long whitespace run before the end of its piece is cut as \\s+$ cuts it, in one pass', () => {
  const regexes = preTokenizerSpec('deepseek-llm')!.regexes;
  // With \s+$ itself every space of such a run starts a match that backtracks over the rest of it.
  assert.ok(!regexes.includes('\\s+$'), 'the trailing-whitespace pattern starts only at the first space of a run');
  const trailing = regexes.find((r) => r.endsWith('$'))!;
  for (const text of ['ab  ', '  ', 'a', ' a ', 'a  中', ' \t\u3000x \u3000', '\n\n']) {
    assert.deepEqual(regexSplit(text, [trailing]), regexSplit(text, ['\\s+$']), JSON.stringify(text));
  }
  const run = ' '.repeat(100_000);
  assert.deepEqual(regexSplit(`${run}中`, regexes), [run, '中']);
});

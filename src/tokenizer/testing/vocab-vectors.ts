/**
 * Reads llama.cpp's tokenizer test vectors: `X.gguf.inp` holds the input strings separated by
 * "\n__ggml_vocab_test__\n", `X.gguf.out` one line of space-separated ids per string (tokenized
 * without BOS and without parsing special tokens). Split the way llama.cpp's test-tokenizer-0 does.
 */
import { readFileSync } from 'node:fs';
import type { Tokenizer } from '../tokenizer.js';

/** One input string and the ids llama.cpp gives for it. */
export interface VocabVector {
  readonly text: string;
  readonly ids: readonly number[];
}

const SEPARATOR = '\n__ggml_vocab_test__\n';

/** The vectors of `<base>.inp` / `<base>.out`. */
export function readVocabVectors(base: string): VocabVector[] {
  const raw = readFileSync(`${base}.inp`, 'utf8');
  const texts: string[] = [];
  for (let pos = 0; pos < raw.length; ) {
    const next = raw.indexOf(SEPARATOR, pos);
    if (next === -1) {
      texts.push(raw.slice(pos));
      break;
    }
    texts.push(raw.slice(pos, next));
    pos = next + SEPARATOR.length;
  }
  const lines = readFileSync(`${base}.out`, 'utf8').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  if (lines.length !== texts.length) throw new Error(`${base}: ${texts.length} inputs but ${lines.length} output lines`);
  return texts.map((text, i) => {
    const line = lines[i].trim();
    return { text, ids: line === '' ? [] : line.split(' ').map(Number) };
  });
}

/**
 * Whether llama.cpp's decode gives `text` back from its ids: WordPiece lowercases and splits, and
 * the clean-up some BPE vocabularies run removes spaces before punctuation and contractions.
 */
export function decodeRoundTrips(tok: Tokenizer, text: string): boolean {
  if (tok.vocab.type === 'wpm') return false;
  return !(tok.vocab.flags.cleanSpaces && / [?!.,']/.test(text));
}

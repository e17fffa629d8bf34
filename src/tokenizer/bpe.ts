/**
 * Byte-level BPE (llama.cpp's "BPE" vocab type, GPT-2 style): the pre-tokenizer cuts text into
 * words, each word's UTF-8 bytes are spelled in the byte-level alphabet, and adjacent pieces are
 * merged lowest merge rank first (ties: leftmost pair). Words repeat a lot in real text, so the
 * ids of each distinct word are cached.
 */
import { bytesToByteLevel } from './byte-level.js';
import { Heap } from './heap.js';
import { regexSplit } from './regex-split.js';
import { utf8 } from './unicode.js';
import type { Vocab } from './vocab.js';

interface Bigram {
  left: number;
  right: number;
  /** The joined text when queued; a pair whose symbols changed since no longer matches it. */
  text: string;
  rank: number;
}

const CACHE_LIMIT = 100_000;
/** Longer words are not cached: they seldom repeat, and the cache's memory stays bounded whatever the input. */
const CACHED_WORD_MAX = 64;

/** A BPE tokenizer bound to one vocabulary. */
export class BpeTokenizer {
  private readonly cache = new Map<string, readonly number[]>();
  private readonly regexes: readonly string[];

  constructor(private readonly vocab: Vocab) {
    if (!vocab.preSpec) throw new TypeError('a BPE vocabulary needs a pre-tokenizer');
    this.regexes = vocab.preSpec.regexes;
  }

  /** Tokenizes raw text (no special tokens in it) and appends the ids to `out`. */
  tokenize(text: string, out: number[]): void {
    for (const word of regexSplit(text, this.regexes)) {
      // Keyed by the word itself: a word seen before skips its UTF-8 and byte-level spelling too.
      let ids = this.cache.get(word);
      if (ids === undefined) {
        ids = this.tokenizeWord(bytesToByteLevel(utf8(word)));
        if (word.length <= CACHED_WORD_MAX) {
          if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
          this.cache.set(word, ids);
        }
      }
      for (const id of ids) out.push(id);
    }
  }

  /** Merges one byte-level encoded word. */
  tokenizeWord(word: string): number[] {
    const vocab = this.vocab;
    if (vocab.flags.ignoreMerges) {
      const whole = vocab.idOf(word);
      if (whole !== undefined) return [whole];
    }
    const sym: string[] = Array.from(word);
    const n = sym.length;
    if (n === 0) return [];
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }

    const queue = new Heap<Bigram>((a, b) => a.rank < b.rank || (a.rank === b.rank && a.left < b.left));
    const tryAdd = (left: number, right: number): void => {
      if (left === -1 || right === -1) return;
      const rank = vocab.mergeRank(sym[left], sym[right]);
      if (rank < 0) return;
      queue.push({ left, right, text: sym[left] + sym[right], rank });
    };

    for (let i = 1; i < n; i++) tryAdd(i - 1, i);
    for (let b = queue.pop(); b !== undefined; b = queue.pop()) {
      const l = sym[b.left];
      const r = sym[b.right];
      if (l === '' || r === '' || l + r !== b.text) continue;
      sym[b.left] = b.text;
      sym[b.right] = '';
      next[b.left] = next[b.right];
      if (next[b.right] >= 0) prev[next[b.right]] = b.left;
      tryAdd(prev[b.left], b.left);
      tryAdd(b.left, next[b.left]);
    }

    const ids: number[] = [];
    for (let i = 0; i !== -1; i = next[i]) {
      const id = vocab.idOf(sym[i]);
      if (id !== undefined) {
        ids.push(id);
        continue;
      }
      // Like llama.cpp: look the piece up byte by byte; only ASCII bytes can name a token.
      for (const byte of utf8(sym[i])) {
        const t = byte < 0x80 ? vocab.idOf(String.fromCharCode(byte)) : undefined;
        if (t !== undefined) ids.push(t);
      }
    }
    return ids;
  }
}

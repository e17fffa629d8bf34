/**
 * SentencePiece-style BPE (llama.cpp's "SPM" vocab type): start from single code points and keep
 * merging the adjacent pair whose joined text is the highest-scoring token (ties: leftmost pair).
 * Pieces that end up as no token are spelled with byte tokens <0xNN>.
 */
import { utf8 } from './unicode.js';
import type { Vocab } from './vocab.js';

const HEX = '0123456789ABCDEF';

/** The token for one byte: <0xNN>, else the byte as a one-character token. */
export function byteToken(vocab: Vocab, byte: number): number | undefined {
  const hex = `<0x${HEX[byte >> 4]}${HEX[byte & 15]}>`;
  return vocab.idOf(hex) ?? vocab.idOf(String.fromCharCode(byte));
}

/**
 * Spells a piece that is not a token with byte tokens. A vocabulary without byte tokens makes
 * llama.cpp abort here; we emit the unknown token once for the piece instead (SentencePiece's
 * behaviour), or nothing when there is none.
 */
function spellWithBytes(vocab: Vocab, piece: string, out: number[]): void {
  const ids: number[] = [];
  for (const byte of utf8(piece)) {
    const t = byteToken(vocab, byte);
    if (t === undefined) {
      if (vocab.special.unk !== undefined) out.push(vocab.special.unk);
      return;
    }
    ids.push(t);
  }
  out.push(...ids);
}

/** Whether candidate (score a, left a) merges before (score b, left b): higher score, then leftmost. */
function ahead(scoreA: number, leftA: number, scoreB: number, leftB: number): boolean {
  return scoreA > scoreB || (scoreA === scoreB && leftA < leftB);
}

/**
 * The merge candidates, best first (highest score, then leftmost). A long prompt queues a few
 * candidates per character: objects for them made most of the time garbage collection, and
 * parallel arrays a cache miss per field, so an entry is four 32-bit words in one buffer
 * (score as f32, as the vocabulary stores it; left symbol; joined length; joined token).
 */
class BigramQueue {
  private words: Int32Array;
  private scores: Float32Array;
  private n = 0;

  constructor(capacity: number) {
    this.words = new Int32Array(4 * capacity);
    this.scores = new Float32Array(this.words.buffer);
  }

  /** Whether entry i comes strictly before a candidate (score, left). */
  private before(i: number, score: number, left: number): boolean {
    return ahead(this.scores[4 * i], this.words[4 * i + 1], score, left);
  }

  private move(to: number, from: number): void {
    this.words.copyWithin(4 * to, 4 * from, 4 * from + 4);
  }

  private put(i: number, score: number, left: number, size: number, token: number): void {
    this.scores[4 * i] = score;
    this.words[4 * i + 1] = left;
    this.words[4 * i + 2] = size;
    this.words[4 * i + 3] = token;
  }

  push(score: number, left: number, size: number, token: number): void {
    if (4 * this.n === this.words.length) this.grow();
    let i = this.n++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!ahead(score, left, this.scores[4 * parent], this.words[4 * parent + 1])) break;
      this.move(i, parent);
      i = parent;
    }
    this.put(i, score, left, size, token);
  }

  /** Removes the first entry into `top` (left, size, token); false when empty. */
  pop(top: Int32Array): boolean {
    if (this.n === 0) return false;
    const w = this.words;
    top[0] = w[1];
    top[1] = w[2];
    top[2] = w[3];
    const last = --this.n;
    if (last > 0) {
      const score = this.scores[4 * last];
      const left = w[4 * last + 1];
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= last) break;
        const r = l + 1;
        const child = r < last && this.before(r, this.scores[4 * l], w[4 * l + 1]) ? r : l;
        if (!this.before(child, score, left)) break;
        this.move(i, child);
        i = child;
      }
      this.move(i, last);
    }
    return true;
  }

  private grow(): void {
    const words = new Int32Array(2 * this.words.length);
    words.set(this.words);
    this.words = words;
    this.scores = new Float32Array(words.buffer);
  }
}

/** Code points that occur in some token of two or more: only these can take part in a merge. */
interface JoinableChars {
  readonly bmp: Uint8Array;
  readonly astral: ReadonlySet<number>;
}

const joinableByVocab = new WeakMap<Vocab, JoinableChars>();

function joinableChars(vocab: Vocab): JoinableChars {
  let found = joinableByVocab.get(vocab);
  if (found) return found;
  const bmp = new Uint8Array(0x10000);
  const astral = new Set<number>();
  for (const t of vocab.texts) {
    // (A lone astral character counts too: a few cuts fewer, never a wrong one.)
    if (t.length < 2) continue;
    for (let i = 0; i < t.length; i++) {
      const c = t.codePointAt(i)!;
      if (c > 0xffff) {
        astral.add(c);
        i++;
      } else {
        bmp[c] = 1;
      }
    }
  }
  found = { bmp, astral };
  joinableByVocab.set(vocab, found);
  return found;
}

/**
 * Tokenizes text that is already escaped (spaces as U+2581) and appends the ids to `out`.
 *
 * A character that occurs in no token of two or more characters never merges, so the stretches
 * between such characters (newlines, in vocabularies that spell them with byte tokens) merge on
 * their own: the same merges as over the whole text, with a queue that stays in the cache.
 */
export function spmTokenize(vocab: Vocab, text: string, out: number[]): void {
  // One symbol per code point; merged symbols grow to the right and their right partner is emptied.
  const start = new Int32Array(text.length);
  let n = 0;
  for (let i = 0; i < text.length; ) {
    start[n++] = i;
    i += text.codePointAt(i)! > 0xffff ? 2 : 1;
  }
  if (n === 0) return;
  const len = new Int32Array(n);
  const prev = new Int32Array(n);
  const next = new Int32Array(n);
  // Each symbol's token, or -1 while its text is no token (only a lone character can be one).
  const token = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    len[i] = (i + 1 < n ? start[i + 1] : text.length) - start[i];
    token[i] = vocab.idOf(text.slice(start[i], start[i] + len[i])) ?? -1;
  }

  // What two tokens join into (-1: no token), by pair: a long text asks for the same pairs over
  // and over, and a number key spares building and hashing the joined string each time.
  const joined = new Map<number, number>();
  const nVocab = vocab.size;
  const { texts, scores } = vocab;
  const queue = new BigramQueue(64);
  const tryAdd = (left: number, right: number): void => {
    if (left === -1 || right === -1) return;
    const size = len[left] + len[right];
    const a = token[left];
    const b = token[right];
    let id: number;
    if (a >= 0 && b >= 0) {
      const key = a * nVocab + b;
      const known = joined.get(key);
      if (known === undefined) {
        id = vocab.idOf(texts[a] + texts[b]) ?? -1;
        joined.set(key, id);
      } else {
        id = known;
      }
    } else {
      id = vocab.idOf(text.slice(start[left], start[left] + size)) ?? -1;
    }
    if (id >= 0) queue.push(scores[id], left, size, id);
  };

  const top = new Int32Array(3);
  const emit = (i: number): void => {
    if (token[i] >= 0) out.push(token[i]);
    else spellWithBytes(vocab, text.slice(start[i], start[i] + len[i]), out);
  };

  /** Merges symbols [from, to) among themselves and emits what they become. */
  const mergeStretch = (from: number, to: number): void => {
    for (let i = from; i < to; i++) {
      prev[i] = i - 1;
      next[i] = i + 1;
    }
    prev[from] = -1;
    next[to - 1] = -1;
    for (let i = from + 1; i < to; i++) tryAdd(i - 1, i);
    while (queue.pop(top)) {
      const left = top[0];
      const right = next[left];
      // Skip pairs whose symbols changed since they were queued: a symbol only grows to the
      // right, so the same start and joined length mean the same text.
      if (right === -1 || len[left] === 0 || len[right] === 0 || len[left] + len[right] !== top[1]) continue;
      len[left] += len[right];
      len[right] = 0;
      token[left] = top[2];
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      tryAdd(prev[left], left);
      tryAdd(left, next[left]);
    }
    for (let i = from; i !== -1; i = next[i]) emit(i);
  };

  const { bmp, astral } = joinableChars(vocab);
  let from = 0;
  for (let i = 0; i < n; i++) {
    const c = text.codePointAt(start[i])!;
    if (c > 0xffff ? astral.has(c) : bmp[c] === 1) continue;
    if (i > from) mergeStretch(from, i);
    emit(i);
    from = i + 1;
  }
  if (n > from) mergeStretch(from, n);
}

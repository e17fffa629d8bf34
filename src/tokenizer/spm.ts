/**
 * SentencePiece-style BPE (llama.cpp's "SPM" vocab type): start from single code points and keep
 * merging the adjacent pair whose joined text is the highest-scoring token (ties: leftmost pair).
 * Pieces that end up as no token are spelled with byte tokens <0xNN>.
 */
import { Heap } from './heap.js';
import { utf8 } from './unicode.js';
import type { Vocab } from './vocab.js';

interface Bigram {
  left: number;
  right: number;
  score: number;
  /** Length (in string units) of the joined text when the pair was queued. */
  size: number;
}

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

/**
 * Tokenizes text that is already escaped (spaces as U+2581) and appends the ids to `out`.
 */
export function spmTokenize(vocab: Vocab, text: string, out: number[]): void {
  // One symbol per code point; merged symbols grow to the right and their right partner is emptied.
  const start: number[] = [];
  for (let i = 0; i < text.length; ) {
    start.push(i);
    i += text.codePointAt(i)! > 0xffff ? 2 : 1;
  }
  const n = start.length;
  if (n === 0) return;
  const len = new Int32Array(n);
  const prev = new Int32Array(n);
  const next = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    len[i] = (i + 1 < n ? start[i + 1] : text.length) - start[i];
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }

  const queue = new Heap<Bigram>((a, b) => a.score > b.score || (a.score === b.score && a.left < b.left));
  const tryAdd = (left: number, right: number): void => {
    if (left === -1 || right === -1) return;
    const size = len[left] + len[right];
    const id = vocab.idOf(text.slice(start[left], start[left] + size));
    if (id === undefined) return;
    queue.push({ left, right, score: vocab.scores[id], size });
  };

  for (let i = 1; i < n; i++) tryAdd(i - 1, i);
  for (let b = queue.pop(); b !== undefined; b = queue.pop()) {
    // Skip pairs whose symbols changed since they were queued.
    if (len[b.left] === 0 || len[b.right] === 0 || len[b.left] + len[b.right] !== b.size) continue;
    len[b.left] += len[b.right];
    len[b.right] = 0;
    next[b.left] = next[b.right];
    if (next[b.right] >= 0) prev[next[b.right]] = b.left;
    tryAdd(prev[b.left], b.left);
    tryAdd(b.left, next[b.left]);
  }

  for (let i = 0; i !== -1; i = next[i]) {
    const piece = text.slice(start[i], start[i] + len[i]);
    const id = vocab.idOf(piece);
    if (id !== undefined) {
      out.push(id);
      continue;
    }
    spellWithBytes(vocab, piece, out);
  }
}

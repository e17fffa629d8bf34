/**
 * Token ids back to bytes, as llama.cpp's token_to_piece and detokenize do. A piece is bytes, not
 * text: byte tokens and byte-level BPE tokens can hold part of a UTF-8 character, which only the
 * concatenation completes.
 */
import { CHAR_TO_BYTE } from './byte-level.js';
import { TokenAttr } from './token-attr.js';
import { utf8 } from './unicode.js';
import type { Vocab } from './vocab.js';

const EMPTY = new Uint8Array(0);
const RENDERED_AS_TEXT = TokenAttr.UNKNOWN | TokenAttr.CONTROL | TokenAttr.USER_DEFINED;

function byteTokenValue(text: string): Uint8Array {
  // "<0xNN>": llama.cpp reads the two hex digits at offset 3.
  return Uint8Array.of(parseInt(text.slice(3, 5), 16) & 0xff);
}

/** Byte-level alphabet back to bytes; characters outside it are kept as a visible marker. */
function byteLevelToBytes(text: string): Uint8Array {
  const bytes: number[] = [];
  for (const ch of text) {
    const b = CHAR_TO_BYTE.get(ch.codePointAt(0)!);
    if (b !== undefined) {
      bytes.push(b);
      continue;
    }
    const hex = Array.from(utf8(ch), (x) => x.toString(16).padStart(2, '0')).join('');
    bytes.push(...utf8(`[UNK_BYTE_0x${hex}${text}]`));
  }
  return Uint8Array.from(bytes);
}

/** The bytes of one token as rendered with special tokens shown. */
function renderPiece(vocab: Vocab, id: number): Uint8Array {
  const attr = vocab.attrs[id];
  const text = vocab.texts[id];
  if (attr & RENDERED_AS_TEXT) return utf8(text);
  if (attr & TokenAttr.NORMAL) {
    if (vocab.type === 'bpe' && !vocab.flags.escapeWhitespaces) return byteLevelToBytes(text);
    return utf8(text.replaceAll('\u2581', ' '));
  }
  if (attr & TokenAttr.BYTE) return byteTokenValue(text);
  return EMPTY;
}

/** Caches the rendered bytes of each token. */
export class PieceTable {
  private readonly pieces: (Uint8Array | undefined)[];

  constructor(private readonly vocab: Vocab) {
    this.pieces = new Array(vocab.size);
  }

  /** The bytes of a token; control and unknown tokens are empty unless `special`. */
  piece(id: number, special: boolean): Uint8Array {
    if (!special && this.vocab.hasAttr(id, TokenAttr.UNKNOWN | TokenAttr.CONTROL)) return EMPTY;
    let p = this.pieces[id];
    if (p === undefined) {
      p = renderPiece(this.vocab, id);
      this.pieces[id] = p;
    }
    return p;
  }
}

const SPACE = 0x20;
const APOS = 0x27;

// The three clean-up passes compact the buffer in place, exactly like llama.cpp: each reads its
// neighbours from the same buffer it writes, which matters for runs like " ' ' ".

/** Removes spaces before ? ! . , ; returns the new length. */
function cleanPunctuation(t: Uint8Array, n: number): number {
  let total = n > 0 ? 1 : 0;
  for (let i = 1; i < n; i++) {
    const x = t[i];
    if (t[i - 1] === SPACE && (x === 0x3f || x === 0x21 || x === 0x2e || x === 0x2c)) total--;
    t[total++] = x;
  }
  return total;
}

/** " ' " becomes "'". */
function cleanLoneApostrophe(t: Uint8Array, n: number): number {
  let total = n > 0 ? 1 : 0;
  for (let i = 1; i < n; i++) {
    const x = t[i];
    if (x === APOS && i + 1 < n && t[i - 1] === SPACE && t[i + 1] === SPACE) {
      total--;
      t[++i] = 0;
    }
    t[total++] = x;
  }
  return total;
}

/** " 's", " 'm", " 're", " 've" lose their space. */
function cleanContractions(t: Uint8Array, n: number): number {
  let total = n > 0 ? 1 : 0;
  for (let i = 1; i < n; i++) {
    const x = t[i];
    if (t[i - 1] === SPACE && x === APOS && i + 1 < n) {
      const x1 = t[i + 1];
      if (x1 === 0x73 || x1 === 0x6d) total--; // 's 'm
      else if (i + 2 < n && (x1 === 0x72 || x1 === 0x76) && t[i + 2] === 0x65) total--; // 're 've
    }
    t[total++] = x;
  }
  return total;
}

/** llama.cpp's clean_up_tokenization_spaces, on bytes (returns a new array). */
export function cleanSpaces(bytes: Uint8Array): Uint8Array {
  const t = Uint8Array.from(bytes);
  let n = cleanPunctuation(t, t.length);
  n = cleanLoneApostrophe(t, n);
  n = cleanContractions(t, n);
  return t.subarray(0, n);
}

/** Concatenates byte arrays. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Drops one leading space of the first piece (llama.cpp's lstrip for the first token). */
export function stripOneLeadingSpace(piece: Uint8Array): Uint8Array {
  return piece.length > 0 && piece[0] === SPACE ? piece.subarray(1) : piece;
}

/**
 * Detokenizes one token at a time, for streaming generated text. It returns only complete UTF-8
 * characters (a character whose bytes span several tokens is held until its last byte arrives).
 * By default the ids continue earlier text, as llama-server streams them: no leading space is
 * removed, except after a BOS that starts the stream (SentencePiece's space prefix). With
 * `sequenceStart` the ids are a whole sequence and the concatenated output equals
 * Tokenizer.decode of all of them. Where the vocabulary cleans spaces on decode (" ." to "."),
 * text is held back until no later token can change it.
 */
import { cleanSpaces, concatBytes, stripOneLeadingSpace } from './detokenize.js';
import type { Tokenizer } from './tokenizer.js';

/** Options of a StreamingDecoder. */
export interface StreamingDecoderOptions {
  /** Render control tokens as nothing (default true), as Tokenizer.decode's option. */
  skipSpecial?: boolean;
  /** The ids start a sequence: the first token loses its space prefix as in decode(). Default false. */
  sequenceStart?: boolean;
}

const SPACE = 0x20;
const APOS = 0x27;

/** Bytes the space clean-up looks at; a cut with none of them nearby cannot change its result. */
function touchesCleanup(b: number): boolean {
  return b === SPACE || b === APOS || b === 0x3f || b === 0x21 || b === 0x2e || b === 0x2c;
}

/**
 * The largest p (0 < p < length) where the bytes can be split and cleaned separately: p starts a
 * UTF-8 character and none of bytes p-3..p take part in a clean-up rule (the longest rule,
 * " 're", spans four bytes). Returns 0 when there is none.
 */
function lastSafeCut(b: Uint8Array): number {
  for (let p = b.length - 1; p > 0; p--) {
    if ((b[p] & 0xc0) === 0x80) continue;
    let safe = true;
    for (let k = Math.max(0, p - 3); k <= p; k++) {
      if (touchesCleanup(b[k])) {
        safe = false;
        break;
      }
    }
    if (safe) return p;
  }
  return 0;
}

/** Turns a stream of token ids into a stream of text. */
export class StreamingDecoder {
  private readonly utf8 = new TextDecoder('utf-8', { fatal: false });
  private readonly skipSpecial: boolean;
  private readonly sequenceStart: boolean;
  private first = true;
  private removeSpace = false;
  private pending: Uint8Array = new Uint8Array(0);

  constructor(
    private readonly tokenizer: Tokenizer,
    options: StreamingDecoderOptions = {},
  ) {
    this.skipSpecial = options.skipSpecial ?? true;
    this.sequenceStart = options.sequenceStart ?? false;
    this.reset();
  }

  private reset(): void {
    this.first = true;
    this.removeSpace = this.sequenceStart && this.tokenizer.vocab.flags.addSpacePrefix;
    this.pending = new Uint8Array(0);
  }

  /** Adds one token; returns the text that became complete (often empty). */
  push(id: number): string {
    this.tokenizer.checkId(id);
    const { flags, special } = this.tokenizer.vocab;
    let piece: Uint8Array;
    if (this.first && id === special.bos) {
      // As decode(): a skipped leading BOS is dropped, and the token after it loses its space prefix.
      piece = this.skipSpecial && flags.addBos ? new Uint8Array(0) : this.tokenizer.tokenPiece(id, !this.skipSpecial);
      this.removeSpace = flags.addSpacePrefix;
    } else {
      piece = this.tokenizer.tokenPiece(id, !this.skipSpecial);
      if (this.removeSpace) piece = stripOneLeadingSpace(piece);
      this.removeSpace = false;
    }
    this.first = false;
    if (!flags.cleanSpaces) return this.utf8.decode(piece, { stream: true });
    this.pending = concatBytes([this.pending, piece]);
    const cut = lastSafeCut(this.pending);
    if (cut === 0) return '';
    const ready = cleanSpaces(this.pending.subarray(0, cut));
    this.pending = this.pending.slice(cut);
    return this.utf8.decode(ready, { stream: true });
  }

  /** Ends the stream: returns the held text (an unfinished character becomes U+FFFD) and starts over. */
  flush(): string {
    const rest = this.tokenizer.vocab.flags.cleanSpaces ? cleanSpaces(this.pending) : this.pending;
    this.reset();
    return this.utf8.decode(rest);
  }
}

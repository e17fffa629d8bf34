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

/**
 * The largest p (0 < p <= length) where the bytes can be split and the two sides cleaned
 * separately, or 0. Every clean-up rule looks at a window of at most four bytes that starts
 * with a space (" ?", " ' ", " 're"), and the clean-up only ever removes spaces; so when none of
 * the three bytes before p is a space, no window crosses p, and the bytes right after p are
 * never judged by what precedes them. Bytes before this buffer satisfy the same condition,
 * since the buffer starts at an earlier cut.
 */
function lastSafeCut(b: Uint8Array): number {
  for (let p = b.length; p > 0; p--) {
    if (b[p - 1] !== SPACE && (p < 2 || b[p - 2] !== SPACE) && (p < 3 || b[p - 3] !== SPACE)) return p;
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

/**
 * The cheap check before tokenizing: no token covers more bytes of text than the longest token of
 * the vocabulary spells, so a text longer than the context times that length cannot fit and is
 * refused without the (costly) tokenization of megabytes.
 */
import type { Tokenizer } from '../tokenizer/index.js';
import { CairnError } from '../util/errors.js';

/**
 * Most UTF-8 bytes of a text a prompt of `ctx` tokens can hold with this tokenizer, or undefined
 * where the bound does not hold: a WordPiece vocabulary maps a whole unknown word to one token.
 * Each token covers at most the bytes of its own spelling (in the vocabulary's form, where a space
 * is the 3-byte "▁" or "Ġ", never shorter than the text's form), and at least 4 (an unknown
 * character, or a byte-fallback byte).
 */
export function promptByteLimit(tokenizer: Tokenizer, ctx: number): number | undefined {
  if (tokenizer.vocab.type === 'wpm') return undefined;
  const encoder = new TextEncoder();
  let longest = 4;
  for (let id = 0; id < tokenizer.vocabSize; id++) {
    longest = Math.max(longest, encoder.encode(tokenizer.tokenText(id)).length, tokenizer.tokenPiece(id).length);
  }
  return ctx * longest;
}

/** Throws CONTEXT_FULL when `text` is longer than `limit` bytes (see promptByteLimit). */
export function checkPromptBytes(text: string, limit: number | undefined, ctx: number): void {
  if (limit === undefined || text.length <= limit / 3) return; // UTF-16 units: at most 3 bytes each
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > limit) {
    throw new CairnError(
      'CONTEXT_FULL',
      `the prompt is ${bytes} bytes of text, more than the ${ctx} tokens of the context can hold with this vocabulary (at most ${limit} bytes); shorten it or raise --ctx`,
    );
  }
}

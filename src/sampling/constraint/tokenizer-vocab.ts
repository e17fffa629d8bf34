/** The vocabulary of a cairn Tokenizer as a constraint needs it. */
import type { ConstraintVocab } from './types.js';

/** The parts of a Tokenizer a constraint reads. */
export interface PieceSource {
  readonly vocabSize: number;
  tokenPiece(id: number, special?: boolean): Uint8Array;
  isEog(id: number): boolean;
}

const adapters = new WeakMap<PieceSource, ConstraintVocab>();

/**
 * The tokenizer's vocabulary for constraints: control and unknown tokens contribute no bytes.
 * The same object is returned for the same tokenizer, so its trie is built only once.
 */
export function constraintVocab(tokenizer: PieceSource): ConstraintVocab {
  let vocab = adapters.get(tokenizer);
  if (!vocab) {
    vocab = {
      size: tokenizer.vocabSize,
      piece: (id) => tokenizer.tokenPiece(id, false),
      isEog: (id) => tokenizer.isEog(id),
    };
    adapters.set(tokenizer, vocab);
  }
  return vocab;
}

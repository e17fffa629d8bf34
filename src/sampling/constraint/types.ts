/**
 * The contract between the engine and a token constraint: the engine asks for a mask before each
 * sampling step and reports the token it chose.
 */

/** What a constraint needs of the vocabulary. */
export interface ConstraintVocab {
  readonly size: number;
  /** Bytes a token contributes to the output text (UTF-8; empty for control tokens). */
  piece(id: number): Uint8Array;
  /** End-of-generation ids (allowed only when the value is complete). */
  isEog(id: number): boolean;
}

/** A stateful filter over next tokens, advanced one chosen token at a time. */
export interface TokenConstraint {
  /** Sets to -Infinity the logits of tokens that cannot come next (EOG only once complete). */
  mask(logits: Float32Array): void;
  /** Advances the state with the chosen token; throws if the token was not allowed. */
  accept(id: number): void;
  /** True once the text so far is a complete value (generation should stop or emit EOG). */
  readonly complete: boolean;
}

/** A JSON Schema document: an object of keywords, or true (anything) / false (nothing). */
export type JsonSchema = boolean | { readonly [keyword: string]: unknown };

/**
 * Where speculative decoding's drafts come from. A draft is a guess at the next few tokens of a
 * sequence; the model checks all of them in one forward pass (one read of its weights) and keeps
 * the ones it would have produced itself, so a good guess yields several tokens per pass and a bad
 * one costs only the extra rows of that pass. Drafts are single tokens, not distributions: the
 * runner samples each checked row as plain decoding would and keeps a draft token only when the
 * sample equals it (runner.ts, OutputRequest.draft).
 */

/** One sequence asking for a draft. */
export interface DraftRequest {
  /** The engine's sequence id (a source may keep state per sequence). */
  readonly seq: number;
  /** Prompt and generated tokens so far; the draft continues it. */
  readonly history: readonly number[];
  /** Most tokens to propose. */
  readonly max: number;
}

/** Proposes drafts. */
export interface DraftSource {
  /** What it is, for reports (`lookup`, `draft model NAME`). */
  readonly name: string;
  /** A draft per request (each at most its max tokens, each a token id of the model; empty: none). */
  propose(requests: readonly DraftRequest[]): number[][] | Promise<number[][]>;
  /** The sequence ended or lost its state: forget what is held for it. */
  forget(seq: number): void;
}

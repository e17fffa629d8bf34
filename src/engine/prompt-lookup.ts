/**
 * Prompt lookup: drafts for speculative decoding taken from the sequence's own tokens. When the
 * last few tokens appeared before (an edit repeating the code it was given, a summary quoting its
 * text, a list that follows a pattern), what followed them then is a good guess for what follows
 * now. It needs no second model and costs a scan of the history per step.
 */
import type { DraftRequest, DraftSource } from './draft-source.js';

/** How prompt lookup matches. */
export interface PromptLookupOptions {
  /** Longest tail of the history that is looked for (default 3). */
  readonly ngramMax?: number;
  /** Shortest tail that still counts as a match (default 2: single tokens repeat by chance). */
  readonly ngramMin?: number;
  /** Most tokens of history scanned back from the end (default 65536: bounded time per step). */
  readonly window?: number;
}

/**
 * `max` tokens that followed the most recent earlier occurrence of the history's tail, the longest
 * tail first (ngramMax down to ngramMin tokens); empty when the tail never appeared before.
 */
export function lookupDraft(history: ArrayLike<number>, max: number, opts: PromptLookupOptions = {}): number[] {
  const len = history.length;
  const ngramMax = opts.ngramMax ?? 3;
  const ngramMin = Math.max(1, opts.ngramMin ?? 2);
  const lowest = Math.max(0, len - (opts.window ?? 65536));
  if (max <= 0) return [];
  for (let n = Math.min(ngramMax, len - 1); n >= ngramMin; n--) {
    const tail = len - n;
    // Most recent match first: nearer text is likelier to be what is being repeated now.
    for (let start = tail - 1; start >= lowest; start--) {
      let k = 0;
      while (k < n && history[start + k] === history[tail + k]) k++;
      if (k < n) continue;
      // What followed the match, running on into the draft itself when the match is close to the
      // end: a pattern that repeats with period p continues with period p.
      const from = start + n;
      const draft: number[] = [];
      for (let i = from; draft.length < max; i++) draft.push(i < len ? history[i] : draft[i - len]);
      return draft;
    }
  }
  return [];
}

/** Prompt lookup as a draft source: keeps nothing per sequence. */
export class PromptLookup implements DraftSource {
  readonly name = 'lookup';

  constructor(private readonly opts: PromptLookupOptions = {}) {}

  propose(requests: readonly DraftRequest[]): number[][] {
    return requests.map((r) => lookupDraft(r.history, r.max, this.opts));
  }

  forget(): void {}
}

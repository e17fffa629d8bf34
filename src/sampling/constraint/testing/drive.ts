/**
 * Drives a token constraint the way the engine does, with random logits in place of a model:
 * mask, pick the best unmasked token, accept it, until an end-of-generation token.
 */
import type { Prng } from '../../../util/prng.js';
import type { ConstraintVocab, TokenConstraint } from '../types.js';

/** What a random generation produced. */
export interface DriveResult {
  ids: number[];
  /** True when it ended with an end-of-generation token. */
  finished: boolean;
  /** Step at which every token was masked, if that happened. */
  stuckAt?: number;
}

/** ASCII punctuation that does not open a container: what closes strings and containers and
 * separates the parts of formats. */
function isPunctuation(b: number): boolean {
  return b > 0x20 && b < 0x7f && !/[A-Za-z0-9[{]/.test(String.fromCharCode(b));
}

/**
 * Ids of end-of-generation tokens and of tokens made only of such punctuation, which the drive
 * favours as it goes on: a random walk over word pieces alone would rarely close a string or
 * reach the '@' of an email address.
 */
export function closingTokens(vocab: ConstraintVocab): Set<number> {
  const out = new Set<number>();
  for (let id = 0; id < vocab.size; id++) {
    const p = vocab.piece(id);
    if (vocab.isEog(id) || (p.length > 0 && p.every(isPunctuation))) out.add(id);
  }
  return out;
}

/**
 * Random logits each step; after `patience` steps, on half the steps, closing tokens get a
 * growing bonus so that documents end. Gives up (finished false) after `maxSteps`.
 */
export function drive(
  constraint: TokenConstraint,
  vocab: ConstraintVocab,
  rng: Prng,
  options: { maxSteps: number; patience: number; closers: Set<number> },
): DriveResult {
  const logits = new Float32Array(vocab.size);
  const ids: number[] = [];
  for (let step = 0; step < options.maxSteps; step++) {
    for (let i = 0; i < logits.length; i++) logits[i] = rng.next();
    // Not every step: where a closer is always allowed (say '}' in some strings), other tokens
    // must still get their turn.
    if (step > options.patience && rng.next() < 0.5) {
      const bonus = (step - options.patience) / 10;
      for (const id of options.closers) logits[id] += bonus;
    }
    constraint.mask(logits);
    let best = -1;
    for (let i = 0; i < logits.length; i++) if (logits[i] !== -Infinity && (best < 0 || logits[i] > logits[best])) best = i;
    if (best < 0) return { ids, finished: false, stuckAt: step };
    constraint.accept(best);
    if (vocab.isEog(best)) return { ids, finished: true };
    ids.push(best);
  }
  return { ids, finished: false };
}

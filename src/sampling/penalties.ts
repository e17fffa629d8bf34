/**
 * Logit adjustments that run before any filtering: the logit bias map and the repetition,
 * presence and frequency penalties. Both work in place on a logits array.
 */
import { CairnError } from '../util/errors.js';

/** The penalty settings, as in `ResolvedSamplerOptions`. */
export interface PenaltyParams {
  readonly repeatPenalty: number;
  /** Trailing history tokens considered; 0 = none, -1 = all. */
  readonly repeatLastN: number;
  readonly presencePenalty: number;
  readonly frequencyPenalty: number;
}

/**
 * Reusable counting buffers sized to one vocabulary, so penalties count occurrences without a
 * hash map or any allocation per call.
 */
export class PenaltyScratch {
  /** Occurrences per token id in the current window; all zero between calls. */
  readonly counts: Int32Array;
  /** Distinct ids seen in the current window, in first-seen order. */
  readonly touched: Int32Array;

  constructor(readonly vocabSize: number) {
    this.counts = new Int32Array(vocabSize);
    this.touched = new Int32Array(vocabSize);
  }
}

/** True when these settings change nothing, so callers can skip the pass. */
export function penaltiesAreOff(p: PenaltyParams): boolean {
  return (
    p.repeatLastN === 0 ||
    (p.repeatPenalty === 1 && p.presencePenalty === 0 && p.frequencyPenalty === 0)
  );
}

/**
 * Adds `values[i]` to `logits[ids[i]]`. Ids outside the vocabulary raise BAD_ARGUMENT, since a
 * bias meant for another tokenizer would otherwise be silently lost.
 */
export function applyLogitBias(logits: Float32Array, ids: Int32Array, values: Float32Array): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id >= logits.length) {
      throw new CairnError(
        'BAD_ARGUMENT',
        `logitBias names token ${id}, outside the vocabulary of ${logits.length} tokens`,
      );
    }
    logits[id] += values[i];
  }
}

/**
 * Applies llama.cpp's penalties sampler in place. For each distinct token in the window (the last
 * `repeatLastN` entries of `history`) with count c:
 *
 *     logit = logit <= 0 ? logit * repeatPenalty : logit / repeatPenalty
 *     logit -= c * frequencyPenalty + presencePenalty
 *
 * The second line is OpenAI's presence/frequency formula. Tokens outside the window are untouched.
 */
export function applyPenalties(
  logits: Float32Array,
  history: ArrayLike<number>,
  params: PenaltyParams,
  scratch: PenaltyScratch,
): void {
  if (penaltiesAreOff(params)) return;
  if (scratch.vocabSize !== logits.length) {
    throw new CairnError(
      'BAD_ARGUMENT',
      `penalty scratch is sized for ${scratch.vocabSize} tokens, logits have ${logits.length}`,
    );
  }
  const { counts, touched } = scratch;
  const start =
    params.repeatLastN < 0 ? 0 : Math.max(0, history.length - params.repeatLastN);
  let nTouched = 0;
  for (let i = start; i < history.length; i++) {
    const id = history[i];
    if (!Number.isInteger(id) || id < 0 || id >= logits.length) {
      // Leave the scratch clean before reporting, so the sampler stays usable.
      for (let j = 0; j < nTouched; j++) counts[touched[j]] = 0;
      throw new CairnError(
        'BAD_ARGUMENT',
        `history[${i}] = ${id} is not a token id of this ${logits.length}-token vocabulary`,
      );
    }
    if (counts[id] === 0) touched[nTouched++] = id;
    counts[id]++;
  }
  const { repeatPenalty, frequencyPenalty, presencePenalty } = params;
  for (let j = 0; j < nTouched; j++) {
    const id = touched[j];
    let logit = logits[id];
    logit = logit <= 0 ? logit * repeatPenalty : logit / repeatPenalty;
    logits[id] = logit - (counts[id] * frequencyPenalty + presencePenalty);
    counts[id] = 0;
  }
}

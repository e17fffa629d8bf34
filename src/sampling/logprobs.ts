/**
 * Log-probabilities as the OpenAI API reports them: the log-softmax of the model's raw logits,
 * i.e. the model's own distribution before temperature, penalties, bias or any filter. A token
 * that top-k or top-p would never allow still gets its true (small) logprob.
 */
import { CairnError } from '../util/errors.js';
import { nativeLogSumExp } from '../kernels/native.js';
import { selectTop } from './select.js';

/** The most alternatives a request may ask for (OpenAI's `top_logprobs` limit). */
export const MAX_TOP_LOGPROBS = 20;

/** One token and its log-probability (natural log). */
export interface TokenLogprob {
  readonly id: number;
  readonly logprob: number;
}

/** The chosen token's logprob and the most likely alternatives, best first. */
export interface StepLogprobs extends TokenLogprob {
  readonly top: readonly TokenLogprob[];
}

/** Rows shorter than this take the TypeScript path (a native call costs more than it saves). */
const NATIVE_MIN_LENGTH = 256;

/**
 * log(sum(exp(logits))). NaN logits count as -Infinity. A vocabulary-sized row goes to the native
 * library (a few microseconds where Math.exp over 32000 logits takes half a millisecond, which
 * several streams asking for logprobs paid every step); the exact twin below is the oracle and
 * takes the rows the native path leaves (NaN, infinite maxima, no native library).
 */
export function logSumExp(logits: ArrayLike<number>): number {
  if (logits instanceof Float32Array && logits.length >= NATIVE_MIN_LENGTH) {
    const fast = nativeLogSumExp(logits);
    if (Number.isFinite(fast)) return fast;
  }
  return logSumExpReference(logits);
}

/** log(sum(exp(logits))), computed stably in double precision. NaN logits count as -Infinity. */
export function logSumExpReference(logits: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  if (max === -Infinity || max === Infinity) return max;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const x = logits[i];
    if (x === x) sum += Math.exp(x - max);
  }
  return max + Math.log(sum);
}

/**
 * The logprob of `chosen` and of the `topN` most likely tokens (0..20), from raw logits.
 * Ties among alternatives are listed lowest id first.
 */
export function stepLogprobs(logits: Float32Array, chosen: number, topN: number): StepLogprobs {
  if (!Number.isInteger(chosen) || chosen < 0 || chosen >= logits.length) {
    throw new CairnError('BAD_ARGUMENT', `token ${chosen} is outside the ${logits.length}-token vocabulary`);
  }
  if (!Number.isInteger(topN) || topN < 0 || topN > MAX_TOP_LOGPROBS) {
    throw new CairnError('BAD_ARGUMENT', `top logprobs must be an integer in [0, ${MAX_TOP_LOGPROBS}], got ${topN}`);
  }
  const lse = logSumExp(logits);
  const logprobOf = (id: number): number => {
    const x = logits[id];
    return x !== x ? -Infinity : x - lse;
  };
  const ids = new Int32Array(topN);
  const found = selectTop(logits, topN, ids);
  const top: TokenLogprob[] = [];
  for (let i = 0; i < found; i++) top.push({ id: ids[i], logprob: logprobOf(ids[i]) });
  return { id: chosen, logprob: logprobOf(chosen), top };
}

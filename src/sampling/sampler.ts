/**
 * The sampler chain: turns one step's logits into a token id, following llama.cpp's default chain
 * (logit bias -> penalties -> top-k -> top-p -> min-p -> temperature -> draw).
 */
import { CairnError } from '../util/errors.js';
import { resolveSamplerOptions, type ResolvedSamplerOptions, type SamplerOptions } from './options.js';
import { applyLogitBias, applyPenalties, penaltiesAreOff, PenaltyScratch } from './penalties.js';
import { randomSeed, Xoshiro128 } from './prng.js';
import { argmax, selectTop } from './select.js';

/** The error of a row where every logit is -Infinity (or NaN). */
function noTokenLeft(): CairnError {
  return new CairnError('BAD_ARGUMENT', 'no token can be sampled: every logit is -Infinity (are all tokens banned by logitBias?)');
}

/** The highest logit's id, ties to the lowest; NaN counts as -Infinity. */
function greedy(logits: Float32Array): number {
  let best = -1;
  let bestValue = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (v > bestValue) {
      best = i;
      bestValue = v;
    }
  }
  if (best < 0) throw noTokenLeft();
  return best;
}

/** Past the first this many candidates, top-p widens its partial sort instead of sorting all. */
const TOP_P_FIRST_WINDOW = 256;

const NO_HISTORY: ArrayLike<number> = Object.freeze([]);

/**
 * Picks tokens from logits. Build one per generated sequence (it owns the random stream); it
 * allocates its buffers once per vocabulary size and nothing per call after that.
 *
 * Temperature 0 is greedy: the highest logit after bias and penalties, ties to the lowest id.
 */
export class Sampler {
  /** The checked options this sampler runs with. */
  readonly options: ResolvedSamplerOptions;
  /** The seed in use: the caller's, or the random one drawn when none was given. */
  readonly seed: number;

  private rng: Xoshiro128;
  private vocabSize = 0;
  private work = new Float32Array(0);
  private ids = new Int32Array(0);
  private probs = new Float64Array(0);
  private penaltyScratch: PenaltyScratch | null = null;

  constructor(options: SamplerOptions = {}) {
    this.options = resolveSamplerOptions(options);
    this.seed = this.options.seed ?? randomSeed();
    this.rng = new Xoshiro128(this.seed);
  }

  /** Restarts the random stream from the seed, so the same logits give the same tokens again. */
  reset(): void {
    this.rng = new Xoshiro128(this.seed);
  }

  /**
   * Moves the random stream past the draws of `tokens` earlier samples: a sampler rebuilt
   * elsewhere (a sequence resumed on another machine) then goes on exactly where the old one
   * stopped. Every sample at a temperature above 0 takes exactly one draw, so tokens = draws.
   */
  skip(tokens: number): void {
    if (!(Number.isSafeInteger(tokens) && tokens >= 0)) throw new CairnError('BAD_ARGUMENT', `cannot skip ${tokens} draws`);
    if (this.options.temperature === 0) return;
    for (let i = 0; i < tokens; i++) this.rng.nextFloat();
  }

  /**
   * Chooses the next token. `logits` (one per vocabulary entry) is not modified. `history` holds
   * the token ids so far (prompt and generated, as the caller decides); penalties look at its tail.
   */
  sample(logits: Float32Array, history: ArrayLike<number> = NO_HISTORY): number {
    const n = logits.length;
    if (n === 0) throw new CairnError('BAD_ARGUMENT', 'cannot sample from empty logits');
    const o = this.options;
    const plain = o.biasIds.length === 0 && penaltiesAreOff(o);
    // Greedy with nothing to change the logits: one pass over them, no copy (a server step samples
    // every stream's row, so the passes add up).
    if (plain && o.temperature === 0) return greedy(logits);
    this.ensureBuffers(n);
    const work = this.work;
    work.set(logits);
    for (let i = 0; i < n; i++) if (work[i] !== work[i]) work[i] = -Infinity;
    if (o.biasIds.length > 0) applyLogitBias(work, o.biasIds, o.biasValues);
    if (!penaltiesAreOff(o)) applyPenalties(work, history, o, this.penaltyScratch!);

    if (o.temperature === 0) return greedy(work);
    if (work[argmax(work)] === -Infinity) throw noTokenLeft();

    let count = n;
    let sorted = false;
    const ids = this.ids;
    if (o.topK > 0 && o.topK < n) {
      count = selectTop(work, o.topK, ids);
      sorted = true;
    } else {
      for (let i = 0; i < n; i++) ids[i] = i;
    }
    if (o.topP < 1) {
      count = this.topP(count, sorted, o.topP);
      sorted = true;
    }
    if (o.minP > 0) count = this.minP(count, sorted, o.minP);
    return this.draw(count, o.temperature);
  }

  private ensureBuffers(n: number): void {
    if (n === this.vocabSize) return;
    this.vocabSize = n;
    this.work = new Float32Array(n);
    this.ids = new Int32Array(n);
    this.probs = new Float64Array(n);
    this.penaltyScratch = new PenaltyScratch(n);
  }

  /** Max logit among ids[0..count). */
  private maxLogit(count: number, sorted: boolean): number {
    const { work, ids } = this;
    if (sorted) return work[ids[0]];
    let max = -Infinity;
    for (let i = 0; i < count; i++) if (work[ids[i]] > max) max = work[ids[i]];
    return max;
  }

  /**
   * Keeps the shortest best-first prefix whose probability (softmax over the current candidates)
   * reaches p. When the candidates are the whole, unsorted vocabulary it sorts only a growing top
   * window, since the nucleus is usually a few dozen tokens.
   */
  private topP(count: number, sorted: boolean, p: number): number {
    const { work, ids } = this;
    const max = this.maxLogit(count, sorted);
    let sum = 0;
    for (let i = 0; i < count; i++) sum += expShift(work[ids[i]], max);
    const target = p * sum;
    let window = sorted ? count : Math.min(count, TOP_P_FIRST_WINDOW);
    for (;;) {
      // Unsorted means ids is the identity over the whole vocabulary, so select from `work`.
      if (!sorted) selectTop(work, window, ids);
      let cum = 0;
      for (let i = 0; i < window; i++) {
        cum += expShift(work[ids[i]], max);
        if (cum >= target) return i + 1;
      }
      if (window === count) return count;
      window = Math.min(count, window * 4);
    }
  }

  /** Keeps candidates whose probability is at least p times the best one's. */
  private minP(count: number, sorted: boolean, p: number): number {
    const { work, ids } = this;
    const threshold = this.maxLogit(count, sorted) + Math.log(p);
    if (sorted) {
      let keep = 1;
      while (keep < count && work[ids[keep]] >= threshold) keep++;
      return keep;
    }
    let kept = 0;
    for (let i = 0; i < count; i++) {
      const id = ids[i];
      if (work[id] >= threshold) ids[kept++] = id;
    }
    return kept;
  }

  /** Draws one of ids[0..count) with probability proportional to exp(logit / temperature). */
  private draw(count: number, temperature: number): number {
    const { work, ids, probs } = this;
    // Drawn even when one candidate is left, so the stream's position counts sampled tokens.
    const u = this.rng.nextFloat();
    if (count === 1) return ids[0];
    let max = -Infinity;
    for (let i = 0; i < count; i++) if (work[ids[i]] > max) max = work[ids[i]];
    let sum = 0;
    for (let i = 0; i < count; i++) {
      const x = work[ids[i]];
      const e = x === max ? 1 : Math.exp((x - max) / temperature);
      probs[i] = e;
      sum += e;
    }
    const target = u * sum;
    let cum = 0;
    let lastPositive = 0;
    for (let i = 0; i < count; i++) {
      if (probs[i] === 0) continue;
      cum += probs[i];
      lastPositive = i;
      if (cum > target) return ids[i];
    }
    // Only reachable through rounding in the running sum.
    return ids[lastPositive];
  }
}

/** exp(x - max), exact 1 at the max so an infinite max still gives a usable distribution. */
function expShift(x: number, max: number): number {
  return x === max ? 1 : Math.exp(x - max);
}

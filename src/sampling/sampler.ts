/**
 * The sampler chain: turns one step's logits into a token id, following llama.cpp's default chain
 * (logit bias -> penalties -> top-k -> top-p -> min-p -> temperature -> draw).
 */
import { CairnError } from '../util/errors.js';
import { resolveSamplerOptions, type ResolvedSamplerOptions, type SamplerOptions } from './options.js';
import { applyLogitBias, applyPenalties, penaltiesAreOff, PenaltyScratch } from './penalties.js';
import { randomSeed, Xoshiro128 } from './prng.js';
import { argmax, selectTop, sortByRank } from './select.js';

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
  /** Top-p's tally of probability by band (see topP). */
  private bands: Float64Array | undefined;

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
    // Top-k straight from the caller's logits when nothing changes them: the chain after it reads
    // only the k chosen, so the copy and the passes that clean it are saved (at a 128k vocabulary
    // they cost more than the selection). A NaN among the chosen takes the long way, which reads it
    // as -Infinity.
    if (plain && o.topK > 0 && o.topK < n) {
      const count = selectTop(logits, o.topK, this.ids);
      if (this.chosenAreNumbers(logits, count)) return this.fromTopK(logits, count);
    }
    // A NaN stays NaN through bias and penalties and ranks as -Infinity everywhere (greedy, the
    // top-k heap); the chain after top-k reads it as -Infinity, so it is cleaned where it is read.
    const work = this.work;
    work.set(logits);
    if (o.biasIds.length > 0) applyLogitBias(work, o.biasIds, o.biasValues);
    if (!penaltiesAreOff(o)) applyPenalties(work, history, o, this.penaltyScratch!);
    if (o.temperature === 0) return greedy(work);

    const ids = this.ids;
    if (o.topK > 0 && o.topK < n) {
      const count = selectTop(work, o.topK, ids);
      for (let i = 0; i < count; i++) if (work[ids[i]] !== work[ids[i]]) work[ids[i]] = -Infinity;
      return this.fromTopK(work, count);
    }
    for (let i = 0; i < n; i++) if (work[i] !== work[i]) work[i] = -Infinity;
    if (work[argmax(work)] === -Infinity) throw noTokenLeft();
    for (let i = 0; i < n; i++) ids[i] = i;
    return this.afterTopK(work, n, false);
  }

  /** Whether none of the first `count` candidates' values is NaN. */
  private chosenAreNumbers(vals: Float32Array, count: number): boolean {
    const ids = this.ids;
    for (let i = 0; i < count; i++) if (vals[ids[i]] !== vals[ids[i]]) return false;
    return true;
  }

  /** The chain after top-k chose ids[0..count) of `vals` (best first, none NaN). */
  private fromTopK(vals: Float32Array, count: number): number {
    if (vals[this.ids[0]] === -Infinity) throw noTokenLeft();
    return this.afterTopK(vals, count, true);
  }

  /** The rest of the chain over candidates ids[0..count) of `vals` (best first when `sorted`). */
  private afterTopK(vals: Float32Array, count: number, sorted: boolean): number {
    const o = this.options;
    if (o.topP < 1) {
      count = this.topP(vals, count, sorted, o.topP);
      sorted = true;
    }
    if (o.minP > 0) count = this.minP(vals, count, sorted, o.minP);
    return this.draw(vals, count, o.temperature);
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
  private maxLogit(work: Float32Array, count: number, sorted: boolean): number {
    const ids = this.ids;
    if (sorted) return work[ids[0]];
    let max = -Infinity;
    for (let i = 0; i < count; i++) if (work[ids[i]] > max) max = work[ids[i]];
    return max;
  }

  /**
   * Keeps the shortest best-first prefix whose probability (softmax over the current candidates)
   * reaches p. When the candidates are the whole, unsorted vocabulary, the pass that sums their
   * probabilities also tallies them in bands of the logit's distance from the best; the bands that
   * hold p of the mass (and one more, against rounding) name the only tokens that can be in the
   * nucleus, and only those are sorted. The prefix is summed in the same best-first order either
   * way, so the cut falls where a sort of the whole vocabulary would put it.
   */
  private topP(work: Float32Array, count: number, sorted: boolean, p: number): number {
    const ids = this.ids;
    const max = this.maxLogit(work, count, sorted);
    if (sorted) {
      let sum = 0;
      for (let i = 0; i < count; i++) sum += expShift(work[ids[i]], max);
      return prefixReaching(work, ids, count, max, p * sum) ?? count;
    }
    // Unsorted: ids is the identity over the whole vocabulary.
    const bands = (this.bands ??= new Float64Array(TOP_P_BANDS));
    bands.fill(0);
    let sum = 0;
    for (let i = 0; i < count; i++) {
      const e = expShift(work[i], max);
      sum += e;
      bands[bandOf(work[i], max)] += e;
    }
    const target = p * sum;
    let last = 0;
    for (let mass = bands[0]; mass < target && last < TOP_P_BANDS - 1;) mass += bands[++last];
    const through = last + 1;
    if (through < TOP_P_BANDS - 1) {
      let kept = 0;
      for (let i = 0; i < count; i++) if (bandOf(work[i], max) <= through) ids[kept++] = i;
      sortByRank(work, ids, kept, this.probs); // probs: scratch here, the draw fills it later
      const cut = prefixReaching(work, ids, kept, max, target);
      if (cut !== undefined) return cut;
    }
    // The bands' sums and the prefix's ran apart (rounding at the very tail): sort it all.
    selectTop(work, count, ids);
    return prefixReaching(work, ids, count, max, target) ?? count;
  }

  /** Keeps candidates whose probability is at least p times the best one's. */
  private minP(work: Float32Array, count: number, sorted: boolean, p: number): number {
    const ids = this.ids;
    const threshold = this.maxLogit(work, count, sorted) + Math.log(p);
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
  private draw(work: Float32Array, count: number, temperature: number): number {
    const { ids, probs } = this;
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

/** Bands of the logits' distance from the best, a band an eighth of a nat wide; the last holds the rest. */
const TOP_P_BANDS_PER_NAT = 8;
const TOP_P_BANDS = 40 * TOP_P_BANDS_PER_NAT + 1;

/** The band of a logit `x` (not NaN) below the best, `max`. */
function bandOf(x: number, max: number): number {
  if (x === max) return 0;
  const band = Math.floor((max - x) * TOP_P_BANDS_PER_NAT);
  return band < TOP_P_BANDS - 1 ? band : TOP_P_BANDS - 1;
}

/**
 * Length of the shortest prefix of ids[0..count) (best first) whose probabilities, summed in that
 * order, reach `target`; undefined when all of them fall short.
 */
function prefixReaching(work: Float32Array, ids: Int32Array, count: number, max: number, target: number): number | undefined {
  let cum = 0;
  for (let i = 0; i < count; i++) {
    cum += expShift(work[ids[i]], max);
    if (cum >= target) return i + 1;
  }
  return undefined;
}

/** exp(x - max), exact 1 at the max so an infinite max still gives a usable distribution. */
function expShift(x: number, max: number): number {
  return x === max ? 1 : Math.exp(x - max);
}

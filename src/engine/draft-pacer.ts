/**
 * How long a sequence's drafts are. Each sequence keeps a running estimate of how likely a draft
 * token is to be kept; with the measured cost of steps by size (step-costs.ts) the pacer picks the
 * draft length that yields the most tokens per millisecond, and drafts not at all when no length
 * beats a plain step. After drafts that were wholly rejected it waits a while (longer after each
 * such miss) before drafting again, so text that does not repeat costs almost nothing.
 */
import type { StepCosts } from './step-costs.js';

/** Steps a sequence waits at most before drafting again after wholly rejected drafts. */
const MAX_WAIT = 32;
/** How much of the acceptance estimate each verification carries over (older drafts count less). */
const KEEP = 0.7;
/** A draft must yield this much more per millisecond than a plain step to be worth it. */
const MARGIN = 1.05;
/**
 * Steps without a draft (because none paid) after which one draft token is tried anyway, so the
 * acceptance estimate follows text that started to repeat: at most one extra row in this many
 * steps, and twice as many after each probe that failed (up to MAX_PROBE_EVERY).
 */
const PROBE_EVERY = 32;
const MAX_PROBE_EVERY = 256;

/** Tokens a draft of k yields on average when each draft token is kept with probability p (the pending token's own included). */
export function expectedTokens(k: number, p: number): number {
  if (p >= 1) return k + 1;
  return (1 - p ** (k + 1)) / (1 - p);
}

/** Draft length of one sequence. */
export class DraftPacer {
  private misses = 0;
  private wait = 0;
  // The first step that could draft probes at once: a sequence that repeats from the start gains from the start.
  private idle = PROBE_EVERY - 1;
  private probeEvery = PROBE_EVERY;
  private probing = false;
  // Draft tokens kept and tried, decayed: the estimate starts at 0.5 from half a token's worth,
  // so a few drafts move it.
  private kept = 0.25;
  private tried = 0.5;

  constructor(private readonly max: number) {}

  /** Chance that a draft token is kept, as estimated so far. */
  get acceptance(): number {
    return this.kept / this.tried;
  }

  /**
   * Tokens to draft at this step (0: not this step), given what steps cost and `base`, the tokens
   * the step holds besides this draft (one per decoding sequence, this one's pending token too):
   * the length that makes the step yield the most tokens per millisecond, all its sequences counted.
   */
  next(costs?: StepCosts, base = 1): number {
    if (this.max <= 0) return 0;
    if (this.wait > 0) {
      this.wait--;
      return 0;
    }
    const plain = costs?.estimate(base) ?? (costs && lastKnown(costs, base));
    if (plain === undefined) return this.max;
    const p = this.acceptance;
    let best = 0;
    let bestRate = (MARGIN * base) / plain;
    for (let k = 1; k <= this.max; k++) {
      // A size never measured is taken to cost what the largest measured one below it does: the
      // draft is then tried and measured.
      const cost = costs!.estimate(base + k) ?? lastKnown(costs!, base + k) ?? plain;
      const rate = (base - 1 + expectedTokens(k, p)) / cost;
      if (rate > bestRate) {
        best = k;
        bestRate = rate;
      }
    }
    this.probing = false;
    if (best > 0) this.idle = 0;
    else if (++this.idle >= this.probeEvery) {
      this.idle = 0;
      this.probing = true;
      return 1;
    }
    return best;
  }

  /** How a verified draft went. */
  record(drafted: number, accepted: number): void {
    if (drafted <= 0) return;
    // The draft tokens tried are those up to the first wrong one.
    const tried = accepted < drafted ? accepted + 1 : accepted;
    this.kept = this.kept * KEEP + accepted;
    this.tried = this.tried * KEEP + tried;
    if (accepted === 0) {
      this.misses++;
      this.wait = Math.min(MAX_WAIT, 2 ** this.misses - 1);
      if (this.probing) this.probeEvery = Math.min(MAX_PROBE_EVERY, this.probeEvery * 2);
    } else {
      this.misses = 0;
      this.probeEvery = PROBE_EVERY;
    }
    this.probing = false;
  }
}

/** The cost of the largest measured step size below n. */
function lastKnown(costs: StepCosts, n: number): number | undefined {
  for (let m = n - 1; m >= 1; m--) {
    const c = costs.estimate(m);
    if (c !== undefined) return c;
  }
  return undefined;
}

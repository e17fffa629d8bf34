/**
 * What a forward step costs by how many tokens it holds, as measured on this machine: speculative
 * decoding pays only when the tokens a draft yields come cheaper than the steps they replace. On
 * a machine bound by memory reads, 8 tokens cost little more than 1; on one bound by arithmetic
 * (the AVX2-only machine of bench/RESULTS.md), each extra token costs most of a step.
 */

/** Token counts tracked (a step of more is counted as this many). */
const MAX_TRACKED = 65;
/** Weight of a new measurement in the running mean. */
const NEW_WEIGHT = 0.2;

/** Running mean of step time per token count. */
export class StepCosts {
  private readonly ms = new Float64Array(MAX_TRACKED + 1).fill(NaN);

  /** A step of `tokens` tokens took `ms` milliseconds. */
  record(tokens: number, ms: number): void {
    if (!(tokens >= 1 && ms > 0 && Number.isFinite(ms))) return;
    const n = Math.min(MAX_TRACKED, Math.floor(tokens));
    const old = this.ms[n];
    this.ms[n] = Number.isNaN(old) ? ms : old + NEW_WEIGHT * (ms - old);
  }

  /**
   * Estimated milliseconds of a step of n tokens: measured, else on the line through the nearest
   * measured counts on either side, else undefined (nothing measured at or below n).
   */
  estimate(n: number): number | undefined {
    n = Math.min(MAX_TRACKED, Math.max(1, Math.floor(n)));
    if (!Number.isNaN(this.ms[n])) return this.ms[n];
    let lo = n - 1;
    while (lo >= 1 && Number.isNaN(this.ms[lo])) lo--;
    if (lo < 1) return undefined;
    let hi = n + 1;
    while (hi <= MAX_TRACKED && Number.isNaN(this.ms[hi])) hi++;
    if (hi > MAX_TRACKED) return undefined;
    return this.ms[lo] + ((this.ms[hi] - this.ms[lo]) * (n - lo)) / (hi - lo);
  }
}

/**
 * Dividing whole units (heads, blocks of columns, experts, layers) among ranks in proportion to
 * their shares, and shares that respect each rank's limit (its memory). The cuts are the nearest
 * whole units to the proportional points, every rank at least `min` units: util/proportional-cuts.ts,
 * the rule the model's tensor split applies too, so both sides cut alike.
 */
import { proportionalCuts } from '../util/proportional-cuts.js';

export { proportionalCuts };

/** Units per rank of proportionalCuts. */
export function apportion(units: number, shares: readonly number[], min = 1): number[] | undefined {
  const cuts = proportionalCuts(units, shares, min);
  return cuts && shares.map((_, i) => cuts[i + 1] - cuts[i]);
}

/**
 * Fractions (summing to 1) in proportion to `weights`, none above its cap: what a capped rank
 * cannot take goes to the others in proportion to their weights. Undefined when the caps sum to
 * less than 1 (the ranks cannot hold the whole between them).
 */
export function cappedShares(weights: readonly number[], caps: readonly number[]): number[] | undefined {
  const n = weights.length;
  if (n === 0 || caps.reduce((a, c) => a + Math.max(0, c), 0) < 1 - 1e-12) return undefined;
  const out = new Array<number>(n).fill(0);
  const fixed = new Array<boolean>(n).fill(false);
  let left = 1;
  for (let round = 0; round < n; round++) {
    const free = weights.reduce((a, w, i) => a + (fixed[i] ? 0 : Math.max(w, 0)), 0);
    let capped = false;
    for (let i = 0; i < n; i++) {
      if (fixed[i]) continue;
      out[i] = free > 0 ? (left * Math.max(weights[i], 0)) / free : left / n;
    }
    for (let i = 0; i < n; i++) {
      if (!fixed[i] && out[i] > caps[i]) {
        out[i] = Math.max(0, caps[i]);
        fixed[i] = true;
        left -= out[i];
        capped = true;
      }
    }
    if (!capped) break;
  }
  return out;
}

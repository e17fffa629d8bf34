/**
 * Dividing whole units (heads, blocks of columns, experts, layers) among ranks in proportion to
 * their shares: the cuts are the nearest whole units to the proportional points, every rank at
 * least `min` units. The model's tensor split and the planner both cut with this one rule, so a
 * plan's shares give the same ranges on every side.
 */

/** Boundaries (count + 1 of them) cutting `units` in proportion to `shares`; undefined when fewer than min x count units. */
export function proportionalCuts(units: number, shares: readonly number[], min = 1): number[] | undefined {
  const count = shares.length;
  if (count === 0 || units < min * count) return undefined;
  const total = shares.reduce((a, b) => a + b, 0);
  const cuts = [0];
  let sum = 0;
  for (let r = 0; r < count - 1; r++) {
    sum += shares[r];
    const want = total > 0 ? Math.round((units * sum) / total) : Math.round((units * (r + 1)) / count);
    cuts.push(Math.min(units - min * (count - 1 - r), Math.max(cuts[r] + min, want)));
  }
  cuts.push(units);
  return cuts;
}

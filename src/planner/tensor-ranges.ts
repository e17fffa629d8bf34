/**
 * What each rank of a tensor group holds, from the group's shares: a range of query heads (with
 * the KV heads they read) and a range of FFN hidden columns. Cuts land where the weights can be
 * cut: column ranges on multiples of the quantization block (256 elements where the dimension has
 * enough of them, else 32, never less than the model's block size), head ranges on whole KV groups
 * where there are at least as many groups as ranks; with more ranks than KV heads, the ranks are
 * dealt to the groups and share (replicate) their group's KV head. This is the rule the model's
 * tensor split applies to the same shares, so the planner's ranges are the ones a rank loads.
 */
import { proportionalCuts } from './apportion.js';
import type { Range } from './types.js';

/** The elements per cut unit of a dimension cut `count` ways: 256 where there are enough, else 32. */
export function splitAlignment(dim: number, count: number): number {
  return dim % 256 === 0 && dim / 256 >= count ? 256 : 32;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** The elements a split of `dim` columns over k ranks cuts at multiples of (columnRanges). */
export function columnUnit(dim: number, k: number, blockSize = 1): number {
  return Math.max(blockSize, splitAlignment(dim, k));
}

/** The FFN hidden columns of each rank, or undefined when `dim` cannot be cut that many ways at block boundaries. */
export function columnRanges(dim: number, shares: readonly number[], blockSize = 1): Range[] | undefined {
  const k = shares.length;
  if (k === 1) return [[0, dim]];
  const unit = columnUnit(dim, k, blockSize);
  if (dim % unit !== 0) return undefined;
  const cuts = proportionalCuts(dim / unit, shares);
  return cuts && shares.map((_, i): Range => [cuts[i] * unit, cuts[i + 1] * unit]);
}

/** A rank's query heads and the KV heads they read. */
export interface HeadRanges {
  readonly heads: Range;
  readonly kvHeads: Range;
}

/** The heads of each rank, or undefined when the heads cannot be cut that many ways. */
export function headRanges(
  nHead: number,
  nKvHead: number,
  headDim: number,
  shares: readonly number[],
  blockSize = 1,
): HeadRanges[] | undefined {
  const k = shares.length;
  if (k === 1) return [{ heads: [0, nHead], kvHeads: [0, nKvHead] }];
  if (nKvHead < 1 || nHead % nKvHead !== 0) return undefined;
  const group = nHead / nKvHead;
  // Heads per unit, so that a cut lands on a block boundary of the output projection's columns.
  const align = Math.max(blockSize, splitAlignment(nHead * headDim, k));
  const unitHeads = align / gcd(align, headDim);
  if (nHead % unitHeads !== 0) return undefined;
  const groupUnit = (group * unitHeads) / gcd(group, unitHeads);
  if (nHead % groupUnit === 0 && nHead / groupUnit >= k) {
    const cuts = proportionalCuts(nHead / groupUnit, shares)!;
    return shares.map((_, i) => {
      const h0 = cuts[i] * groupUnit;
      const h1 = cuts[i + 1] * groupUnit;
      return { heads: [h0, h1], kvHeads: [h0 / group, h1 / group] };
    });
  }
  // More ranks than KV groups: deal the ranks to the groups, split each group's heads among its ranks.
  if (group % unitHeads !== 0 || k > nKvHead * (group / unitHeads)) return undefined;
  const groupCuts = proportionalCuts(k, new Array<number>(nKvHead).fill(1))!;
  const out: HeadRanges[] = [];
  for (let g = 0; g < nKvHead; g++) {
    const ranks = shares.slice(groupCuts[g], groupCuts[g + 1]);
    const cuts = proportionalCuts(group / unitHeads, ranks);
    if (!cuts) return undefined;
    ranks.forEach((_, j) =>
      out.push({ heads: [g * group + cuts[j] * unitHeads, g * group + cuts[j + 1] * unitHeads], kvHeads: [g, g + 1] }),
    );
  }
  return out;
}

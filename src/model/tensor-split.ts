/**
 * Tensor parallelism: which part of each layer a rank holds. A group of `count` ranks shares a
 * layer range; each rank holds a contiguous range of the attention's query heads (with the KV heads
 * they read) and of the FFN's hidden columns, in proportion to its share (uneven where nodes
 * differ), and its attention-output and FFN-down products give partial sums that the group adds up.
 *
 * Boundaries fall where every weight type can be cut: a column range of the attention-output and
 * FFN-down matrices must start at a quantization block, so boundaries are whole multiples of 256
 * elements (the K-quant super-block, a multiple of every other block size) when the dimension has
 * at least one such unit per rank, and of 32 otherwise (then a K-quant tensor cannot be cut there,
 * and the load says so). Query-head ranges also keep grouped-query attention's groups whole: a rank
 * holds whole groups, or, with more ranks than KV heads, part of one group (its KV head is then
 * replicated on the ranks that share the group). The ranges depend on the config and the split
 * alone, so every rank, the planner and memory estimates compute the same ones.
 *
 * Mixture-of-Experts layers split by experts: a rank holds a contiguous range of each layer's
 * routed experts (at least one each) and computes only the tokens routed to them, its share of the
 * weighted sum a partial sum; the router is replicated. Latent attention (MLA) splits by heads like
 * grouped-query attention, every rank computing (and caching) the whole shared latent.
 */
import { CairnError } from '../util/errors.js';
import { proportionalCuts as cutsOf } from '../util/proportional-cuts.js';

/** A rank of a tensor-parallel group: rank `rank` of `count`, with optional relative shares. */
export interface TensorSplit {
  readonly rank: number;
  readonly count: number;
  /** Relative share of each rank (count entries, > 0); absent: equal. */
  readonly shares?: readonly number[];
}

/** A half-open range [start, end). */
export type Range = readonly [number, number];

/** The part of one attention block a rank holds. */
export interface HeadSplit {
  /** Query heads [start, end). */
  readonly heads: Range;
  /** KV heads [start, end) those query heads read. */
  readonly kvHeads: Range;
}

/** The elements per boundary unit of a dimension cut `count` ways: 256 where there are enough, else 32. */
export function splitAlignment(dim: number, count: number): number {
  if (dim % 256 === 0 && dim / 256 >= count) return 256;
  return 32;
}

/** Checks a split: an integer rank within count, and positive finite shares when given. */
export function checkSplit(s: TensorSplit): void {
  const ok = Number.isInteger(s.count) && s.count >= 1 && s.count <= 256 && Number.isInteger(s.rank) && s.rank >= 0 && s.rank < s.count;
  if (!ok) throw new CairnError('BAD_ARGUMENT', `tensor split rank ${s.rank} of ${s.count} is not a valid rank`);
  if (s.shares && (s.shares.length !== s.count || s.shares.some((x) => !(Number.isFinite(x) && x > 0)))) {
    throw new CairnError('BAD_ARGUMENT', `tensor split shares must be ${s.count} positive numbers`);
  }
}

/**
 * Cuts `units` whole units into `count` consecutive ranges in proportion to `shares`, every range
 * at least one unit (util/proportional-cuts.ts). Returns the count + 1 boundaries; throws
 * MODEL_UNSUPPORTED when there are fewer units than ranks.
 */
export function proportionalCuts(units: number, shares: readonly number[]): number[] {
  const cuts = cutsOf(units, shares);
  if (!cuts) throw new CairnError('MODEL_UNSUPPORTED', `${units} parts cannot be split over ${shares.length} ranks`);
  return cuts;
}

function sharesOf(s: TensorSplit): readonly number[] {
  return s.shares ?? Array.from({ length: s.count }, () => 1);
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/**
 * The columns [start, end) of a dimension of `dim` (an FFN's hidden width) that a rank holds: cut at
 * splitAlignment(dim) boundaries in proportion to the shares.
 */
export function columnRange(dim: number, s: TensorSplit): Range {
  checkSplit(s);
  if (s.count === 1) return [0, dim];
  const unit = splitAlignment(dim, s.count);
  if (dim % unit !== 0) {
    throw new CairnError('MODEL_UNSUPPORTED', `a dimension of ${dim} cannot be split over ${s.count} ranks at ${unit}-element boundaries`);
  }
  const cuts = proportionalCuts(dim / unit, sharesOf(s));
  return [cuts[s.rank] * unit, cuts[s.rank + 1] * unit];
}

/** The query and KV heads a rank holds of an attention block with nHead query heads of headDim. */
export function headRange(nHead: number, nKvHead: number, headDim: number, s: TensorSplit): HeadSplit {
  checkSplit(s);
  if (s.count === 1) return { heads: [0, nHead], kvHeads: [0, nKvHead] };
  if (nKvHead < 1 || nHead % nKvHead !== 0) throw new CairnError('MODEL_UNSUPPORTED', `${nHead} query heads do not form ${nKvHead} groups`);
  const group = nHead / nKvHead;
  // Heads per boundary unit, so that a cut lands on an aligned column of the output projection.
  const align = splitAlignment(nHead * headDim, s.count);
  const unitHeads = align / gcd(align, headDim);
  if (nHead % unitHeads !== 0) {
    throw new CairnError(
      'MODEL_UNSUPPORTED',
      `${nHead} heads of ${headDim} cannot be split over ${s.count} ranks at ${align}-element boundaries`,
    );
  }
  const shares = sharesOf(s);
  // Whole groups per rank where there are enough of them.
  const groupUnit = (group * unitHeads) / gcd(group, unitHeads);
  if (nHead % groupUnit === 0 && nHead / groupUnit >= s.count) {
    const cuts = proportionalCuts(nHead / groupUnit, shares);
    const h0 = cuts[s.rank] * groupUnit;
    const h1 = cuts[s.rank + 1] * groupUnit;
    return { heads: [h0, h1], kvHeads: [h0 / group, h1 / group] };
  }
  // More ranks than groups: each rank takes part of one group, ranks dealt to groups in order.
  if (group % unitHeads !== 0 || s.count > nKvHead * (group / unitHeads)) {
    throw new CairnError('MODEL_UNSUPPORTED', `${nHead} heads (${nKvHead} KV heads) of ${headDim} cannot be split over ${s.count} ranks`);
  }
  const groupCuts = proportionalCuts(
    s.count,
    Array.from({ length: nKvHead }, () => 1),
  ); // ranks per group
  const g = groupCuts.findIndex((c, i) => s.rank >= c && s.rank < groupCuts[i + 1]);
  const ranks = shares.slice(groupCuts[g], groupCuts[g + 1]);
  const cuts = proportionalCuts(group / unitHeads, ranks);
  const local = s.rank - groupCuts[g];
  return { heads: [g * group + cuts[local] * unitHeads, g * group + cuts[local + 1] * unitHeads], kvHeads: [g, g + 1] };
}

/**
 * The routed experts [start, end) a rank holds of a Mixture-of-Experts layer of `nExperts`: cut in
 * proportion to the shares, every rank at least one (MODEL_UNSUPPORTED with fewer experts than ranks).
 */
export function expertRange(nExperts: number, s: TensorSplit): Range {
  checkSplit(s);
  if (s.count === 1) return [0, nExperts];
  if (nExperts < s.count) throw new CairnError('MODEL_UNSUPPORTED', `${nExperts} experts cannot be split over ${s.count} ranks`);
  const cuts = proportionalCuts(nExperts, sharesOf(s));
  return [cuts[s.rank], cuts[s.rank + 1]];
}

/**
 * The heads [start, end) a rank holds of a latent-attention (MLA) block of nHead heads whose values
 * are vDim wide: cut where the output projection's nHead x vDim columns allow (the same boundaries as
 * headRange with as many KV heads as heads).
 */
export function latentHeadRange(nHead: number, vDim: number, s: TensorSplit): Range {
  checkSplit(s);
  if (s.count === 1) return [0, nHead];
  const align = splitAlignment(nHead * vDim, s.count);
  const unitHeads = align / gcd(align, vDim);
  if (nHead % unitHeads !== 0 || nHead / unitHeads < s.count) {
    throw new CairnError(
      'MODEL_UNSUPPORTED',
      `${nHead} latent-attention heads of ${vDim} values cannot be split over ${s.count} ranks at ${align}-element boundaries`,
    );
  }
  const cuts = proportionalCuts(nHead / unitHeads, sharesOf(s));
  return [cuts[s.rank] * unitHeads, cuts[s.rank + 1] * unitHeads];
}

/**
 * Sets of Unicode scalar values as sorted, disjoint ranges: the character classes of patterns.
 * Surrogates (U+D800..U+DFFF) are never members: a JSON string written as UTF-8 cannot hold them.
 */

/** Largest code point. */
export const MAX_CODE_POINT = 0x10ffff;
const SURROGATE_FIRST = 0xd800;
const SURROGATE_LAST = 0xdfff;

/** An inclusive range of code points. */
export type CodePointRange = readonly [first: number, last: number];

/** An immutable set of code points. */
export class CodePointSet {
  /** Sorted, disjoint, non-adjacent ranges. */
  readonly ranges: readonly CodePointRange[];

  private constructor(ranges: readonly CodePointRange[]) {
    this.ranges = ranges;
  }

  /** The set of the given ranges (in any order, overlapping or not), surrogates removed. */
  static of(...ranges: CodePointRange[]): CodePointSet {
    const sorted = ranges.filter(([a, b]) => a <= b).sort((x, y) => x[0] - y[0]);
    const merged: [number, number][] = [];
    for (const [a, b] of sorted) {
      const last = merged[merged.length - 1];
      if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
      else merged.push([a, b]);
    }
    const out: CodePointRange[] = [];
    for (const [a, b] of merged) {
      if (b < SURROGATE_FIRST || a > SURROGATE_LAST) out.push([a, b]);
      else {
        if (a < SURROGATE_FIRST) out.push([a, SURROGATE_FIRST - 1]);
        if (b > SURROGATE_LAST) out.push([SURROGATE_LAST + 1, b]);
      }
    }
    return new CodePointSet(out);
  }

  /** The set of the characters of a string. */
  static ofChars(chars: string): CodePointSet {
    return CodePointSet.of(...Array.from(chars, (c): CodePointRange => [c.codePointAt(0)!, c.codePointAt(0)!]));
  }

  /** Every scalar value. */
  static all(): CodePointSet {
    return CodePointSet.of([0, MAX_CODE_POINT]);
  }

  /** Members of either set. */
  union(other: CodePointSet): CodePointSet {
    return CodePointSet.of(...this.ranges, ...other.ranges);
  }

  /** Scalar values not in this set. */
  complement(): CodePointSet {
    const out: CodePointRange[] = [];
    let next = 0;
    for (const [a, b] of this.ranges) {
      if (a > next) out.push([next, a - 1]);
      next = b + 1;
    }
    if (next <= MAX_CODE_POINT) out.push([next, MAX_CODE_POINT]);
    return CodePointSet.of(...out);
  }

  /** True when `cp` is a member. */
  has(cp: number): boolean {
    return this.ranges.some(([a, b]) => cp >= a && cp <= b);
  }

  /** True when there is no member. */
  get empty(): boolean {
    return this.ranges.length === 0;
  }

  /** A stable text form, for sharing grammar rules between equal classes. */
  key(): string {
    return this.ranges.map(([a, b]) => `${a.toString(16)}-${b.toString(16)}`).join(',');
  }
}

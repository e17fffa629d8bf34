/**
 * UTF-8 encodings of a code point range as a few sequences of byte ranges: every code point in the
 * range is encoded by exactly one sequence, and every byte string a sequence allows is the
 * encoding of a code point in the range. This is how a character class becomes byte terminals.
 */

/** An inclusive range of byte values. */
export type ByteRange = readonly [first: number, last: number];

const LENGTH_LIMITS = [0x7f, 0x7ff, 0xffff];

function encode(cp: number): number[] {
  if (cp < 0x80) return [cp];
  if (cp < 0x800) return [0xc0 | (cp >> 6), 0x80 | (cp & 0x3f)];
  if (cp < 0x10000) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
  return [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
}

/** Byte-range sequences for the code points first..last (no surrogates expected inside). */
export function utf8Sequences(first: number, last: number): ByteRange[][] {
  const out: ByteRange[][] = [];
  const split = (lo: number, hi: number): void => {
    if (lo > hi) return;
    // One sequence can only cover code points of the same encoded length...
    for (const limit of LENGTH_LIMITS) {
      if (lo <= limit && hi > limit) {
        split(lo, limit);
        split(limit + 1, hi);
        return;
      }
    }
    // ...and only when, at each continuation byte, the range either keeps the bytes above it
    // fixed or spans that byte's whole 0x80..0xBF range.
    const length = encode(lo).length;
    for (let i = 1; i < length; i++) {
      const low = (1 << (6 * i)) - 1;
      if ((lo & ~low) === (hi & ~low)) continue;
      if ((lo & low) !== 0) {
        split(lo, lo | low);
        split((lo | low) + 1, hi);
        return;
      }
      if ((hi & low) !== low) {
        split(lo, (hi & ~low) - 1);
        split(hi & ~low, hi);
        return;
      }
    }
    const a = encode(lo);
    const b = encode(hi);
    out.push(a.map((x, i): ByteRange => [x, b[i]]));
  };
  split(first, last);
  return out;
}

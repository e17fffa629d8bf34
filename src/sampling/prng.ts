/**
 * A small seedable pseudo-random generator: xoshiro128** (Blackman & Vigna), 128 bits of state,
 * seeded through splitmix32. Integer-only arithmetic (Math.imul, >>>), so a seed gives the same
 * stream on every machine and every JavaScript engine. Not for cryptography.
 */

/** Largest integer a seed may be (seeds are taken as 53-bit integers, as JSON can carry them). */
const MAX_SEED = Number.MAX_SAFE_INTEGER;

/** One step of splitmix32: advances `state` and returns a well-mixed 32-bit word. */
function splitmix32(state: Uint32Array): number {
  state[0] = (state[0] + 0x9e3779b9) >>> 0;
  let z = state[0];
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

/** xoshiro128**: a fast generator with a period of 2^128 - 1 and good statistical quality. */
export class Xoshiro128 {
  private readonly s = new Uint32Array(4);

  /**
   * @param seed a non-negative safe integer. Both halves of a 53-bit seed feed the state, so
   *   seeds that differ only above bit 32 give different streams.
   */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0 || seed > MAX_SEED) {
      throw new RangeError(`seed must be an integer in [0, ${MAX_SEED}], got ${seed}`);
    }
    const mix = new Uint32Array(1);
    mix[0] = (seed >>> 0) ^ Math.imul(Math.floor(seed / 0x100000000) >>> 0, 0x85ebca6b);
    for (let i = 0; i < 4; i++) this.s[i] = splitmix32(mix);
    // The all-zero state is the one state xoshiro cannot leave.
    if ((this.s[0] | this.s[1] | this.s[2] | this.s[3]) === 0) this.s[0] = 1;
  }

  /**
   * A generator resuming from raw state words (not all zero), bypassing the seed mixing; for
   * checking the stream against the reference implementation.
   */
  static fromState(state: readonly [number, number, number, number]): Xoshiro128 {
    if ((state[0] | state[1] | state[2] | state[3]) === 0) {
      throw new RangeError('xoshiro128 state must not be all zero');
    }
    const g = new Xoshiro128(0);
    g.s.set(state.map((w) => w >>> 0));
    return g;
  }

  /** The next 32-bit unsigned integer of the stream. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** A double uniform in [0, 1) with 53 random bits (two draws). */
  nextFloat(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** A seed drawn from the operating system's entropy source, for runs that gave none. */
export function randomSeed(): number {
  const words = new Uint32Array(2);
  globalThis.crypto.getRandomValues(words);
  // 21 high bits + 32 low bits = a 53-bit safe integer.
  return (words[0] & 0x1fffff) * 0x100000000 + words[1];
}

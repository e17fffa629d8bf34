/**
 * Terminals of a constraint grammar. A lexer is a small byte automaton whose states are plain
 * numbers, so a parser stack can hold "which terminal, how far into it" as two integers and be
 * interned cheaply.
 */

/**
 * A terminal: a state machine over bytes. Every state `step` returns must be live: it accepts, or
 * some continuation of bytes leads to a state that accepts. The grammar relies on this to never
 * steer generation into a dead end.
 */
export interface Lexer {
  /** State before any byte. */
  readonly initial: number;
  /** The state after `byte`, or -1 when the byte cannot come next. */
  step(state: number, byte: number): number;
  /** True when the bytes so far form a complete token. */
  accepts(state: number): boolean;
  /** True when some byte can still follow. */
  hasMore(state: number): boolean;
}

/** A set of byte values. */
export class ByteSet {
  private readonly bits = new Uint32Array(8);

  /** Adds every byte in [lo, hi]. */
  addRange(lo: number, hi: number): this {
    for (let b = lo; b <= hi; b++) this.bits[b >>> 5] |= 1 << (b & 31);
    return this;
  }

  /** Adds each byte of `chars` (ASCII only). */
  addChars(chars: string): this {
    for (let i = 0; i < chars.length; i++) this.addRange(chars.charCodeAt(i), chars.charCodeAt(i));
    return this;
  }

  /** True when `byte` is in the set. */
  has(byte: number): boolean {
    return (this.bits[byte >>> 5] & (1 << (byte & 31))) !== 0;
  }

  /** True when the set holds no byte. */
  get empty(): boolean {
    return this.bits.every((w) => w === 0);
  }

  /** A stable text form, for deduplicating lexers. */
  key(): string {
    return Array.from(this.bits, (w) => w.toString(16)).join('.');
  }
}

/** Exactly one byte out of a set. */
export class ByteSetLexer implements Lexer {
  readonly initial = 0;

  constructor(private readonly set: ByteSet) {}

  step(state: number, byte: number): number {
    return state === 0 && this.set.has(byte) ? 1 : -1;
  }

  accepts(state: number): boolean {
    return state === 1;
  }

  hasMore(state: number): boolean {
    return state === 0;
  }
}

/** An exact, non-empty byte sequence; the state is how many bytes matched. */
export class LiteralLexer implements Lexer {
  readonly initial = 0;

  constructor(readonly bytes: Uint8Array) {
    if (bytes.length === 0) throw new RangeError('a literal terminal needs at least one byte');
  }

  step(state: number, byte: number): number {
    return state < this.bytes.length && this.bytes[state] === byte ? state + 1 : -1;
  }

  accepts(state: number): boolean {
    return state === this.bytes.length;
  }

  hasMore(state: number): boolean {
    return state < this.bytes.length;
  }
}

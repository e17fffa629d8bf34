/**
 * The characters of a JSON string between its quotes, as bytes: valid UTF-8, no raw control
 * characters, only JSON's escapes, and \u escapes that form whole characters (a high surrogate
 * must be followed by a low one). Counts characters for minLength/maxLength and can forbid a set
 * of exact contents (property names already spelled out by an object schema).
 */
import type { Lexer } from './lexer.js';

/** What the string may hold. */
export interface StringLexerOptions {
  /** Fewest characters (code points). */
  minLength: number;
  /** Most characters; Infinity for no bound. */
  maxLength: number;
  /** Raw contents (escaped as written between the quotes) the string must not equal. */
  excluded?: readonly Uint8Array[];
}

// Where inside a character the lexer is.
const BOUNDARY = 0;
const ESCAPE = 1;
const U0 = 2;
const U1 = 3;
const U1_D = 4;
const U2 = 5;
const U2_HIGH = 6;
const U3 = 7;
const U3_HIGH = 8;
const LOW_BACKSLASH = 9;
const LOW_U = 10;
const LOW0 = 11;
const LOW1 = 12;
const LOW2 = 13;
const LOW3 = 14;
const CONT1 = 15;
const CONT2 = 16;
const CONT3 = 17;
const LEAD_E0 = 18;
const LEAD_ED = 19;
const LEAD_F0 = 20;
const LEAD_F4 = 21;
const SUBSTATES = 32;

const SIMPLE_ESCAPES = new Set(Array.from('"\\/bfnrt', (c) => c.charCodeAt(0)));

function isHex(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
}

function isD(b: number): boolean {
  return b === 0x44 || b === 0x64;
}

/** Hex digit value, assuming isHex. */
function hexValue(b: number): number {
  return b <= 0x39 ? b - 0x30 : (b | 0x20) - 0x61 + 10;
}

/** The sub-state after the first byte of a character, or -1. */
function startOfCharacter(b: number): number {
  if (b === 0x22 || b < 0x20) return -1;
  if (b === 0x5c) return ESCAPE;
  if (b < 0x80) return BOUNDARY;
  if (b >= 0xc2 && b <= 0xdf) return CONT1;
  if (b === 0xe0) return LEAD_E0;
  if (b === 0xed) return LEAD_ED;
  if (b >= 0xe1 && b <= 0xef) return CONT2;
  if (b === 0xf0) return LEAD_F0;
  if (b >= 0xf1 && b <= 0xf3) return CONT3;
  if (b === 0xf4) return LEAD_F4;
  return -1;
}

/** The sub-state after a byte inside a character, or -1. */
function insideCharacter(sub: number, b: number): number {
  const cont = b >= 0x80 && b <= 0xbf;
  switch (sub) {
    case ESCAPE:
      if (b === 0x75) return U0;
      return SIMPLE_ESCAPES.has(b) ? BOUNDARY : -1;
    case U0:
      if (!isHex(b)) return -1;
      return isD(b) ? U1_D : U1;
    case U1:
      return isHex(b) ? U2 : -1;
    case U1_D:
      if (!isHex(b)) return -1;
      if (hexValue(b) < 8) return U2;
      return hexValue(b) < 12 ? U2_HIGH : -1; // a lone low surrogate is not a character
    case U2:
      return isHex(b) ? U3 : -1;
    case U2_HIGH:
      return isHex(b) ? U3_HIGH : -1;
    case U3:
      return isHex(b) ? BOUNDARY : -1;
    case U3_HIGH:
      return isHex(b) ? LOW_BACKSLASH : -1;
    case LOW_BACKSLASH:
      return b === 0x5c ? LOW_U : -1;
    case LOW_U:
      return b === 0x75 ? LOW0 : -1;
    case LOW0:
      return isD(b) ? LOW1 : -1;
    case LOW1:
      return isHex(b) && hexValue(b) >= 12 ? LOW2 : -1;
    case LOW2:
      return isHex(b) ? LOW3 : -1;
    case LOW3:
      return isHex(b) ? BOUNDARY : -1;
    case CONT1:
      return cont ? BOUNDARY : -1;
    case CONT2:
      return cont ? CONT1 : -1;
    case CONT3:
      return cont ? CONT2 : -1;
    case LEAD_E0:
      return b >= 0xa0 && b <= 0xbf ? CONT1 : -1;
    case LEAD_ED:
      return b >= 0x80 && b <= 0x9f ? CONT1 : -1;
    case LEAD_F0:
      return b >= 0x90 && b <= 0xbf ? CONT2 : -1;
    case LEAD_F4:
      return b >= 0x80 && b <= 0x8f ? CONT2 : -1;
    default:
      return -1;
  }
}

/** A byte trie of the excluded contents; node 0 is the root. */
class ExclusionTrie {
  readonly children: Map<number, number>[] = [new Map()];
  readonly terminal: boolean[] = [false];

  constructor(words: readonly Uint8Array[]) {
    for (const w of words) {
      let node = 0;
      for (const b of w) {
        let next = this.children[node].get(b);
        if (next === undefined) {
          next = this.children.length;
          this.children.push(new Map());
          this.terminal.push(false);
          this.children[node].set(b, next);
        }
        node = next;
      }
      this.terminal[node] = true;
    }
  }

  /** Node count; also the id of "matches no excluded word any more". */
  get diverged(): number {
    return this.children.length;
  }
}

/**
 * JSON string content. State = (characters so far, capped) x (exclusion trie node) x sub-state,
 * packed into one number.
 */
export class StringLexer implements Lexer {
  readonly initial = 0;
  private readonly min: number;
  private readonly max: number;
  /** Counts at or past this are equivalent (the larger bound that matters). */
  private readonly countCap: number;
  private readonly trie: ExclusionTrie;
  private readonly exclusionStates: number;

  constructor(options: StringLexerOptions) {
    this.min = options.minLength;
    this.max = options.maxLength;
    if (!(this.min >= 0 && this.max >= this.min)) throw new RangeError(`string length bounds [${this.min}, ${this.max}] are empty`);
    const excluded = options.excluded ?? [];
    // With an upper bound an excluded content could be a dead end (full and forbidden).
    if (excluded.length > 0 && this.max !== Infinity) throw new RangeError('excluded contents need an unbounded string');
    this.countCap = this.max === Infinity ? this.min : this.max;
    this.trie = new ExclusionTrie(excluded);
    this.exclusionStates = this.trie.diverged + 1;
  }

  private pack(count: number, node: number, sub: number): number {
    return (count * this.exclusionStates + node) * SUBSTATES + sub;
  }

  step(state: number, byte: number): number {
    const sub = state % SUBSTATES;
    const rest = (state - sub) / SUBSTATES;
    const node = rest % this.exclusionStates;
    let count = (rest - node) / this.exclusionStates;
    let next: number;
    if (sub === BOUNDARY) {
      if (count >= this.max) return -1;
      next = startOfCharacter(byte);
      count = Math.min(count + 1, this.countCap);
    } else {
      next = insideCharacter(sub, byte);
    }
    if (next < 0) return -1;
    const diverged = this.trie.diverged;
    const nextNode = node === diverged ? diverged : (this.trie.children[node].get(byte) ?? diverged);
    return this.pack(count, nextNode, next);
  }

  accepts(state: number): boolean {
    const sub = state % SUBSTATES;
    if (sub !== BOUNDARY) return false;
    const rest = (state - sub) / SUBSTATES;
    const node = rest % this.exclusionStates;
    const count = (rest - node) / this.exclusionStates;
    return count >= this.min && !(node < this.trie.diverged && this.trie.terminal[node]);
  }

  hasMore(state: number): boolean {
    const sub = state % SUBSTATES;
    if (sub !== BOUNDARY) return true;
    const rest = (state - sub) / SUBSTATES;
    const count = (rest - (rest % this.exclusionStates)) / this.exclusionStates;
    return count < this.max;
  }
}

/**
 * A parser for the subset of ECMA-262 regular expressions that JSON Schema patterns use in
 * practice: literals, escapes, classes, '.', groups, alternation and greedy or lazy quantifiers,
 * with '^' and '$' at the ends of top-level alternatives. Patterns are searches, as JSON Schema
 * says: a side without an anchor may have any text there. Back-references, look-around and word
 * boundaries cannot be expressed by a context-free grammar and are refused.
 */
import { CodePointSet, type CodePointRange } from './code-point-set.js';

/** A parsed pattern over code points. */
export type RegexNode =
  | { readonly kind: 'chars'; readonly set: CodePointSet }
  | { readonly kind: 'seq'; readonly items: readonly RegexNode[] }
  | { readonly kind: 'alt'; readonly items: readonly RegexNode[] }
  | { readonly kind: 'repeat'; readonly item: RegexNode; readonly min: number; readonly max: number };

/** Largest repetition count accepted in {n,m}. */
export const MAX_REPEAT = 1000;

/** A pattern this parser does not accept, with the reason and where. */
export class RegexError extends Error {
  constructor(pattern: string, reason: string, offset: number) {
    super(`pattern ${JSON.stringify(pattern)}: ${reason} at offset ${offset}`);
    this.name = 'RegexError';
  }
}

const DIGITS = CodePointSet.of([0x30, 0x39]);
const WORD = CodePointSet.of([0x30, 0x39], [0x41, 0x5a], [0x61, 0x7a], [0x5f, 0x5f]);
const SPACE = CodePointSet.of(
  [0x09, 0x0d],
  [0x20, 0x20],
  [0xa0, 0xa0],
  [0x1680, 0x1680],
  [0x2000, 0x200a],
  [0x2028, 0x2029],
  [0x202f, 0x202f],
  [0x205f, 0x205f],
  [0x3000, 0x3000],
  [0xfeff, 0xfeff],
);
const LINE_TERMINATORS = CodePointSet.of([0x0a, 0x0a], [0x0d, 0x0d], [0x2028, 0x2029]);
const DOT = LINE_TERMINATORS.complement();
const ANY: RegexNode = { kind: 'repeat', item: { kind: 'chars', set: CodePointSet.all() }, min: 0, max: Infinity };
const CONTROL_ESCAPES: Record<string, number> = { t: 0x09, n: 0x0a, r: 0x0d, f: 0x0c, v: 0x0b };
const SYNTAX_CHARS = new Set('^$\\.*+?()[]{}|/-'.split(''));

/** Parses a pattern into a node matching exactly the strings the pattern accepts. */
export function parseRegex(pattern: string): RegexNode {
  return new RegexParser(pattern).parse();
}

class RegexParser {
  private readonly chars: string[];
  private i = 0;

  constructor(private readonly pattern: string) {
    this.chars = Array.from(pattern);
  }

  parse(): RegexNode {
    const branches: RegexNode[] = [];
    for (;;) {
      const anchoredStart = this.eat('^');
      const items = this.sequence(true);
      const anchoredEnd = this.eat('$');
      branches.push(seq([...(anchoredStart ? [] : [ANY]), ...items, ...(anchoredEnd ? [] : [ANY])]));
      if (!this.eat('|')) break;
    }
    if (!this.done()) this.fail(`unmatched ')'`);
    return branches.length === 1 ? branches[0] : { kind: 'alt', items: branches };
  }

  private fail(reason: string): never {
    throw new RegexError(this.pattern, reason, this.i);
  }

  private done(): boolean {
    return this.i >= this.chars.length;
  }

  private peek(ahead = 0): string | undefined {
    return this.chars[this.i + ahead];
  }

  private eat(c: string): boolean {
    if (this.chars[this.i] !== c) return false;
    this.i++;
    return true;
  }

  private next(): string {
    if (this.done()) this.fail('unexpected end');
    return this.chars[this.i++];
  }

  /** Items up to '|', ')' or the end (at top level also up to a final '$'). */
  private sequence(topLevel: boolean): RegexNode[] {
    const items: RegexNode[] = [];
    while (!this.done()) {
      const c = this.peek();
      if (c === '|' || c === ')') break;
      if (topLevel && c === '$' && (this.i + 1 === this.chars.length || this.peek(1) === '|')) break;
      items.push(this.quantified(this.atom()));
    }
    return items;
  }

  private alternation(): RegexNode {
    const branches = [seq(this.sequence(false))];
    while (this.eat('|')) branches.push(seq(this.sequence(false)));
    return branches.length === 1 ? branches[0] : { kind: 'alt', items: branches };
  }

  private atom(): RegexNode {
    const at = this.i;
    const c = this.next();
    switch (c) {
      case '(':
        return this.group();
      case '[':
        return { kind: 'chars', set: this.charClass() };
      case '.':
        return { kind: 'chars', set: DOT };
      case '\\':
        return { kind: 'chars', set: this.escape(false) };
      case '^':
      case '$':
        this.i = at;
        return this.fail(`'${c}' inside the pattern is not supported`);
      case '*':
      case '+':
      case '?':
        this.i = at;
        return this.fail('nothing to repeat');
      case '{':
        if (this.quantifierAhead(at)) {
          this.i = at;
          this.fail('nothing to repeat');
        }
        return literal(c);
      default:
        return literal(c);
    }
  }

  private group(): RegexNode {
    if (this.eat('?')) {
      if (this.eat(':')) {
        // non-capturing group
      } else if (this.peek() === '<' && this.peek(1) !== '=' && this.peek(1) !== '!') {
        this.i++;
        while (!this.done() && this.peek() !== '>') this.i++;
        if (!this.eat('>')) this.fail('unterminated group name');
      } else {
        this.fail('look-around assertions are not supported');
      }
    }
    const inner = this.alternation();
    if (!this.eat(')')) this.fail(`missing ')'`);
    return inner;
  }

  /** True when the text from `at` (a '{') is a {n}, {n,} or {n,m} quantifier. */
  private quantifierAhead(at: number): boolean {
    return /^\{\d+(,\d*)?\}/.test(this.chars.slice(at, at + 24).join(''));
  }

  private quantified(item: RegexNode): RegexNode {
    let min: number;
    let max: number;
    const c = this.peek();
    if (c === '*') [min, max] = [0, Infinity];
    else if (c === '+') [min, max] = [1, Infinity];
    else if (c === '?') [min, max] = [0, 1];
    else if (c === '{' && this.quantifierAhead(this.i)) {
      const text = this.chars.slice(this.i, this.i + 24).join('');
      const m = /^\{(\d+)(,(\d*))?\}/.exec(text)!;
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      if (max < min) this.fail('numbers out of order in {} quantifier');
      if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) this.fail(`repetition counts above ${MAX_REPEAT} are not supported`);
      this.i += m[0].length - 1;
    } else {
      return item;
    }
    this.i++;
    this.eat('?'); // lazy or greedy: the same set of strings
    if (this.peek() === '*' || this.peek() === '+' || this.peek() === '?' || (this.peek() === '{' && this.quantifierAhead(this.i))) {
      this.fail('nothing to repeat');
    }
    return { kind: 'repeat', item, min, max };
  }

  /** The members of an escape after '\'; `inClass` makes \b a backspace. */
  private escape(inClass: boolean): CodePointSet {
    const at = this.i;
    const c = this.next();
    switch (c) {
      case 'd':
        return DIGITS;
      case 'D':
        return DIGITS.complement();
      case 'w':
        return WORD;
      case 'W':
        return WORD.complement();
      case 's':
        return SPACE;
      case 'S':
        return SPACE.complement();
      case 'x':
        return single(this.hex(2));
      case 'u':
        return single(this.hex(4));
      case '0':
        if (this.peek() !== undefined && /\d/.test(this.peek()!)) this.fail('octal escapes are not supported');
        return single(0);
      case 'b':
        if (inClass) return single(0x08);
        this.i = at;
        return this.fail('word boundaries are not supported');
      case 'B':
        this.i = at;
        return this.fail('word boundaries are not supported');
      default:
        break;
    }
    if (c in CONTROL_ESCAPES) return single(CONTROL_ESCAPES[c]);
    if (/[1-9]/.test(c) || c === 'k') {
      this.i = at;
      this.fail('back-references are not supported');
    }
    if (SYNTAX_CHARS.has(c) || !/[A-Za-z0-9_]/.test(c)) return single(c.codePointAt(0)!);
    this.i = at;
    return this.fail(`escape \\${c} is not supported`);
  }

  private hex(digits: number): number {
    const text = this.chars.slice(this.i, this.i + digits).join('');
    if (!new RegExp(`^[0-9A-Fa-f]{${digits}}$`).test(text)) this.fail('malformed hexadecimal escape');
    this.i += digits;
    return parseInt(text, 16);
  }

  /** A class after '['. */
  private charClass(): CodePointSet {
    const negated = this.eat('^');
    const ranges: CodePointRange[] = [];
    let set = CodePointSet.of();
    while (!this.eat(']')) {
      if (this.done()) this.fail(`missing ']'`);
      const first = this.classAtom();
      if (this.peek() === '-' && this.peek(1) !== ']' && this.peek(1) !== undefined) {
        this.i++;
        const last = this.classAtom();
        if (typeof first !== 'number' || typeof last !== 'number') this.fail('a class escape cannot bound a range');
        if (last < first) this.fail('range out of order in character class');
        ranges.push([first, last]);
      } else if (typeof first === 'number') {
        ranges.push([first, first]);
      } else {
        set = set.union(first);
      }
    }
    set = set.union(CodePointSet.of(...ranges));
    return negated ? set.complement() : set;
  }

  /** One class member: a code point, or a set for \d, \w, \s and their negations. */
  private classAtom(): number | CodePointSet {
    const c = this.next();
    if (c !== '\\') return c.codePointAt(0)!;
    const set = this.escape(true);
    return set.ranges.length === 1 && set.ranges[0][0] === set.ranges[0][1] ? set.ranges[0][0] : set;
  }
}

function single(cp: number): CodePointSet {
  return CodePointSet.of([cp, cp]);
}

function literal(c: string): RegexNode {
  return { kind: 'chars', set: CodePointSet.ofChars(c) };
}

function seq(items: RegexNode[]): RegexNode {
  return items.length === 1 ? items[0] : { kind: 'seq', items };
}

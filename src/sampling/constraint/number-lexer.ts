/**
 * JSON numbers with bounded digit counts (at most 16 integer digits, 16 fraction digits and a
 * 3-digit exponent, so generation cannot run on forever), optionally integers only and optionally
 * inside [minimum, maximum]. With bounds, every prefix is checked to still have a completion in
 * range, so a leading '-' is refused when the minimum is not negative, "9" is refused under
 * maximum 5, and so on; exponents are then not offered, and negative zero is not produced.
 */
import { ceilDecimal, compareDecimal, decimalOfNumber, floorDecimal, parseDecimal, pow10, type Decimal } from './decimal.js';
import type { Lexer } from './lexer.js';

/** Most digits before the decimal point. */
export const MAX_INTEGER_DIGITS = 16;
/** Most digits after the decimal point. */
export const MAX_FRACTION_DIGITS = 16;
/** Most exponent digits. */
export const MAX_EXPONENT_DIGITS = 3;

/** Schema bounds on a number. */
export interface NumberBounds {
  minimum?: number;
  exclusiveMinimum?: number;
  maximum?: number;
  exclusiveMaximum?: number;
}

/** What kind of number the lexer produces. */
export interface NumberLexerOptions {
  integer: boolean;
  bounds?: NumberBounds;
}

interface Limit {
  value: Decimal;
  exclusive: boolean;
}

interface Range {
  lo?: Limit;
  hi?: Limit;
}

/** A syntactically valid prefix of a JSON number, split into its parts. */
interface NumberParts {
  negative: boolean;
  integer: string;
  /** Digits after '.', or undefined before any '.'. */
  fraction?: string;
  /** Exponent digits, or undefined before any 'e'. */
  exponent?: string;
}

/** Marks interned prefixes whose every completion is in range. */
const FREE = 'F';
const NUMBER_BYTES = Array.from('0123456789.eE+-', (c) => c.charCodeAt(0));
/** The grid fractions live on: the value of the last allowed fraction digit. */
const FRACTION_STEP: Decimal = { m: 1n, e: -MAX_FRACTION_DIGITS };

function isDigit(c: string): boolean {
  return c >= '0' && c <= '9';
}

/** Splits a number prefix into parts, or undefined when no JSON number starts this way. */
function parseNumberPrefix(text: string): NumberParts | undefined {
  let i = 0;
  const negative = text[0] === '-';
  if (negative) i++;
  let integer = '';
  while (i < text.length && isDigit(text[i])) integer += text[i++];
  if (integer.length > MAX_INTEGER_DIGITS || (integer.length > 1 && integer[0] === '0')) return undefined;
  const parts: NumberParts = { negative, integer };
  if (i < text.length && text[i] === '.') {
    if (integer === '') return undefined;
    i++;
    let fraction = '';
    while (i < text.length && isDigit(text[i])) fraction += text[i++];
    if (fraction.length > MAX_FRACTION_DIGITS) return undefined;
    parts.fraction = fraction;
  }
  if (i < text.length && (text[i] === 'e' || text[i] === 'E')) {
    if (integer === '' || parts.fraction === '') return undefined;
    i++;
    if (i < text.length && (text[i] === '+' || text[i] === '-')) i++;
    let exponent = '';
    while (i < text.length && isDigit(text[i])) exponent += text[i++];
    if (exponent.length > MAX_EXPONENT_DIGITS) return undefined;
    parts.exponent = exponent;
  }
  return i === text.length ? parts : undefined;
}

function isComplete(p: NumberParts): boolean {
  return p.integer !== '' && p.fraction !== '' && p.exponent !== '';
}

/** Same syntax status as `text`, with digits folded so unbounded numbers have few states. */
function foldDigits(text: string): string {
  let out = '';
  let seenIntegerDigit = false;
  let afterPoint = false;
  for (const c of text) {
    if (!isDigit(c)) {
      if (c === '.' || c === 'e' || c === 'E') afterPoint = true;
      out += c === 'E' ? 'e' : c;
      continue;
    }
    // A leading zero matters (nothing may follow it); other digits only count.
    if (afterPoint || seenIntegerDigit) out += '1';
    else out += c === '0' ? '0' : '1';
    if (!afterPoint) seenIntegerDigit = true;
  }
  return out;
}

function add(a: Decimal, b: Decimal): Decimal {
  const e = Math.min(a.e, b.e);
  return { m: a.m * pow10(a.e - e) + b.m * pow10(b.e - e), e };
}

function sub(a: Decimal, b: Decimal): Decimal {
  return add(a, { m: -b.m, e: b.e });
}

function maxDecimal(a: Decimal, b: Decimal): Decimal {
  return compareDecimal(a, b) >= 0 ? a : b;
}

function above(x: Decimal, lo: Limit | undefined): boolean {
  if (!lo) return true;
  const c = compareDecimal(x, lo.value);
  return c > 0 || (c === 0 && !lo.exclusive);
}

function below(x: Decimal, hi: Limit | undefined): boolean {
  if (!hi) return true;
  const c = compareDecimal(x, hi.value);
  return c < 0 || (c === 0 && !hi.exclusive);
}

/** Of two lower (or upper) limits, the one that lets fewer values through. */
function tighter(a: Limit, b: Limit, lower: boolean): Limit {
  const c = compareDecimal(a.value, b.value);
  if (c !== 0) return (lower ? c > 0 : c < 0) ? a : b;
  return a.exclusive ? a : b;
}

/** Bounds as limits; integers get inclusive integer limits so interval tests stay exact. */
function toRange(bounds: NumberBounds, integer: boolean): Range {
  const pick = (incl: number | undefined, excl: number | undefined, lower: boolean): Limit | undefined => {
    const cands: Limit[] = [];
    if (incl !== undefined) cands.push({ value: decimalOfNumber(incl), exclusive: false });
    if (excl !== undefined) cands.push({ value: decimalOfNumber(excl), exclusive: true });
    if (cands.length === 0) return undefined;
    const limit = cands.reduce((a, b) => tighter(a, b, lower));
    if (!integer) return limit;
    const v = limit.value;
    const whole = lower
      ? limit.exclusive
        ? floorDecimal(v) + 1n
        : ceilDecimal(v)
      : limit.exclusive
        ? ceilDecimal(v) - 1n
        : floorDecimal(v);
    return { value: { m: whole, e: 0 }, exclusive: false };
  };
  return { lo: pick(bounds.minimum, bounds.exclusiveMinimum, true), hi: pick(bounds.maximum, bounds.exclusiveMaximum, false) };
}

/**
 * JSON number lexer. States are interned prefix texts: exact ones while bounds still decide what
 * may follow, digit-folded ones otherwise (where only the shape of the prefix matters).
 */
export class NumberLexer implements Lexer {
  readonly initial = 0;
  private readonly texts: string[] = [''];
  private readonly ids = new Map<string, number>([['', 0]]);
  private readonly more: (boolean | undefined)[] = [];
  private readonly range: Range | undefined;
  private readonly integer: boolean;

  constructor(options: NumberLexerOptions) {
    this.integer = options.integer;
    const b = options.bounds;
    const bounded = b && (b.minimum ?? b.maximum ?? b.exclusiveMinimum ?? b.exclusiveMaximum) !== undefined;
    this.range = bounded ? toRange(b, this.integer) : undefined;
    const { lo, hi } = this.range ?? {};
    if (lo && hi) {
      const order = compareDecimal(lo.value, hi.value);
      if (order > 0 || (order === 0 && (lo.exclusive || hi.exclusive))) {
        throw new RangeError(`no ${this.integer ? 'integer' : 'number'} lies between the minimum and the maximum`);
      }
    }
    if (this.range && !this.feasible(parseNumberPrefix('')!)) {
      throw new RangeError(`no ${this.integer ? 'integer' : 'number'} of at most ${MAX_INTEGER_DIGITS} digits satisfies the bounds`);
    }
  }

  step(state: number, byte: number): number {
    if (!NUMBER_BYTES.includes(byte)) return -1;
    const known = this.texts[state];
    // Once every completion is in range ("F" prefix), only the shape of the rest matters.
    const free = !this.range || known.startsWith(FREE);
    const text = (free && this.range ? known.slice(FREE.length) : known) + String.fromCharCode(byte);
    const parts = parseNumberPrefix(text);
    if (!parts) return -1;
    if (this.integer && (parts.fraction !== undefined || parts.exponent !== undefined)) return -1;
    if (!this.range) return this.intern(foldDigits(text));
    if (parts.exponent !== undefined) return -1;
    if (free) return this.intern(FREE + foldDigits(text));
    if (!this.feasible(parts)) return -1;
    return this.intern(this.allInRange(parts) ? FREE + foldDigits(text) : text);
  }

  accepts(state: number): boolean {
    const known = this.texts[state];
    const free = known.startsWith(FREE);
    const text = free ? known.slice(FREE.length) : known;
    const parts = parseNumberPrefix(text);
    if (!parts || !isComplete(parts)) return false;
    if (!this.range || free) return true;
    const value = parseDecimal(text)!;
    if (value.m === 0n && parts.negative) return false;
    return above(value, this.range.lo) && below(value, this.range.hi);
  }

  hasMore(state: number): boolean {
    let known = this.more[state];
    if (known === undefined) {
      known = NUMBER_BYTES.some((b) => this.step(state, b) >= 0);
      this.more[state] = known;
    }
    return known;
  }

  private intern(text: string): number {
    let id = this.ids.get(text);
    if (id === undefined) {
      id = this.texts.length;
      this.texts.push(text);
      this.ids.set(text, id);
    }
    return id;
  }

  /** True when some completion of the prefix lies inside the bounds. */
  private feasible(p: NumberParts): boolean {
    const range = this.range!;
    const unit: Decimal = this.integer ? { m: 1n, e: 0 } : FRACTION_STEP;
    // Before the first character the sign is still open.
    const signs = p.integer === '' && !p.negative ? [false, true] : [p.negative];
    for (const negative of signs) {
      for (const [a0, b] of this.magnitudes(p, unit)) {
        // Negative numbers must not be zero: "-0" would only restate 0.
        const a = negative ? maxDecimal(a0, unit) : a0;
        if (compareDecimal(a, b) > 0) continue;
        const lo = negative ? { m: -b.m, e: b.e } : a;
        const hi = negative ? { m: -a.m, e: a.e } : b;
        if (above(hi, range.lo) && below(lo, range.hi)) return true;
      }
    }
    return false;
  }

  /** True when every completion of the prefix is in range (and none is a negative zero). */
  private allInRange(p: NumberParts): boolean {
    if (p.integer === '') return false;
    if (p.negative && /^[0.]*$/.test(p.integer + (p.fraction ?? ''))) return false;
    const range = this.range!;
    const unit: Decimal = this.integer ? { m: 1n, e: 0 } : FRACTION_STEP;
    const intervals = this.magnitudes(p, unit);
    const least = intervals[0][0];
    const most = intervals[intervals.length - 1][1];
    const lo = p.negative ? { m: -most.m, e: most.e } : least;
    const hi = p.negative ? { m: -least.m, e: least.e } : most;
    return above(lo, range.lo) && below(hi, range.hi);
  }

  /** Closed intervals covering every magnitude a completion of the prefix can have. */
  private magnitudes(p: NumberParts, unit: Decimal): [Decimal, Decimal][] {
    const zero: Decimal = { m: 0n, e: 0 };
    if (p.integer === '') return [[zero, sub({ m: 1n, e: MAX_INTEGER_DIGITS }, unit)]];
    const whole = BigInt(p.integer);
    if (p.fraction !== undefined) {
      const f = p.fraction.length;
      const start: Decimal = { m: BigInt(p.integer + p.fraction), e: -f };
      if (f === MAX_FRACTION_DIGITS) return [[start, start]];
      return [[start, sub(add(start, { m: 1n, e: -f }), unit)]];
    }
    if (p.integer === '0') return this.integer ? [[zero, zero]] : [[zero, sub({ m: 1n, e: 0 }, unit)]];
    const out: [Decimal, Decimal][] = [];
    for (let k = 0; p.integer.length + k <= MAX_INTEGER_DIGITS; k++) {
      const lo: Decimal = { m: whole * pow10(k), e: 0 };
      const hi = this.integer && k === 0 ? lo : sub({ m: (whole + 1n) * pow10(k), e: 0 }, unit);
      out.push([lo, hi]);
    }
    return out;
  }
}

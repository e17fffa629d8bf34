/**
 * Splits text into pre-tokenizer words exactly as llama.cpp's unicode_regex_split does. Each
 * regex refines the pieces left by the previous one; matched spans and the gaps between them
 * both become pieces. llama.cpp runs its regexes in one of three ways, and so do we:
 *  - the GPT-2 and Llama-3 patterns by hand-written scanners (custom-split.ts);
 *  - patterns with \p{..} classes over a "collapsed" text where every non-ASCII code point is
 *    replaced by one byte naming its category (so \p{L} becomes [\xD2A-Za-z]);
 *  - other patterns over the code points themselves, non-ASCII whitespace turned into \v.
 * Reproducing the collapsing (rather than using JavaScript's own \p{..}) keeps llama.cpp's
 * quirks, e.g. ASCII '~' is neither \p{P} nor \p{S} there.
 */
import { CpFlag, CATEGORY_MASK, cpFlags, codePoints } from './unicode.js';
import { customSplitter } from './custom-split.js';
import { CairnError } from '../util/errors.js';

const CATEGORY_ESCAPES: Readonly<Record<string, number>> = {
  '\\p{N}': CpFlag.NUMBER,
  '\\p{L}': CpFlag.LETTER,
  '\\p{P}': CpFlag.PUNCTUATION,
  '\\p{M}': CpFlag.MARK,
  '\\p{S}': CpFlag.SYMBOL,
  '\\p{Lu}': CpFlag.LETTER,
  '\\p{Ll}': CpFlag.LETTER,
  '\\p{Lt}': CpFlag.LETTER,
  '\\p{Lm}': CpFlag.LETTER,
  '\\p{Lo}': CpFlag.LETTER,
};

/** The stand-in character for each category in collapsed text. */
const COLLAPSED_CHAR: ReadonlyMap<number, string> = new Map([
  [CpFlag.NUMBER, '\u00d1'],
  [CpFlag.LETTER, '\u00d2'],
  [CpFlag.PUNCTUATION, '\u00d3'],
  [CpFlag.MARK, '\u00d4'],
  [CpFlag.SYMBOL, '\u00d5'],
]);
const COLLAPSED_OTHER = '\u00d0';
const COLLAPSED_SPACE = '\u000b';

/** Class contents each category stands for in a collapsed regex: its stand-in plus its ASCII members. */
const COLLAPSED_CLASS: ReadonlyMap<number, string> = new Map([
  [CpFlag.NUMBER, '\u00d10-9'],
  [CpFlag.LETTER, '\u00d2A-Za-z'],
  [CpFlag.PUNCTUATION, '\u00d3!-#%-*,-/:-;?-@\\[-\\]_\\{\\}'],
  [CpFlag.MARK, '\u00d4'],
  [CpFlag.SYMBOL, '\u00d5\\$\\+<->\\^`\\|'],
]);

// ECMAScript \s as std::regex sees it: ASCII only (non-ASCII whitespace arrives as \v).
const ASCII_SPACE_CLASS_BODY = '\\t\\n\\v\\f\\r ';

function usesCategories(expr: string): boolean {
  return Object.keys(CATEGORY_ESCAPES).some((k) => expr.includes(k));
}

/** Rewrites \p{..} into collapsed classes, tracking [..] the same naive way llama.cpp does. */
function collapseRegex(expr: string): string {
  let out = '';
  let inside = false;
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i];
    if (c === '[' && (i === 0 || expr[i - 1] !== '\\')) {
      out += '[';
      inside = true;
      continue;
    }
    if (inside && c === ']' && expr[i - 1] !== '\\') {
      out += ']';
      inside = false;
      continue;
    }
    if (c === '\\' && expr[i + 1] === 'p' && expr[i + 2] === '{') {
      const close = expr.indexOf('}', i + 3);
      if (close !== -1 && close <= i + 10) {
        const flag = CATEGORY_ESCAPES[expr.slice(i, close + 1)];
        if (flag !== undefined) {
          const body = COLLAPSED_CLASS.get(flag)!;
          out += inside ? body : `[${body}]`;
          i = close;
          continue;
        }
      }
    }
    out += c;
  }
  return out;
}

/** Replaces \s and \S with their ASCII-only meaning, inside and outside classes. */
function asciiSpaceRegex(expr: string): string {
  let out = '';
  let inside = false;
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i];
    if (c === '\\') {
      const n = expr[i + 1];
      if (n === 's') out += inside ? ASCII_SPACE_CLASS_BODY : `[${ASCII_SPACE_CLASS_BODY}]`;
      else if (n === 'S' && !inside) out += `[^${ASCII_SPACE_CLASS_BODY}]`;
      else if (n === 'S') throw new CairnError('TOKENIZER_UNSUPPORTED', `pre-tokenizer regex uses \\S inside a class: ${expr}`);
      else out += c + (n ?? '');
      i++;
      continue;
    }
    if (c === '[' && !inside) inside = true;
    else if (c === ']' && inside) inside = false;
    out += c;
  }
  return out;
}

interface CompiledRegex {
  readonly collapsed: boolean;
  readonly re: RegExp;
}

const compiled = new Map<string, CompiledRegex>();

/** Compiles one llama.cpp pre-tokenizer regex for this engine (cached). */
export function compileSplitRegex(expr: string): CompiledRegex {
  let c = compiled.get(expr);
  if (c) return c;
  try {
    c = usesCategories(expr)
      ? { collapsed: true, re: new RegExp(collapseRegex(expr), 'g') }
      : { collapsed: false, re: new RegExp(asciiSpaceRegex(expr), 'gu') };
  } catch (err) {
    if (err instanceof CairnError) throw err;
    throw new CairnError('TOKENIZER_UNSUPPORTED', `pre-tokenizer regex cannot be compiled: ${expr} (${String(err)})`);
  }
  compiled.set(expr, c);
  return c;
}

function collapsedText(cps: readonly number[]): string {
  let s = '';
  for (const cp of cps) {
    if (cp < 128) {
      s += String.fromCharCode(cp);
      continue;
    }
    const flags = cpFlags(cp);
    if (flags & CpFlag.WHITESPACE) s += COLLAPSED_SPACE;
    else s += COLLAPSED_CHAR.get(flags & CATEGORY_MASK) ?? COLLAPSED_OTHER;
  }
  return s;
}

function wideText(cps: readonly number[]): string {
  let s = '';
  for (const cp of cps) {
    s += cp > 0x7f && cpFlags(cp) & CpFlag.WHITESPACE ? COLLAPSED_SPACE : String.fromCodePoint(cp);
  }
  return s;
}

/** A string searched by a regex, with maps between code point indices and string units. */
interface SearchText {
  readonly text: string;
  /** Unit offset of code point i (i may equal the code point count). */
  unitOf(cp: number): number;
  /** Code point index at a unit offset that starts a code point. */
  cpOf(unit: number): number;
}

function oneUnitPerCodePoint(text: string): SearchText {
  return { text, unitOf: (cp) => cp, cpOf: (unit) => unit };
}

function withSurrogates(text: string, cps: readonly number[]): SearchText {
  const unitOf = new Int32Array(cps.length + 1);
  const cpOf = new Int32Array(text.length + 1);
  let u = 0;
  for (let i = 0; i < cps.length; i++) {
    unitOf[i] = u;
    cpOf[u] = i;
    u += cps[i] > 0xffff ? 2 : 1;
  }
  unitOf[cps.length] = u;
  cpOf[u] = cps.length;
  return { text, unitOf: (cp) => unitOf[cp], cpOf: (unit) => cpOf[unit] };
}

/** Applies a regex to each piece (lengths in code points); matches and the gaps between them become pieces. */
function splitWithRegex(re: RegExp, view: SearchText, pieces: readonly number[]): number[] {
  const out: number[] = [];
  let startCp = 0;
  for (const len of pieces) {
    const base = view.unitOf(startCp);
    const seg = view.text.slice(base, view.unitOf(startCp + len));
    let prevEnd = 0;
    re.lastIndex = 0;
    for (let m = re.exec(seg); m !== null; m = re.exec(seg)) {
      if (m[0].length === 0) {
        // An empty match yields no piece; step over one code point so the search moves on.
        const code = seg.charCodeAt(re.lastIndex);
        re.lastIndex += code >= 0xd800 && code <= 0xdbff ? 2 : 1;
        continue;
      }
      const mStart = view.cpOf(base + m.index) - startCp;
      const mEnd = view.cpOf(base + m.index + m[0].length) - startCp;
      if (mStart > prevEnd) out.push(mStart - prevEnd);
      out.push(mEnd - mStart);
      prevEnd = mEnd;
    }
    if (prevEnd < len) out.push(len - prevEnd);
    startCp += len;
  }
  return out;
}

/**
 * Cuts `text` into words with llama.cpp's semantics for the given regex list. Returns the words
 * as strings (not yet byte-level encoded).
 */
export function regexSplit(text: string, exprs: readonly string[]): string[] {
  const cps = codePoints(text);
  if (cps.length === 0) return [];
  let pieces: number[] = [cps.length];
  let collapsed: SearchText | undefined;
  let wide: SearchText | undefined;
  for (const expr of exprs) {
    const custom = customSplitter(expr);
    if (custom) {
      pieces = custom(cps, pieces);
      continue;
    }
    const { collapsed: useCollapsed, re } = compileSplitRegex(expr);
    if (useCollapsed) {
      collapsed ??= oneUnitPerCodePoint(collapsedText(cps));
      pieces = splitWithRegex(re, collapsed, pieces);
    } else {
      wide ??= withSurrogates(wideText(cps), cps);
      pieces = splitWithRegex(re, wide, pieces);
    }
  }
  const original = withSurrogates(text, cps);
  const words: string[] = [];
  let at = 0;
  for (const len of pieces) {
    words.push(text.slice(original.unitOf(at), original.unitOf(at + len)));
    at += len;
  }
  return words;
}

/**
 * Code point classes as llama.cpp's tokenizers see them: one general-category flag per code point
 * (letter, number, mark, punctuation, symbol, separator, control, undefined) plus a White_Space
 * bit. llama.cpp ships its own tables; we derive the same classes from the JavaScript engine's
 * Unicode property escapes, so the two agree except where their Unicode versions differ.
 */

/** Category flags with llama.cpp's bit values (unicode.h). */
export const CpFlag = {
  UNDEFINED: 0x0001,
  NUMBER: 0x0002,
  LETTER: 0x0004,
  SEPARATOR: 0x0008,
  MARK: 0x0010,
  PUNCTUATION: 0x0020,
  SYMBOL: 0x0040,
  CONTROL: 0x0080,
  /** Not a category: the code point has the White_Space property. */
  WHITESPACE: 0x0100,
} as const;

/** The category bits of a flag word (without WHITESPACE). */
export const CATEGORY_MASK = 0x00ff;

const MAX_CODEPOINT = 0x110000;

// The White_Space property list that llama.cpp uses; it differs from JavaScript's \s, which
// lacks U+0085 and adds U+FEFF.
const WHITESPACE = new Set<number>([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005,
  0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

const CATEGORY_TESTS: ReadonlyArray<readonly [RegExp, number]> = [
  [/\p{L}/u, CpFlag.LETTER],
  [/\p{N}/u, CpFlag.NUMBER],
  [/\p{M}/u, CpFlag.MARK],
  [/\p{P}/u, CpFlag.PUNCTUATION],
  [/\p{S}/u, CpFlag.SYMBOL],
  [/\p{Z}/u, CpFlag.SEPARATOR],
  [/[\p{Cc}\p{Cf}\p{Co}\p{Cs}]/u, CpFlag.CONTROL],
];

// Filled lazily: 0 means "not computed yet" (every real entry has a category bit).
const flagCache = new Uint16Array(MAX_CODEPOINT);

function computeFlags(cp: number): number {
  const ch = String.fromCodePoint(cp);
  let flags: number = CpFlag.UNDEFINED;
  for (const [re, flag] of CATEGORY_TESTS) {
    if (re.test(ch)) {
      flags = flag;
      break;
    }
  }
  if (WHITESPACE.has(cp)) flags |= CpFlag.WHITESPACE;
  return flags;
}

/** Flags of a code point; 0 for values outside the Unicode range (like llama.cpp's "no flags"). */
export function cpFlags(cp: number): number {
  if (cp < 0 || cp >= MAX_CODEPOINT) return 0;
  let f = flagCache[cp];
  if (f === 0) {
    f = computeFlags(cp);
    flagCache[cp] = f;
  }
  return f;
}

/** True for code points with the White_Space property. */
export function isWhitespaceCp(cp: number): boolean {
  return WHITESPACE.has(cp);
}

/** The code points of a string. */
export function codePoints(text: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < text.length; ) {
    const cp = text.codePointAt(i)!;
    out.push(cp);
    i += cp > 0xffff ? 2 : 1;
  }
  return out;
}

/**
 * The string with lone surrogates replaced by U+FFFD: llama.cpp reads UTF-8, where a lone
 * surrogate cannot exist, and Node encodes one as the bytes of U+FFFD.
 */
export function wellFormed(text: string): string {
  const s = text as string & { toWellFormed?: () => string };
  if (typeof s.toWellFormed === 'function') return s.toWellFormed();
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

const encoder = new TextEncoder();

/** UTF-8 bytes of a string. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Length in UTF-8 bytes of one code point. */
export function utf8Length(cp: number): number {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/** Simple lowercase mapping of one code point (the first code point of the full mapping). */
export function toLowerCp(cp: number): number {
  if (cp < 0x80) return cp >= 0x41 && cp <= 0x5a ? cp + 32 : cp;
  return String.fromCodePoint(cp).toLowerCase().codePointAt(0)!;
}

/**
 * The first code point of a code point's canonical decomposition: llama.cpp's "NFD" keeps only
 * that one (so "é" becomes "e" and the accent is dropped, not moved).
 */
export function nfdFirstCp(cp: number): number {
  if (cp < 0xc0) return cp;
  return String.fromCodePoint(cp).normalize('NFD').codePointAt(0)!;
}

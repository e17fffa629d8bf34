/**
 * Hand-written scanners for the two most used pre-tokenizer patterns (GPT-2's and Llama 3's).
 * llama.cpp runs these patterns with scanners instead of a regex engine, and their few quirks
 * (for example how a trailing run of whitespace is cut) are what the token ids depend on, so we
 * scan the same way. A scanner refines pieces of code points, as a regex pass would.
 */
import { CpFlag, cpFlags, toLowerCp } from './unicode.js';

/** Refines pieces (lengths in code points) of `cps` into smaller pieces. */
export type PieceSplitter = (cps: readonly number[], pieces: readonly number[]) => number[];

const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const LLAMA3_PATTERNS = [
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];

const APOSTROPHE = 0x27;
const SPACE = 0x20;
const CR = 0x0d;
const LF = 0x0a;
const OUT_OF_RANGE = -1;
const WORDISH = CpFlag.WHITESPACE | CpFlag.LETTER | CpFlag.NUMBER;

/** Scanner state for one piece: accessors that see nothing outside [ini, end). */
class PieceScanner {
  private prevEnd: number;

  constructor(
    private readonly cps: readonly number[],
    readonly ini: number,
    readonly end: number,
    private readonly out: number[],
  ) {
    this.prevEnd = ini;
  }

  cp(pos: number): number {
    return pos >= this.ini && pos < this.end ? this.cps[pos] : OUT_OF_RANGE;
  }

  flags(pos: number): number {
    return pos >= this.ini && pos < this.end ? cpFlags(this.cps[pos]) : 0;
  }

  /** Ends the current word at `end`; returns its length. */
  cut(end: number): number {
    const len = end - this.prevEnd;
    if (len > 0) this.out.push(len);
    this.prevEnd = end;
    return len;
  }

  /** Length of a contraction ('s 't 're 've 'm 'll 'd) starting at pos, or 0. */
  contraction(pos: number, lower: boolean): number {
    if (this.cp(pos) !== APOSTROPHE || pos + 1 >= this.end) return 0;
    const fold = (c: number): number => (lower ? toLowerCp(c) : c);
    const a = fold(this.cp(pos + 1));
    if (a === 0x73 || a === 0x74 || a === 0x6d || a === 0x64) return 2; // s t m d
    if (pos + 2 >= this.end) return 0;
    const b = fold(this.cp(pos + 2));
    const isRe = a === 0x72 && b === 0x65;
    const isVe = a === 0x76 && b === 0x65;
    const isLl = a === 0x6c && b === 0x6c;
    return isRe || isVe || isLl ? 3 : 0;
  }

  /** Number of whitespace code points from pos. */
  whitespaceRun(pos: number): number {
    let n = 0;
    while (this.flags(pos + n) & CpFlag.WHITESPACE) n++;
    return n;
  }
}

function eachPiece(cps: readonly number[], pieces: readonly number[], scan: (s: PieceScanner) => void): number[] {
  const out: number[] = [];
  let start = 0;
  for (const len of pieces) {
    scan(new PieceScanner(cps, start, start + len, out));
    start += len;
  }
  return out;
}

/** Consumes a run of code points whose flags satisfy `inClass`, starting at pos; returns the end. */
function runEnd(s: PieceScanner, pos: number, inClass: (f: number) => boolean): number {
  while (inClass(s.flags(pos))) pos++;
  return pos;
}

const isLetter = (f: number): boolean => (f & CpFlag.LETTER) !== 0;
const isNumber = (f: number): boolean => (f & CpFlag.NUMBER) !== 0;
// [^\s\p{L}\p{N}]: any code point of the piece (flags 0 means "past the end") outside those classes.
const isOther = (f: number): boolean => f !== 0 && (f & WORDISH) === 0;

/** \s+(?!\S)|\s+ : a whitespace run keeps its last code point for the next word unless it ends the piece. */
function cutWhitespace(s: PieceScanner, pos: number, n: number): number {
  if (n > 1 && s.cp(pos + n) !== OUT_OF_RANGE) return pos + s.cut(pos + n - 1);
  return pos + s.cut(pos + n);
}

/** 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
function scanGpt2(s: PieceScanner): void {
  for (let pos = s.ini; pos < s.end; ) {
    const c = s.contraction(pos, false);
    if (c > 0) {
      pos += s.cut(pos + c);
      continue;
    }
    const lead = s.cp(pos) === SPACE ? 1 : 0;
    const f = s.flags(pos + lead);
    const cls = isLetter(f) ? isLetter : isNumber(f) ? isNumber : isOther(f) ? isOther : undefined;
    if (cls) {
      pos = runEnd(s, pos + lead, cls);
      s.cut(pos);
      continue;
    }
    const n = s.whitespaceRun(pos);
    if (n > 0) {
      pos = cutWhitespace(s, pos, n);
      continue;
    }
    pos += s.cut(pos + 1);
  }
}

/** (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
function scanLlama3(s: PieceScanner): void {
  for (let pos = s.ini; pos < s.end; ) {
    const c = s.contraction(pos, true);
    if (c > 0) {
      pos += s.cut(pos + c);
      continue;
    }
    const cp = s.cp(pos);
    const f = s.flags(pos);
    // One optional leading code point (not CR, LF, letter or number), then letters.
    if (cp !== CR && cp !== LF && !isNumber(f) && (isLetter(f) || isLetter(s.flags(pos + 1)))) {
      pos = runEnd(s, pos + 1, isLetter);
      s.cut(pos);
      continue;
    }
    if (isNumber(f)) {
      // Digits in groups of at most three.
      let groupStart = pos;
      while (isNumber(s.flags(pos))) {
        pos++;
        if (pos - groupStart >= 3) {
          s.cut(pos);
          groupStart = pos;
        }
      }
      s.cut(pos);
      continue;
    }
    const lead = cp === SPACE ? 1 : 0;
    if (f !== 0 && isOther(s.flags(pos + lead))) {
      pos = runEnd(s, pos + lead, isOther);
      while (s.cp(pos) === CR || s.cp(pos) === LF) pos++;
      s.cut(pos);
      continue;
    }
    const n = s.whitespaceRun(pos);
    let lastNewlineEnd = 0;
    for (let i = 0; i < n; i++) {
      const w = s.cp(pos + i);
      if (w === CR || w === LF) lastNewlineEnd = pos + i + 1;
    }
    if (lastNewlineEnd > 0) {
      pos = lastNewlineEnd;
      s.cut(pos);
      continue;
    }
    if (n > 0) {
      pos = cutWhitespace(s, pos, n);
      continue;
    }
    pos += s.cut(pos + 1);
  }
}

/** The scanner llama.cpp would use for this exact pattern, if any. */
export function customSplitter(expr: string): PieceSplitter | undefined {
  if (expr === GPT2_PATTERN) return (cps, pieces) => eachPiece(cps, pieces, scanGpt2);
  if (LLAMA3_PATTERNS.includes(expr)) return (cps, pieces) => eachPiece(cps, pieces, scanLlama3);
  return undefined;
}

/**
 * Whitespace between JSON tokens, bounded so that a model cannot spin on it forever: nothing, one
 * space, or one or two newlines followed by up to 20 spaces or tabs (the shape llama.cpp's
 * json-schema-to-grammar allows).
 */
import type { Lexer } from './lexer.js';

/** Most spaces or tabs after the newlines. */
export const MAX_INDENT = 20;
/** Most consecutive newlines. */
export const MAX_NEWLINES = 2;

const START = 0;
const AFTER_SPACE = 1;
/** States from here on: newlines seen (1..MAX_NEWLINES) and indentation so far (0..MAX_INDENT). */
const INDENTED = 2;
const SPACE = 0x20;
const TAB = 0x09;
const NEWLINE = 0x0a;

function indented(newlines: number, indent: number): number {
  return INDENTED + (newlines - 1) * (MAX_INDENT + 1) + indent;
}

/** Bounded JSON whitespace; every state accepts (whitespace is optional). */
export class WhitespaceLexer implements Lexer {
  readonly initial = START;

  step(state: number, byte: number): number {
    if (state === START) {
      if (byte === SPACE) return AFTER_SPACE;
      return byte === NEWLINE ? indented(1, 0) : -1;
    }
    if (state === AFTER_SPACE) return -1;
    const rel = state - INDENTED;
    const newlines = Math.floor(rel / (MAX_INDENT + 1)) + 1;
    const indent = rel % (MAX_INDENT + 1);
    if (byte === NEWLINE) return indent === 0 && newlines < MAX_NEWLINES ? indented(newlines + 1, 0) : -1;
    if (byte === SPACE || byte === TAB) return indent < MAX_INDENT ? state + 1 : -1;
    return -1;
  }

  accepts(): boolean {
    return true;
  }

  hasMore(state: number): boolean {
    if (state === AFTER_SPACE) return false;
    if (state === START) return true;
    return (state - INDENTED) % (MAX_INDENT + 1) < MAX_INDENT;
  }
}

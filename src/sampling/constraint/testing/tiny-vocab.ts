/**
 * A small vocabulary for constraint tests that need no fixture: every single byte, a spread of
 * multi-byte tokens typical of JSON output (structure, keys, escapes, split UTF-8), two tokens
 * without text (one of them end-of-generation) and a second end-of-generation token.
 */
import type { ConstraintVocab } from '../types.js';

const encoder = new TextEncoder();

const MULTI = [
  '{"',
  '"}',
  '":',
  '": ',
  '":"',
  '": "',
  '", "',
  '","',
  '},',
  '}]',
  '"]',
  '["',
  '[{',
  '}}',
  ', ',
  ',\n  ',
  '\n',
  '\n  ',
  '  ',
  'true',
  'false',
  'null',
  'name',
  'age',
  'tags',
  'id',
  ' the',
  'hello',
  ' world',
  '123',
  '0.5',
  '-1',
  '1e5',
  '00',
  'é',
  'ü',
  '中',
  '🦙',
  '\\n',
  '\\"',
  '\\\\',
  '\\u00e9',
  '\\ud83e\\udd99',
  '\\u',
  '2024-',
  '-01',
  'T12:',
  '00Z',
  'abc',
];

/** A test vocabulary whose ids decode by concatenating pieces. */
export interface TinyVocab extends ConstraintVocab {
  /** Text of a run of ids (UTF-8, invalid bytes replaced). */
  decode(ids: readonly number[]): string;
  /** Id of a token by its text (multi-byte tokens and single bytes as one-char strings). */
  id(text: string): number;
}

/**
 * Builds the test vocabulary: ids 0 (no text) and 1 (text "</s>") end generation, id 2 is a
 * control token with no text, ids 3..258 are the single bytes.
 */
export function tinyVocab(): TinyVocab {
  const pieces: Uint8Array[] = [new Uint8Array(0), encoder.encode('</s>'), new Uint8Array(0)];
  for (let b = 0; b < 256; b++) pieces.push(Uint8Array.of(b));
  for (const m of MULTI) pieces.push(encoder.encode(m));
  const byText = new Map<string, number>();
  pieces.forEach((p, i) => {
    if (i >= 3) byText.set(p.length === 1 ? String.fromCharCode(p[0]) : new TextDecoder().decode(p), i);
  });
  return {
    size: pieces.length,
    piece: (id) => pieces[id],
    isEog: (id) => id === 0 || id === 1,
    decode: (ids) => new TextDecoder().decode(Uint8Array.from(ids.flatMap((id) => [...pieces[id]]))),
    id: (text) => {
      const id = byText.get(text);
      if (id === undefined) throw new Error(`no token ${JSON.stringify(text)}`);
      return id;
    },
  };
}

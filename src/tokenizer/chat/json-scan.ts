/**
 * Finds where a JSON object or array embedded in free text ends, so generated text can be split
 * into JSON and prose without a regex guessing at braces inside strings.
 */

/**
 * Characters JSON allows outside strings (structure, whitespace, numbers, true/false/null; ASCII
 * letters are let through for JSON.parse to judge).
 */
const OUTSIDE_STRING = /[ \t\n\r{}[\]:,"\-+.0-9A-Za-z]/;

/**
 * Index just past the JSON object or array that starts at `text[start]` (`{` or `[`), or -1 when
 * it is not closed. Brackets inside strings (with escapes) are skipped; validity is left to
 * JSON.parse, except that the scan stops (-1) at a character that cannot stand outside a JSON
 * string, such as the `<` of a markup tag: generated text with many unclosed calls would
 * otherwise be scanned to its end once per call, quadratic.
 */
export function jsonValueEnd(text: string, start: number): number {
  const open = text[start];
  if (open !== '{' && open !== '[') return -1;
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (!OUTSIDE_STRING.test(c)) return -1;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/** Parses the JSON value starting at `start`; undefined when it is unclosed or invalid. */
export function readJsonAt(text: string, start: number): { value: unknown; end: number } | undefined {
  const end = jsonValueEnd(text, start);
  if (end < 0) return undefined;
  try {
    return { value: JSON.parse(text.slice(start, end)), end };
  } catch {
    return undefined;
  }
}

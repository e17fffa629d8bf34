/**
 * Size limits a schema must meet before it is compiled. Compiling and enforcing a schema costs
 * time in proportion to its size (and to how many alternatives it leaves open), and a request may
 * carry a schema of megabytes or nested thousands of levels deep; these checks run first, walk the
 * value without recursion (so depth cannot overflow the stack) and stop at the first limit passed.
 */
import { CairnError } from '../../util/errors.js';

/** How large a schema may be. */
export interface SchemaLimits {
  /** Deepest nesting of objects and arrays in the schema document. */
  readonly maxDepth: number;
  /** Approximate size of the schema as JSON text, in characters. */
  readonly maxChars: number;
  /** Values listed by every `enum` and `const` together. */
  readonly maxEnumValues: number;
  /** Entries of every `properties` together. */
  readonly maxProperties: number;
}

/**
 * The defaults: roomy for real response formats and tool definitions (OpenAI's own limits are 10
 * levels of nesting, 5000 properties and 1000 enum values), small enough that compiling takes a
 * few tens of milliseconds.
 */
export const DEFAULT_SCHEMA_LIMITS: SchemaLimits = {
  maxDepth: 64,
  maxChars: 64 * 1024,
  maxEnumValues: 1000,
  maxProperties: 1000,
};

function tooLarge(what: string): CairnError {
  return new CairnError('BAD_ARGUMENT', `the JSON schema is too large: ${what}`);
}

/**
 * Throws CairnError BAD_ARGUMENT when `schema` passes one of the limits, naming which. Values that
 * are not JSON data (functions, cycles) are refused as well.
 */
export function checkSchemaLimits(schema: unknown, limits: SchemaLimits = DEFAULT_SCHEMA_LIMITS): void {
  let chars = 0;
  let enumValues = 0;
  let properties = 0;
  // Each entry: a value, its depth, and the key it sits under in its parent object; or the marker
  // that the walk left an object (which is then no longer among the ancestors).
  const pending: ({ value: unknown; depth: number; key: string | undefined } | { leave: object })[] = [
    { value: schema, depth: 0, key: undefined },
  ];
  const ancestors = new Set<object>();
  while (pending.length > 0) {
    const entry = pending.pop()!;
    if ('leave' in entry) {
      ancestors.delete(entry.leave);
      continue;
    }
    const { value, depth, key } = entry;
    if (typeof value === 'string') chars += value.length + 2;
    else if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) chars += 5;
    else if (typeof value !== 'object')
      throw new CairnError('BAD_ARGUMENT', `a JSON schema must be plain JSON data, not a ${typeof value}`);
    if (chars > limits.maxChars) throw tooLarge(`more than ${limits.maxChars} characters`);
    if (typeof value !== 'object' || value === null) continue;
    if (ancestors.has(value))
      throw new CairnError('BAD_ARGUMENT', 'a JSON schema must be plain JSON data, not a value that contains itself');
    if (depth >= limits.maxDepth) throw tooLarge(`nested more than ${limits.maxDepth} levels deep`);
    ancestors.add(value);
    pending.push({ leave: value });
    chars += 2;
    if (Array.isArray(value)) {
      if (key === 'enum') enumValues += value.length;
      for (const item of value) pending.push({ value: item, depth: depth + 1, key: undefined });
    } else {
      const entries = Object.entries(value);
      if (key === 'properties') properties += entries.length;
      for (const [k, v] of entries) {
        if (k === 'const') enumValues++;
        chars += k.length + 3;
        pending.push({ value: v, depth: depth + 1, key: k });
      }
    }
    if (enumValues > limits.maxEnumValues) throw tooLarge(`more than ${limits.maxEnumValues} enum/const values in all`);
    if (properties > limits.maxProperties) throw tooLarge(`more than ${limits.maxProperties} properties in all`);
  }
}

/**
 * Random values matching a schema (for the keywords tests use; no pattern), and a JSON writer
 * that puts random allowed whitespace between tokens, so tests can feed the automaton documents
 * it did not produce itself.
 */
import type { Prng } from '../../../util/prng.js';

type Schema = boolean | { [k: string]: unknown };
type Obj = { [k: string]: unknown };

const CHARS = ['a', 'b', 'Z', ' ', '0', '"', '\\', '/', '\n', '\t', '\u0001', 'é', '中', '🦙', '\u2028', '{', '}'];
const WHITESPACE = ['', '', '', ' ', '\n', '\n  ', '\n\t', '\n\n    ', `\n${' '.repeat(20)}`];

function pick<T>(rng: Prng, list: readonly T[]): T {
  return list[rng.int(list.length)];
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

function formatted(format: string, rng: Prng): string {
  const date = `${pad(1000 + rng.int(9000), 4)}-${pad(1 + rng.int(12), 2)}-${pad(1 + rng.int(28), 2)}`;
  const time = `${pad(rng.int(24), 2)}:${pad(rng.int(60), 2)}:${pad(rng.int(60), 2)}${pick(rng, ['', '.5', '.123'])}${pick(rng, ['Z', '+05:30', '-11:00'])}`;
  const hex = (n: number): string => Array.from({ length: n }, () => pick(rng, [...'0123456789abcdefABCDEF'])).join('');
  switch (format) {
    case 'date':
      return date;
    case 'time':
      return time;
    case 'date-time':
      return `${date}T${time}`;
    case 'uuid':
      return `${hex(8)}-${hex(4)}-${hex(4)}-${hex(4)}-${hex(12)}`;
    case 'email':
      return `${pick(rng, ['bob', 'a.b', 'x+y'])}@${pick(rng, ['example.com', 'mail.co.uk'])}`;
    default:
      return 'x';
  }
}

function randomNumber(s: Obj, integer: boolean, rng: Prng): number {
  let lo = typeof s.minimum === 'number' ? s.minimum : typeof s.exclusiveMinimum === 'number' ? s.exclusiveMinimum + 1 : -1000;
  let hi = typeof s.maximum === 'number' ? s.maximum : typeof s.exclusiveMaximum === 'number' ? s.exclusiveMaximum - 1 : lo + 2000;
  if (integer) {
    lo = Math.ceil(lo);
    hi = Math.floor(hi);
    return lo + rng.int(hi - lo + 1);
  }
  return Math.round((lo + rng.next() * (hi - lo)) * 1000) / 1000;
}

function resolve(root: Schema, ref: string): Schema {
  let node: unknown = root;
  for (const part of ref
    .slice(2)
    .split('/')
    .filter((p) => p !== ''))
    node = (node as Obj)[part];
  return node as Schema;
}

/** A random value valid against `schema`; `depth` keeps recursive and open schemas small. */
export function randomValue(schema: Schema, root: Schema, rng: Prng, depth = 0): unknown {
  if (schema === true || (typeof schema === 'object' && Object.keys(schema).length === 0)) {
    return randomValue(
      { type: depth > 2 ? pick(rng, ['string', 'number', 'boolean', 'null']) : pick(rng, ['object', 'array', 'string', 'number']) },
      root,
      rng,
      depth,
    );
  }
  if (schema === false) throw new Error('no value matches false');
  const s = schema;
  if (typeof s.$ref === 'string') return randomValue(resolve(root, s.$ref), root, rng, depth);
  const choices = (s.anyOf ?? s.oneOf) as Schema[] | undefined;
  if (choices) return randomValue(depth > 3 ? choices[choices.length - 1] : pick(rng, choices), root, rng, depth);
  if ('const' in s) return s.const;
  if (Array.isArray(s.enum)) return pick(rng, s.enum);
  const types =
    s.type === undefined ? (s.properties ? ['object'] : s.items ? ['array'] : ['string']) : Array.isArray(s.type) ? s.type : [s.type];
  switch (pick(rng, types as string[])) {
    case 'null':
      return null;
    case 'boolean':
      return rng.next() < 0.5;
    case 'integer':
      return randomNumber(s, true, rng);
    case 'number':
      return randomNumber(s, rng.next() < 0.3, rng);
    case 'string': {
      if (typeof s.format === 'string') return formatted(s.format, rng);
      const min = typeof s.minLength === 'number' ? s.minLength : 0;
      const max = typeof s.maxLength === 'number' ? s.maxLength : min + 8;
      return Array.from({ length: min + rng.int(max - min + 1) }, () => pick(rng, CHARS)).join('');
    }
    case 'array': {
      const prefix = (s.prefixItems ?? []) as Schema[];
      const min = typeof s.minItems === 'number' ? s.minItems : prefix.length;
      const max =
        typeof s.maxItems === 'number'
          ? s.maxItems
          : s.items === undefined && prefix.length > 0
            ? prefix.length
            : min + (depth > 2 ? 0 : 3);
      const n = min + rng.int(max - min + 1);
      return Array.from({ length: n }, (_, i) =>
        randomValue(i < prefix.length ? prefix[i] : ((s.items ?? true) as Schema), root, rng, depth + 1),
      );
    }
    default: {
      const out: Obj = {};
      const required = (s.required ?? []) as string[];
      for (const [name, sub] of Object.entries((s.properties ?? {}) as Obj)) {
        if (required.includes(name) || (depth < 3 && rng.next() < 0.5)) out[name] = randomValue(sub as Schema, root, rng, depth + 1);
      }
      const extra = s.additionalProperties ?? (s.properties ? false : true);
      if (extra !== false && depth < 3) {
        for (let i = rng.int(3); i > 0; i--) out[`extra${i}`] = randomValue(extra as Schema, root, rng, depth + 1);
      }
      return out;
    }
  }
}

/** JSON text of `value` with random (allowed) whitespace between tokens. */
export function randomJson(value: unknown, rng: Prng): string {
  const ws = (): string => pick(rng, WHITESPACE);
  if (Array.isArray(value)) {
    if (value.length === 0) return `[${ws()}]`;
    return `[${ws()}${value.map((v) => randomJson(v, rng)).join(`${ws()},${ws()}`)}${ws()}]`;
  }
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value);
    if (entries.length === 0) return `{${ws()}}`;
    const members = entries.map(([k, v]) => `${JSON.stringify(k)}${ws()}:${ws()}${randomJson(v, rng)}`);
    return `{${ws()}${members.join(`${ws()},${ws()}`)}${ws()}}`;
  }
  return JSON.stringify(value);
}

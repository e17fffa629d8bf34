/**
 * allOf as one schema: the parts' keywords are combined the way an intersection needs (types
 * intersected, properties and required merged, bounds tightened, enums intersected, two anyOf
 * lists crossed). $ref parts are inlined. Combinations with no simple intersection (two different
 * patterns, say) are refused. oneOf is treated as anyOf throughout: generation picks one branch.
 */
import { resolveRef } from './schema-refs.js';
import {
  canonicalJson,
  checkKeywords,
  childPath,
  constraintKeywords,
  isSchemaObject,
  schemaError,
  typeKeyword,
  type SchemaObject,
} from './schema-keywords.js';
import type { JsonSchema } from './types.js';

/** A schema with the path it was found at (for error messages). */
export interface SchemaAt {
  readonly schema: JsonSchema;
  readonly path: string;
}

const MAX_REF_CHAIN = 64;
const LOWER_BOUNDS = new Set(['minLength', 'minItems', 'minimum', 'exclusiveMinimum']);
const UPPER_BOUNDS = new Set(['maxLength', 'maxItems', 'maximum', 'exclusiveMaximum']);

/** A schema matching what all the parts match (false when they cannot all hold). */
export function mergeSchemas(root: JsonSchema, parts: readonly SchemaAt[]): JsonSchema {
  const pieces: SchemaObject[] = [];
  for (const part of parts) {
    if (!flatten(root, part.schema, part.path, pieces, 0)) return false;
  }
  let merged: SchemaObject = {};
  for (const piece of pieces) {
    const next = mergeTwo(merged, piece, parts[0]?.path ?? '#');
    if (next === false) return false;
    merged = next;
  }
  return merged;
}

/** Appends the constraint keywords of `schema` as pieces; false when the schema is false. */
function flatten(root: JsonSchema, schema: JsonSchema, path: string, out: SchemaObject[], refDepth: number): boolean {
  if (schema === true) return true;
  if (schema === false) return false;
  if (!isSchemaObject(schema)) throw schemaError(path, 'a schema must be an object or a boolean');
  checkKeywords(schema, path);
  const rest: Record<string, unknown> = {};
  for (const k of constraintKeywords(schema)) rest[k] = schema[k];
  if ('$ref' in rest) {
    if (refDepth >= MAX_REF_CHAIN) throw schemaError(path, '$ref chain too long (a reference cycle through allOf?)');
    const target = resolveRef(root, rest.$ref, childPath(path, '$ref'));
    if (!flatten(root, target, String(rest.$ref), out, refDepth + 1)) return false;
    delete rest.$ref;
  }
  if ('allOf' in rest) {
    const list = rest.allOf;
    if (!Array.isArray(list)) throw schemaError(childPath(path, 'allOf'), 'allOf must be an array of schemas');
    for (let i = 0; i < list.length; i++) {
      if (!flatten(root, list[i] as JsonSchema, childPath(childPath(path, 'allOf'), i), out, refDepth)) return false;
    }
    delete rest.allOf;
  }
  if ('oneOf' in rest) {
    out.push({ anyOf: rest.oneOf });
    delete rest.oneOf;
  }
  out.push(rest);
  return true;
}

function intersectTypes(a: SchemaObject, b: SchemaObject, path: string): string[] {
  const ta = typeKeyword(a, path)!;
  const tb = typeKeyword(b, path)!;
  const out = new Set<string>();
  for (const t of ta) {
    if (tb.includes(t)) out.add(t);
    else if (t === 'integer' && tb.includes('number')) out.add('integer');
    else if (t === 'number' && tb.includes('integer')) out.add('integer');
  }
  return [...out];
}

function mergeProperties(a: unknown, b: unknown, path: string): SchemaObject {
  if (!isSchemaObject(a) || !isSchemaObject(b)) throw schemaError(childPath(path, 'properties'), 'properties must be an object');
  const out: Record<string, unknown> = { ...a };
  for (const [name, schema] of Object.entries(b)) {
    out[name] = name in out && canonicalJson(out[name]) !== canonicalJson(schema) ? { allOf: [out[name], schema] } : schema;
  }
  return out;
}

/** Two pieces as one, or false when no value can satisfy both. */
function mergeTwo(a: SchemaObject, b: SchemaObject, path: string): SchemaObject | false {
  const out: Record<string, unknown> = { ...a };
  for (const [key, value] of Object.entries(b)) {
    if (!(key in out)) {
      out[key] = value;
      continue;
    }
    const mine = out[key];
    if (canonicalJson(mine) === canonicalJson(value)) continue;
    if (LOWER_BOUNDS.has(key) || UPPER_BOUNDS.has(key)) {
      if (typeof mine !== 'number' || typeof value !== 'number') throw schemaError(childPath(path, key), `${key} must be a number`);
      out[key] = LOWER_BOUNDS.has(key) ? Math.max(mine, value) : Math.min(mine, value);
      continue;
    }
    switch (key) {
      case 'type': {
        const types = intersectTypes(a, b, path);
        if (types.length === 0) return false;
        out.type = types;
        break;
      }
      case 'properties':
        out.properties = mergeProperties(mine, value, path);
        break;
      case 'required':
        if (!Array.isArray(mine) || !Array.isArray(value)) throw schemaError(childPath(path, 'required'), 'required must be an array');
        out.required = [...new Set([...mine, ...value])];
        break;
      case 'additionalProperties':
      case 'items':
        if (mine === false || value === false) out[key] = false;
        else out[key] = { allOf: [mine, value] };
        break;
      case 'enum': {
        if (!Array.isArray(mine) || !Array.isArray(value)) throw schemaError(childPath(path, 'enum'), 'enum must be an array');
        const keep = new Set(value.map(canonicalJson));
        const both = mine.filter((v) => keep.has(canonicalJson(v)));
        if (both.length === 0) return false;
        out.enum = both;
        break;
      }
      case 'const':
        return false;
      case 'anyOf': {
        if (!Array.isArray(mine) || !Array.isArray(value)) throw schemaError(childPath(path, 'anyOf'), 'anyOf must be an array');
        out.anyOf = mine.map((x) => ({ allOf: [x, { anyOf: value }] }));
        break;
      }
      default:
        throw schemaError(childPath(path, key), `allOf combines two different values of "${key}", which is not supported`);
    }
  }
  return out;
}

/**
 * Which JSON Schema keywords constrained decoding understands, which it may ignore because they
 * only annotate, and the checks shared by the schema compiler and the allOf merger.
 */
import { CairnError } from '../../util/errors.js';

/** A schema object (not a boolean schema). */
export type SchemaObject = { readonly [keyword: string]: unknown };

/** Keywords that constrain the generated value and are supported. */
export const SUPPORTED_KEYWORDS: ReadonlySet<string> = new Set([
  'type',
  'enum',
  'const',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'prefixItems',
  'minItems',
  'maxItems',
  'minLength',
  'maxLength',
  'pattern',
  'format',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'anyOf',
  'oneOf',
  'allOf',
  '$ref',
]);

/** Keywords that do not constrain values (annotations, definitions containers). */
const ANNOTATIONS: ReadonlySet<string> = new Set([
  '$schema',
  '$id',
  '$anchor',
  '$comment',
  '$defs',
  'definitions',
  'title',
  'description',
  'default',
  'examples',
  'deprecated',
  'readOnly',
  'writeOnly',
  'contentMediaType',
  'contentEncoding',
]);

/** The JSON types a schema can name. */
export const JSON_TYPES = ['null', 'boolean', 'object', 'array', 'string', 'number', 'integer'] as const;
/** One of JSON_TYPES. */
export type JsonType = (typeof JSON_TYPES)[number];

/** True for keywords that never change which values match (annotations and x- extensions). */
export function isAnnotation(keyword: string): boolean {
  return ANNOTATIONS.has(keyword) || keyword.startsWith('x-');
}

/** A BAD_ARGUMENT error about the schema at `path` (a JSON pointer such as "#/properties/a"). */
export function schemaError(path: string, message: string): CairnError {
  return new CairnError('BAD_ARGUMENT', `JSON schema at ${path}: ${message}`);
}

/** `path` extended by one pointer segment (escaped as JSON Pointer requires). */
export function childPath(path: string, segment: string | number): string {
  return `${path}/${String(segment).replaceAll('~', '~0').replaceAll('/', '~1')}`;
}

/** True for a plain JSON object (not null, not an array). */
export function isSchemaObject(value: unknown): value is SchemaObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Throws for keywords that are neither supported nor annotations. */
export function checkKeywords(schema: SchemaObject, path: string): void {
  for (const keyword of Object.keys(schema)) {
    if (SUPPORTED_KEYWORDS.has(keyword) || isAnnotation(keyword)) continue;
    throw schemaError(childPath(path, keyword), `keyword "${keyword}" is not supported for constrained decoding`);
  }
}

/** The keywords of a schema that constrain values. */
export function constraintKeywords(schema: SchemaObject): string[] {
  return Object.keys(schema).filter((k) => !isAnnotation(k));
}

/** A non-negative integer keyword value, or undefined when absent. */
export function countKeyword(schema: SchemaObject, keyword: string, path: string): number | undefined {
  const v = schema[keyword];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
    throw schemaError(childPath(path, keyword), `${keyword} must be a non-negative integer`);
  return v;
}

/** A finite number keyword value, or undefined when absent. */
export function numberKeyword(schema: SchemaObject, keyword: string, path: string): number | undefined {
  const v = schema[keyword];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw schemaError(childPath(path, keyword), `${keyword} must be a number`);
  return v;
}

/** The `type` keyword as a list (undefined when absent). */
export function typeKeyword(schema: SchemaObject, path: string): JsonType[] | undefined {
  const v = schema.type;
  if (v === undefined) return undefined;
  const list = Array.isArray(v) ? v : [v];
  for (const t of list) {
    if (typeof t !== 'string' || !(JSON_TYPES as readonly string[]).includes(t)) {
      throw schemaError(childPath(path, 'type'), `unknown type ${JSON.stringify(t)} (expected one of ${JSON_TYPES.join(', ')})`);
    }
  }
  return list as JsonType[];
}

/** JSON text with object keys sorted, for comparing values structurally. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isSchemaObject(value)) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** JSON text of a schema as given (key order kept); BAD_ARGUMENT when it is not plain JSON. */
export function plainJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'null';
  } catch (err) {
    throw new CairnError('BAD_ARGUMENT', `a JSON schema must be plain JSON data: ${(err as Error).message}`);
  }
}

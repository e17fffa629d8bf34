/**
 * Local $ref resolution: "#", "#/$defs/name", "#/definitions/name" and any other JSON Pointer into
 * the root schema. References to other documents or to $anchor names are refused.
 */
import { schemaError, type SchemaObject } from './schema-keywords.js';
import type { JsonSchema } from './types.js';

/** The subschema a local reference points at. */
export function resolveRef(root: JsonSchema, ref: unknown, path: string): JsonSchema {
  if (typeof ref !== 'string') throw schemaError(path, '$ref must be a string');
  if (!ref.startsWith('#'))
    throw schemaError(path, `$ref ${JSON.stringify(ref)} points outside this schema (only local references "#/..." are supported)`);
  let pointer: string;
  try {
    pointer = decodeURIComponent(ref.slice(1));
  } catch {
    throw schemaError(path, `$ref ${JSON.stringify(ref)} is not a valid URI fragment`);
  }
  if (pointer !== '' && !pointer.startsWith('/'))
    throw schemaError(path, `$ref ${JSON.stringify(ref)} names an anchor; only JSON Pointer references are supported`);
  let node: unknown = root;
  for (const raw of pointer === '' ? [] : pointer.slice(1).split('/')) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    const container = node as SchemaObject | unknown[] | null;
    if (typeof container !== 'object' || container === null || !Object.hasOwn(container, key)) {
      throw schemaError(path, `$ref ${JSON.stringify(ref)} does not resolve`);
    }
    node = (container as Record<string, unknown>)[key];
  }
  if (typeof node !== 'boolean' && (typeof node !== 'object' || node === null || Array.isArray(node))) {
    throw schemaError(path, `$ref ${JSON.stringify(ref)} does not point at a schema`);
  }
  return node as JsonSchema;
}

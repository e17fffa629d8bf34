/**
 * Schema size limits: each limit refuses what passes it with a message naming it, without
 * recursion (a schema nested far past the stack's depth is a clear error, not a crash), and lets
 * through schemas just within it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCairnError } from '../../util/errors.js';
import { checkSchemaLimits, DEFAULT_SCHEMA_LIMITS } from './schema-limits.js';

function refuses(schema: unknown, pattern: RegExp): void {
  assert.throws(
    () => checkSchemaLimits(schema),
    (err: unknown) => isCairnError(err, 'BAD_ARGUMENT') && pattern.test(err.message),
  );
}

function nested(depth: number): unknown {
  // Built from JSON text: the parser, unlike a recursive walk, is not limited by the stack.
  return JSON.parse('{"items":'.repeat(depth) + '{}' + '}'.repeat(depth));
}

test('schema limits: nesting past the limit is refused, at any depth, without overflowing the stack', () => {
  checkSchemaLimits(nested(DEFAULT_SCHEMA_LIMITS.maxDepth - 1));
  refuses(nested(DEFAULT_SCHEMA_LIMITS.maxDepth), /nested more than 64 levels/);
  refuses(nested(100_000), /nested more than 64 levels/);
});

test('schema limits: size, enum values and properties are counted over the whole schema', () => {
  refuses({ description: 'x'.repeat(DEFAULT_SCHEMA_LIMITS.maxChars) }, /more than 65536 characters/);
  checkSchemaLimits({ enum: Array.from({ length: 1000 }, (_, i) => i) });
  refuses(
    { anyOf: [{ enum: Array.from({ length: 600 }, (_, i) => i) }, { enum: Array.from({ length: 401 }, (_, i) => i) }] },
    /more than 1000 enum/,
  );
  const props = (n: number, from = 0) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`p${from + i}`, { type: 'integer' }]));
  checkSchemaLimits({ type: 'object', properties: props(1000) });
  refuses(
    { type: 'object', properties: { a: { type: 'object', properties: props(500) }, ...props(500, 500) } },
    /more than 1000 properties/,
  );
});

test('schema limits: values that are not JSON data are refused', () => {
  const cyclic: Record<string, unknown> = { type: 'object' };
  cyclic.properties = { self: cyclic };
  refuses(cyclic, /plain JSON data/);
  refuses({ type: 'string', default: () => 1 }, /plain JSON data/);
  // The same object twice is not a cycle.
  const shared = { type: 'string' };
  checkSchemaLimits({ anyOf: [shared, shared] });
});

/**
 * Schema handling: unsupported keywords and malformed or unsatisfiable schemas give a clear
 * BAD_ARGUMENT naming the keyword and its path; supported-but-subtle constructs (strict mode,
 * unsatisfiable branches, recursion, allOf with $ref) compile to what they should.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCairnError } from '../../util/errors.js';
import { Automaton } from './automaton.js';
import { compileSchema, validateSchemaSupport } from './schema-compiler.js';
import { runText } from './testing/byte-walk.js';
import type { JsonSchema } from './types.js';

function complete(schema: JsonSchema | undefined, text: string, strict = false): boolean {
  return runText(new Automaton(compileSchema(schema, { strict })), text).state?.accepting ?? false;
}

function rejects(schema: unknown, ...fragments: string[]): void {
  assert.throws(
    () => validateSchemaSupport(schema),
    (err: unknown) => {
      assert.ok(isCairnError(err, 'BAD_ARGUMENT'), `a BAD_ARGUMENT CairnError, got ${String(err)}`);
      for (const f of fragments) assert.ok(err.message.includes(f), `message ${JSON.stringify(err.message)} mentions ${JSON.stringify(f)}`);
      return true;
    },
  );
}

test('unsupported keywords are named with their path', () => {
  rejects({ type: 'object', properties: { a: { type: 'array', uniqueItems: true } } }, '"uniqueItems"', '#/properties/a/uniqueItems');
  rejects({ type: 'number', multipleOf: 3 }, '"multipleOf"', '#/multipleOf');
  rejects({ not: { type: 'string' } }, '"not"', '#/not');
  rejects({ type: 'object', patternProperties: { '^x': {} } }, '"patternProperties"');
  rejects({ if: {}, then: {} }, '"if"');
  rejects({ $defs: { a: { type: 'object', minProperties: 1 } }, $ref: '#/$defs/a' }, '"minProperties"', '#/$defs/a/minProperties');
  rejects({ anyOf: [{ type: 'string' }, { type: 'array', contains: { type: 'integer' } }] }, '#/anyOf/1/contains');
});

test('annotations and x- extensions are ignored', () => {
  validateSchemaSupport({
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 't',
    description: 'd',
    'x-vendor': 1,
    type: 'object',
    properties: { a: { type: 'string', default: 'x', examples: ['y'], deprecated: true } },
  });
});

test('malformed schemas give clear errors', () => {
  rejects('string', 'must be an object or a boolean');
  rejects({ type: 'strin' }, 'unknown type "strin"', '#/type');
  rejects({ type: 'object', properties: { a: 3 } }, '#/properties/a', 'must be an object or a boolean');
  rejects({ type: 'object', required: 'a' }, '#/required');
  rejects({ type: 'string', minLength: -1 }, '#/minLength', 'non-negative integer');
  rejects({ type: 'string', minLength: 5, maxLength: 2 }, 'minLength 5 is above maxLength 2');
  rejects({ type: 'array', minItems: 3, maxItems: 1 }, 'minItems 3');
  rejects({ type: 'integer', minimum: 5, maximum: 4 }, 'no integer');
  rejects({ type: 'number', minimum: 'x' }, '#/minimum', 'must be a number');
  rejects({ anyOf: [] }, '#/anyOf', 'non-empty array');
  rejects({ $ref: 'https://example.com/s.json' }, 'outside this schema');
  rejects({ $ref: '#/$defs/missing' }, 'does not resolve');
  rejects({ $ref: '#anchor' }, 'anchor');
  rejects({ type: 'string', pattern: '^a$', maxLength: 3 }, 'pattern together with minLength/maxLength');
  rejects(
    {
      allOf: [
        { type: 'string', pattern: 'a' },
        { type: 'string', pattern: 'b' },
      ],
    },
    'allOf combines two different values of "pattern"',
  );
});

test('schemas no document can satisfy are refused', () => {
  rejects(false, 'no JSON value');
  rejects({ type: 'object', properties: { a: false }, required: ['a'] }, 'no JSON value');
  rejects({ allOf: [{ type: 'string' }, { type: 'integer' }] }, 'no JSON value');
  rejects({ type: 'object', required: ['b'], additionalProperties: false }, 'no JSON value');
  // A required recursion with no way out has no finite document.
  rejects(
    { $defs: { n: { type: 'object', properties: { next: { $ref: '#/$defs/n' } }, required: ['next'] } }, $ref: '#/$defs/n' },
    'no JSON value',
  );
});

test('an unsatisfiable branch is dropped, not offered', () => {
  const schema = { type: 'object', properties: { a: { anyOf: [{ type: 'string', enum: [1] }, { type: 'boolean' }] } }, required: ['a'] };
  assert.ok(complete(schema, '{"a":true}'));
  assert.equal(runText(new Automaton(compileSchema(schema)), '{"a":"').state, null);
  // An optional property whose schema is false is simply never written.
  assert.ok(complete({ type: 'object', properties: { a: false, b: { type: 'null' } } }, '{"b":null}'));
  assert.equal(runText(new Automaton(compileSchema({ type: 'object', properties: { a: false } })), '{"').state, null);
});

test('additionalProperties: absent with properties means none; strict mode means none', () => {
  const open = { type: 'object', properties: { a: { type: 'integer' } }, additionalProperties: true };
  assert.ok(complete(open, '{"a":1,"b":[1]}'));
  assert.ok(!complete(open, '{"a":1,"b":[1]}', true));
  assert.ok(!complete({ type: 'object', properties: { a: { type: 'integer' } } }, '{"a":1,"b":2}'));
  assert.ok(complete({ type: 'object' }, '{"b":2}'));
  assert.ok(complete({ type: 'object', additionalProperties: { type: 'integer' } }, '{"b":2,"c":3}'));
  assert.ok(!complete({ type: 'object', additionalProperties: { type: 'integer' } }, '{"b":"x"}'));
});

test('required names without a property schema are written, with additionalProperties as their schema', () => {
  const schema = { type: 'object', properties: { a: { type: 'integer' } }, required: ['b'], additionalProperties: { type: 'boolean' } };
  assert.ok(complete(schema, '{"b":true}'));
  assert.ok(complete(schema, '{"a":1,"b":false}'));
  assert.ok(!complete(schema, '{"a":1}'));
});

test('allOf inlines $ref parts and merges properties, required and bounds', () => {
  const schema = {
    $defs: { base: { type: 'object', properties: { id: { type: 'integer', minimum: 0 } }, required: ['id'] } },
    allOf: [{ $ref: '#/$defs/base' }, { properties: { id: { maximum: 9 }, name: { type: 'string' } }, required: ['name'] }],
  };
  assert.ok(complete(schema, '{"id":5,"name":"x"}'));
  assert.ok(!complete(schema, '{"id":10,"name":"x"}'));
  assert.ok(!complete(schema, '{"id":-1,"name":"x"}'));
  assert.ok(!complete(schema, '{"id":5}'));
});

test('$ref with sibling keywords applies both', () => {
  const schema = { $defs: { s: { type: 'string' } }, $ref: '#/$defs/s', maxLength: 2 };
  assert.ok(complete(schema, '"ab"'));
  assert.ok(!complete(schema, '"abc"'));
});

test('anyOf with sibling keywords applies the siblings to every branch', () => {
  const schema = {
    type: 'object',
    properties: { kind: { type: 'string' }, a: { type: 'integer' }, b: { type: 'integer' } },
    anyOf: [{ required: ['kind', 'a'] }, { required: ['kind', 'b'] }],
  };
  assert.ok(complete(schema, '{"kind":"x","a":1}'));
  assert.ok(complete(schema, '{"kind":"x","b":1}'));
  assert.ok(!complete(schema, '{"kind":"x"}'));
});

test('a reference to the root recurses', () => {
  const schema = { type: 'array', items: { anyOf: [{ type: 'integer' }, { $ref: '#' }] } };
  assert.ok(complete(schema, '[1,[2,[3,[]]],4]'));
  assert.ok(!complete(schema, '[1,["x"]]'));
});

test('type inferred from keywords when "type" is absent', () => {
  assert.ok(complete({ properties: { a: { type: 'null' } } }, '{"a":null}'));
  assert.ok(!complete({ properties: { a: { type: 'null' } } }, '"x"'));
  assert.ok(complete({ minLength: 2 }, '"ab"'));
  assert.ok(complete({ minimum: 2 }, '2.5'));
  assert.ok(complete({ items: { type: 'integer' } }, '[1]'));
});

test('enum values are filtered by type and written as compact JSON', () => {
  const schema = { type: 'string', enum: ['a', 1, null, 'b"c'] };
  assert.ok(complete(schema, '"a"'));
  assert.ok(complete(schema, '"b\\"c"'));
  assert.ok(!complete(schema, '1'));
  assert.ok(complete({ enum: [{ x: [1, 2] }] }, '{"x":[1,2]}'));
});

test('validateSchemaSupport accepts undefined (any JSON object) and boolean true', () => {
  validateSchemaSupport(undefined);
  validateSchemaSupport(true);
  assert.ok(complete(undefined, '{}'));
  assert.ok(!complete(undefined, '[]'));
});

test('$ref into "definitions" and other local pointers, and the older tuple form of items', () => {
  const schema = {
    definitions: { 'a/b': { type: 'integer' } },
    type: 'object',
    properties: {
      x: { $ref: '#/definitions/a~1b' },
      y: { $ref: '#/properties/x' },
      t: { type: 'array', items: [{ type: 'null' }, { type: 'boolean' }] },
    },
    required: ['x', 'y', 't'],
  };
  assert.ok(complete(schema, '{"x":1,"y":2,"t":[null,true]}'));
  assert.ok(!complete(schema, '{"x":1,"y":"2","t":[null,true]}'));
  assert.ok(!complete(schema, '{"x":1,"y":2,"t":[null,true,1]}'));
});

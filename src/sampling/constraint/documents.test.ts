/**
 * Generated documents, both ways round: random values valid against a schema, written with random
 * whitespace, are accepted byte by byte; random walks through the parser end in documents that
 * JSON.parse and validate, with no dead end on the way; and a one-byte mutation of a valid document
 * is only ever complete when the mutated text is valid too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from '../../util/prng.js';
import { Automaton } from './automaton.js';
import { compileSchema } from './schema-compiler.js';
import type { JsonSchema } from './types.js';
import { randomDocument, runText } from './testing/byte-walk.js';
import { randomJson, randomValue } from './testing/random-value.js';
import { validate } from './testing/schema-validator.js';

type Obj = { [k: string]: unknown };

const SCHEMAS: Record<string, Obj> = {
  flat: {
    type: 'object',
    properties: {
      id: { type: 'integer', minimum: 1, maximum: 99999 },
      name: { type: 'string', minLength: 1, maxLength: 12 },
      score: { type: 'number', minimum: -1, maximum: 1 },
      active: { type: 'boolean' },
      note: { type: ['string', 'null'], maxLength: 5 },
    },
    required: ['id', 'name', 'active'],
  },
  nested: {
    type: 'object',
    properties: {
      user: {
        type: 'object',
        properties: { first: { type: 'string' }, tags: { type: 'array', items: { type: 'string', maxLength: 4 }, maxItems: 3 } },
        required: ['first'],
      },
      points: { type: 'array', items: { type: 'array', prefixItems: [{ type: 'number' }, { type: 'number' }] }, minItems: 1, maxItems: 4 },
    },
    required: ['user', 'points'],
  },
  choices: {
    type: 'object',
    properties: {
      shape: {
        oneOf: [
          {
            type: 'object',
            properties: { kind: { const: 'circle' }, r: { type: 'number', exclusiveMinimum: 0 } },
            required: ['kind', 'r'],
          },
          { type: 'object', properties: { kind: { const: 'square' }, side: { type: 'integer', minimum: 1 } }, required: ['kind', 'side'] },
        ],
      },
      color: { enum: ['red', 'green', 'blue'] },
    },
    required: ['shape', 'color'],
  },
  formats: {
    type: 'object',
    properties: {
      day: { type: 'string', format: 'date' },
      at: { type: 'string', format: 'date-time' },
      id: { type: 'string', format: 'uuid' },
      mail: { type: 'string', format: 'email' },
      clock: { type: 'string', format: 'time' },
    },
    required: ['day', 'at', 'id', 'mail', 'clock'],
  },
  recursive: {
    $defs: {
      node: {
        type: 'object',
        properties: { name: { type: 'string', maxLength: 6 }, children: { type: 'array', items: { $ref: '#/$defs/node' }, maxItems: 2 } },
        required: ['name'],
      },
    },
    $ref: '#/$defs/node',
  },
  open: {
    type: 'object',
    properties: { fixed: { type: 'integer' } },
    additionalProperties: { type: 'array', items: { type: ['integer', 'boolean'] }, maxItems: 3 },
  },
  free: { type: 'object' },
  patterned: {
    type: 'object',
    properties: { code: { type: 'string', pattern: '^[A-Z]{3}-\\d{2,4}$' }, path: { type: 'string', pattern: '^(/[a-z]+)+$' } },
    required: ['code', 'path'],
  },
};

function check(text: string, schema: Obj): void {
  let value: unknown;
  assert.doesNotThrow(() => (value = JSON.parse(text)), `JSON.parse(${JSON.stringify(text)})`);
  assert.deepEqual(validate(value, schema as JsonSchema), [], `${JSON.stringify(text)} validates`);
}

for (const [name, schema] of Object.entries(SCHEMAS)) {
  test(`documents (${name}): random valid values with random whitespace are accepted`, () => {
    if (name === 'patterned') return; // the value generator does not invent pattern matches
    const automaton = new Automaton(compileSchema(schema as JsonSchema));
    const rng = new Prng(name.length * 31 + 1);
    for (let i = 0; i < 150; i++) {
      const value = randomValue(schema as JsonSchema, schema as JsonSchema, rng);
      assert.deepEqual(validate(value, schema as JsonSchema), [], `generated value ${JSON.stringify(value)} is valid`);
      const text = randomJson(value, rng);
      const run = runText(automaton, text);
      assert.ok(run.state?.accepting, `accepted: ${JSON.stringify(text)} (refused at byte ${run.consumed})`);
    }
  });

  test(`documents (${name}): random walks through the parser end in valid documents`, () => {
    const automaton = new Automaton(compileSchema(schema as JsonSchema));
    const rng = new Prng(name.length * 17 + 3);
    for (let i = 0; i < 60; i++) {
      const bytes = randomDocument(automaton, rng, { patience: 40, maxBytes: 4000, stop: 0.5 });
      check(new TextDecoder('utf-8', { fatal: true }).decode(bytes), schema);
    }
  });

  test(`documents (${name}): a one-byte mutation is complete only if it is still valid`, () => {
    const automaton = new Automaton(compileSchema(schema as JsonSchema));
    const rng = new Prng(name.length * 13 + 5);
    const pool = Array.from('{}[]":,.-+eE0159 \n\\atrufnl', (c) => c.charCodeAt(0));
    for (let i = 0; i < 40; i++) {
      const doc = randomDocument(automaton, rng, { patience: 30, maxBytes: 4000, stop: 0.5 });
      for (let k = 0; k < 40; k++) {
        const bytes = Uint8Array.from(doc);
        const at = rng.int(bytes.length);
        bytes[at] = pool[rng.int(pool.length)];
        if (!runText(automaton, bytes).state?.accepting) continue;
        const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
        check(text, schema);
      }
    }
  });
}

/**
 * The parser on its own, byte by byte: every prefix of a valid document is alive, `accepting`
 * holds exactly at the prefixes that are themselves valid documents, and invalid documents are
 * refused (at the byte where they go wrong where the test says so).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Automaton } from './automaton.js';
import { compileSchema } from './schema-compiler.js';
import type { JsonSchema } from './types.js';
import { runText } from './testing/byte-walk.js';
import { validate } from './testing/schema-validator.js';

interface Case {
  name: string;
  schema: JsonSchema | undefined;
  valid: string[];
  /** Documents that must not be complete; a number after '|' is the offset of the refused byte. */
  invalid: string[];
}

const person = {
  type: 'object',
  properties: { name: { type: 'string' }, age: { type: 'integer' }, email: { type: 'string' } },
  required: ['name', 'age'],
};
const tree = {
  $defs: {
    node: {
      type: 'object',
      properties: { value: { type: 'integer' }, children: { type: 'array', items: { $ref: '#/$defs/node' } } },
      required: ['value', 'children'],
      additionalProperties: false,
    },
  },
  $ref: '#/$defs/node',
};

const CASES: Case[] = [
  {
    name: 'json_object (no schema)',
    schema: undefined,
    valid: [
      '{}',
      '{"a":1}',
      ' {\n  "a": [1, 2.5e-3, "x", null, true, false, {"b": {}}]\n}\n',
      '{"k\\u00e9\\n":"\\ud83e\\udd99 é 中"}',
      '{ "a" : -0 }',
    ],
    invalid: [
      '[1]|0',
      '"x"|0',
      '1|0',
      '{"a"}|4',
      '{"a":01}|6',
      '{a:1}|1',
      '{"a":1,}|7',
      '{"a":"\x01"}|6',
      '{"a":"\\x"}|7',
      '{"a":tru}|8',
      '{"a":1}{|7',
    ],
  },
  {
    name: 'object with required and optional properties, in schema order',
    schema: person,
    valid: ['{"name":"Ann","age":3}', '{ "name": "Ann", "age": 3, "email": "a@b" }', '{"name":"","age":-7}'],
    invalid: [
      '{"age":3,"name":"Ann"}|2',
      '{"name":"Ann"}|13',
      '{"name":"Ann","age":3.5}|21',
      '{"name":"Ann","age":3,"x":1}|23',
      '{"name":1}|8',
    ],
  },
  {
    name: 'additionalProperties as a schema',
    schema: { type: 'object', properties: { a: { type: 'integer' } }, additionalProperties: { type: 'boolean' } },
    valid: ['{}', '{"a":1}', '{"a":1,"b":true}', '{"b":false,"c":true}', '{"ab":true}'],
    invalid: ['{"b":1}|5', '{"a":true}', '{"a":1,"a":true}'],
  },
  {
    name: 'strings: lengths',
    schema: { type: 'string', minLength: 2, maxLength: 3 },
    valid: ['"ab"', '"abc"', '"é中"', '"\\n\\u0041🦙"'],
    invalid: ['"a"', '"abcd"|4', '""', '"a\\"'],
  },
  {
    name: 'integers with bounds',
    schema: { type: 'integer', minimum: 0, maximum: 120 },
    valid: ['0', '7', '120', '99'],
    invalid: ['-1|0', '121|2', '130|2', '1.5|1', '007|1', '1e2|1'],
  },
  {
    name: 'numbers with exclusive bounds',
    schema: { type: 'number', exclusiveMinimum: -1.5, exclusiveMaximum: 2 },
    valid: ['-1.25', '0', '1.9999', '-1.4'],
    invalid: ['-1.5', '2', '2.5|0', '-2|1', '3|0'],
  },
  {
    name: 'enum and const',
    schema: {
      type: 'object',
      properties: { color: { enum: ['red', 'green', null, 3] }, kind: { const: 'x' } },
      required: ['color', 'kind'],
    },
    valid: ['{"color":"red","kind":"x"}', '{"color":null,"kind":"x"}', '{"color":3,"kind":"x"}'],
    invalid: ['{"color":"blue","kind":"x"}|10', '{"color":"red","kind":"y"}|23'],
  },
  {
    name: 'arrays: items, minItems, maxItems',
    schema: { type: 'array', items: { type: 'boolean' }, minItems: 1, maxItems: 3 },
    valid: ['[true]', '[true, false,true]', '[\n  false\n]'],
    invalid: ['[]|1', '[true,true,true,true]|15', '[1]|1'],
  },
  {
    name: 'arrays: prefixItems tuple',
    schema: { type: 'array', prefixItems: [{ type: 'string' }, { type: 'integer' }] },
    valid: ['["a",1]', '[ "a" , 1 ]'],
    invalid: ['["a"]|4', '["a",1,2]|6', '[1,"a"]|1'],
  },
  {
    name: 'anyOf and type arrays',
    schema: { anyOf: [{ type: 'string', maxLength: 1 }, { type: ['integer', 'null'] }] },
    valid: ['"a"', '""', '5', 'null'],
    invalid: ['"ab"|2', 'true|0', '1.5|1'],
  },
  {
    name: 'allOf merges objects',
    schema: {
      allOf: [
        { type: 'object', properties: { a: { type: 'string' } }, required: ['a'] },
        { properties: { b: { type: 'integer' } }, required: ['b'] },
      ],
    },
    valid: ['{"a":"x","b":1}'],
    invalid: ['{"a":"x"}|8', '{"b":1}|2'],
  },
  {
    name: 'recursive $ref',
    schema: tree,
    valid: ['{"value":1,"children":[]}', '{"value":1,"children":[{"value":2,"children":[{"value":3,"children":[]}]}]}'],
    invalid: ['{"value":1,"children":[{}]}|24', '{"value":1}|10'],
  },
  {
    name: 'formats',
    schema: {
      type: 'object',
      properties: {
        d: { type: 'string', format: 'date' },
        t: { type: 'string', format: 'date-time' },
        u: { type: 'string', format: 'uuid' },
      },
      required: ['d', 't', 'u'],
    },
    valid: [
      '{"d":"2024-02-29","t":"2024-01-31T23:59:60Z","u":"123e4567-e89b-12d3-a456-426614174000"}'.replace(':60Z', ':59Z'),
      '{"d":"1999-12-31","t":"2000-06-30T00:00:00.5+05:30","u":"AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE"}',
    ],
    invalid: ['{"d":"2024-02-30"|14', '{"d":"2024-04-31"|15', '{"d":"24-01-01"|8'],
  },
  {
    name: 'pattern',
    schema: { type: 'string', pattern: '^[A-Z]{2}-\\d+$' },
    valid: ['"AB-1"', '"ZZ-0123"'],
    invalid: ['"A-1"|2', '"AB-"', '"ab-1"|1', '"AB-1x"|5'],
  },
  {
    name: 'unanchored pattern is a search',
    schema: { type: 'string', pattern: 'ab' },
    valid: ['"ab"', '"xxabyy"', '"abab"'],
    invalid: ['"a"', '"ba"', '""'],
  },
  {
    name: 'any value at the top',
    schema: {},
    valid: ['1', '"x"', 'null', '[1,{"a":[]}]', '-0.5e+10'],
    invalid: ['nul', '01|1', '[,]|1'],
  },
];

function parsesAndValidates(text: string, schema: JsonSchema | undefined): boolean {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return false;
  }
  if (schema === undefined) return typeof value === 'object' && value !== null && !Array.isArray(value);
  return validate(value, schema).length === 0;
}

for (const c of CASES) {
  test(`automaton: ${c.name}`, () => {
    const automaton = new Automaton(compileSchema(c.schema));
    for (const doc of c.valid) {
      assert.ok(parsesAndValidates(doc, c.schema), `test document ${JSON.stringify(doc)} is itself valid`);
      const bytes = new TextEncoder().encode(doc);
      for (let n = 0; n <= bytes.length; n++) {
        const run = runText(automaton, bytes.subarray(0, n));
        assert.ok(run.state, `prefix ${n} of ${JSON.stringify(doc)} is alive (refused at byte ${run.consumed})`);
        // A prefix is complete exactly when it is a valid document on its own (whole characters only).
        const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes.subarray(0, n));
        const wholeChars = new TextEncoder().encode(text).length === n;
        if (wholeChars) assert.equal(run.state.accepting, parsesAndValidates(text, c.schema), `complete after ${JSON.stringify(text)}`);
        else assert.equal(run.state.accepting, false);
      }
    }
    for (const spec of c.invalid) {
      const bar = spec.lastIndexOf('|');
      const doc = bar >= 0 ? spec.slice(0, bar) : spec;
      const run = runText(automaton, doc);
      assert.ok(!run.state?.accepting, `${JSON.stringify(doc)} must not be complete`);
      if (bar >= 0) assert.equal(run.consumed, Number(spec.slice(bar + 1)), `${JSON.stringify(doc)} is refused at that byte`);
    }
  });
}

test('automaton: trailing whitespace is bounded and nothing follows a complete value', () => {
  const automaton = new Automaton(compileSchema({ type: 'object' }));
  assert.ok(runText(automaton, `{}\n${' '.repeat(20)}`).state?.accepting);
  assert.equal(runText(automaton, `{}\n${' '.repeat(21)}`).state, null);
  assert.equal(runText(automaton, '{}  ').state, null);
  assert.equal(runText(automaton, '{} x').state, null);
  assert.equal(runText(automaton, `{${' '.repeat(2)}}`).state, null, 'two spaces in a row are not JSON-mode whitespace');
});

test('automaton: states are shared, so a long free string reuses one state', () => {
  const automaton = new Automaton(compileSchema({ type: 'string' }));
  const a = runText(automaton, '"abc').state;
  const b = runText(automaton, '"abcdefgh').state;
  assert.ok(a && b);
  assert.equal(a, b);
});

test('automaton: nesting deeper than the stack limit is refused rather than grown', () => {
  const automaton = new Automaton(compileSchema({}));
  const run = runText(automaton, '['.repeat(5000));
  assert.equal(run.state, null);
  assert.ok(run.consumed > 100);
});

test('automaton: forgetting learned states at the limits keeps results the same', () => {
  const schema = { type: 'object', properties: { a: { type: 'array', items: { type: 'integer', minimum: -50, maximum: 50 } } } };
  const full = new Automaton(compileSchema(schema));
  const forgetful = new Automaton(compileSchema(schema), { maxNodes: 8, maxStates: 4 });
  const docs = ['{"a":[1,-2,50]}', '{"a":[51]}', '{}', '{"a":[ -50 , 0 ]}', '{"a":[1,]}'];
  for (const doc of docs) {
    for (let n = 0; n <= doc.length; n++) {
      const x = runText(full, doc.slice(0, n)).state;
      const y = runText(forgetful, doc.slice(0, n)).state;
      assert.equal(y === null, x === null, `alive after ${JSON.stringify(doc.slice(0, n))}`);
      assert.equal(y?.accepting, x?.accepting, `complete after ${JSON.stringify(doc.slice(0, n))}`);
    }
  }
  // A state held across a reset still steps correctly.
  const held = runText(forgetful, '{"a":[5').state!;
  runText(forgetful, '{"a":[1,2,3,4,5,6,7,8,9,10,-11,-12]}');
  assert.ok(forgetful.advance(held, new TextEncoder().encode('0]}'))?.accepting);
  assert.equal(forgetful.advance(held, new TextEncoder().encode('1]}')), null, '51 is above the maximum');
});

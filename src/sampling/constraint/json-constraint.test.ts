/**
 * Constraints over real token vocabularies: random logits (seeded) drive generation, every run
 * must end with a document that parses and validates, never with every token masked; masks
 * match a token-by-token check; accept() refuses what mask() removed. Runs on a vocabulary built
 * here, and on llama.cpp's GPT-2 and Llama (SentencePiece) vocabularies when the shared fixtures
 * are present.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCairnError } from '../../util/errors.js';
import { Prng } from '../../util/prng.js';
import { fixture, missingFixture } from '../../../test/helpers/paths.js';
import { tokenizerFromGguf } from '../../tokenizer/index.js';
import { CompiledConstraint } from './compiled-constraint.js';
import { jsonConstraint, prepareJsonConstraint } from './json-constraint.js';
import { compileSchema } from './schema-compiler.js';
import { isAllowed } from './token-mask.js';
import { constraintVocab } from './tokenizer-vocab.js';
import type { ConstraintVocab, JsonSchema } from './types.js';
import { VocabTrie } from './vocab-trie.js';
import { closingTokens, drive } from './testing/drive.js';
import { validate } from './testing/schema-validator.js';
import { tinyVocab } from './testing/tiny-vocab.js';

const SCHEMAS: Record<string, JsonSchema | undefined> = {
  json_object: undefined,
  person: {
    type: 'object',
    properties: {
      name: { type: 'string', minLength: 1, maxLength: 20 },
      age: { type: 'integer', minimum: 0, maximum: 130 },
      email: { type: 'string', format: 'email' },
      tags: { type: 'array', items: { type: 'string', maxLength: 8 }, maxItems: 3 },
    },
    required: ['name', 'age'],
    additionalProperties: false,
  },
  event: {
    type: 'object',
    properties: {
      id: { type: 'string', format: 'uuid' },
      at: { type: 'string', format: 'date-time' },
      level: { enum: ['debug', 'info', 'warn'] },
      value: { type: ['number', 'null'], exclusiveMinimum: -1, exclusiveMaximum: 1 },
    },
    required: ['id', 'at', 'level', 'value'],
  },
  tool: {
    anyOf: [
      { type: 'object', properties: { name: { const: 'search' }, query: { type: 'string', maxLength: 30 } }, required: ['name', 'query'] },
      {
        type: 'object',
        properties: { name: { const: 'add' }, a: { type: 'integer' }, b: { type: 'integer' } },
        required: ['name', 'a', 'b'],
      },
    ],
  },
  tree: {
    $defs: {
      node: {
        type: 'object',
        properties: {
          label: { type: 'string', pattern: '^[a-z]{1,5}$' },
          kids: { type: 'array', items: { $ref: '#/$defs/node' }, maxItems: 2 },
        },
        required: ['label', 'kids'],
      },
    },
    $ref: '#/$defs/node',
  },
  tuple: { type: 'array', prefixItems: [{ type: 'boolean' }, { type: 'string', maxLength: 4 }, { type: 'null' }] },
};

function bytesOf(vocab: ConstraintVocab, ids: readonly number[]): string {
  const parts = ids.flatMap((id) => Array.from(vocab.piece(id)));
  return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(parts));
}

function checkDocument(text: string, schema: JsonSchema | undefined): void {
  let value: unknown;
  assert.doesNotThrow(() => (value = JSON.parse(text)), `JSON.parse(${JSON.stringify(text)})`);
  if (schema === undefined)
    assert.ok(typeof value === 'object' && value !== null && !Array.isArray(value), 'json_object output is an object');
  else assert.deepEqual(validate(value, schema), [], `${JSON.stringify(text)} validates`);
}

/** Random-logit generations for every schema; each must finish with a valid document. */
function randomRuns(vocab: ConstraintVocab, runs: number, seed: number, patience: number): void {
  const closers = closingTokens(vocab);
  for (const [name, schema] of Object.entries(SCHEMAS)) {
    const rng = new Prng(seed + name.length);
    for (let r = 0; r < runs; r++) {
      const constraint = jsonConstraint(vocab, schema);
      const result = drive(constraint, vocab, rng, { maxSteps: 3000, patience, closers });
      assert.equal(
        result.stuckAt,
        undefined,
        `${name}: every token masked at step ${result.stuckAt} after ${JSON.stringify(bytesOf(vocab, result.ids))}`,
      );
      assert.ok(result.finished, `${name}: run ${r} ended with an end-of-generation token`);
      assert.ok(constraint.complete);
      checkDocument(bytesOf(vocab, result.ids), schema);
    }
  }
}

/** The allowed set of a state checked token by token (the slow, obvious way). */
function assertMaskMatchesBruteForce(vocab: ConstraintVocab, schema: JsonSchema | undefined, prefixes: string[]): void {
  const compiled = new CompiledConstraint(compileSchema(schema), VocabTrie.build(vocab));
  const automaton = compiled.automaton;
  for (const prefix of prefixes) {
    const state = automaton.advance(automaton.initial, new TextEncoder().encode(prefix));
    assert.ok(state, `prefix ${JSON.stringify(prefix)} is valid`);
    const mask = compiled.maskOf(state);
    let allowed = 0;
    for (let id = 0; id < vocab.size; id++) {
      const piece = vocab.piece(id);
      const expected: boolean = vocab.isEog(id) ? state.accepting : piece.length > 0 && automaton.advance(state, piece) !== null;
      if (expected) allowed++;
      assert.equal(
        isAllowed(mask, id),
        expected,
        `token ${id} ${JSON.stringify(new TextDecoder().decode(piece))} after ${JSON.stringify(prefix)}`,
      );
    }
    assert.ok(allowed > 0, `something is allowed after ${JSON.stringify(prefix)}`);
  }
}

const PERSON_PREFIXES = [
  '',
  ' ',
  '{',
  '{"name',
  '{"name":"Jo',
  '{"name":"Jo\\',
  '{"name":"J\xc3',
  '{"name": "x", "age": 1',
  '{"name":"x","age":13',
  '{"name":"x","age":1}',
  '{"name":"x","age":1,"tags":["a"',
];

test('tiny vocabulary: random-logit generations end in valid documents for every schema', () => {
  randomRuns(tinyVocab(), 12, 100, 30);
});

test('tiny vocabulary: masks equal a token-by-token check', () => {
  const vocab = tinyVocab();
  assertMaskMatchesBruteForce(
    vocab,
    SCHEMAS.person,
    PERSON_PREFIXES.map((p) => p.replace('\xc3', 'é').slice(0, p.includes('\xc3') ? -1 : undefined)),
  );
  assertMaskMatchesBruteForce(vocab, undefined, ['', '{"a":[1,{"b":', '{"k":"\\u00', '{}']);
  assertMaskMatchesBruteForce(vocab, SCHEMAS.event, ['{"id":"', '{"id":"123e4567-e89b-12d3-a456-426614174000","at":"2024-01-01T12:']);
});

test('mask: end of generation only once complete, textless tokens never, padding logits removed', () => {
  const vocab = tinyVocab();
  const c = jsonConstraint(vocab, { type: 'object', properties: { a: { type: 'integer' } }, required: ['a'] });
  const logits = new Float32Array(vocab.size + 5).fill(1);
  c.mask(logits);
  assert.equal(logits[0], -Infinity, 'EOG masked at the start');
  assert.equal(logits[1], -Infinity, 'EOG with text masked at the start');
  assert.equal(logits[2], -Infinity, 'a control token without text is masked');
  assert.equal(logits[vocab.id('{')], 1);
  assert.equal(logits[vocab.id('{"')], 1);
  assert.equal(logits[vocab.id('[')], -Infinity);
  assert.deepEqual(Array.from(logits.subarray(vocab.size)), [-Infinity, -Infinity, -Infinity, -Infinity, -Infinity]);
  for (const t of ['{"', 'a', '":', '1', '}']) c.accept(vocab.id(t));
  assert.ok(c.complete);
  logits.fill(1);
  c.mask(logits);
  assert.equal(logits[0], 1, 'EOG allowed once complete');
  assert.equal(logits[1], 1);
  assert.equal(logits[vocab.id('}')], -Infinity, 'nothing may follow the closing brace but whitespace');
  assert.equal(logits[vocab.id('\n')], 1, 'trailing whitespace is allowed');
  c.accept(0);
  logits.fill(1);
  c.mask(logits);
  assert.equal(logits[0], 1, 'after end of generation only end-of-generation tokens remain');
  assert.equal(logits[vocab.id('\n')], -Infinity);
});

test('mask: too few logits is a clear error', () => {
  const vocab = tinyVocab();
  assert.throws(
    () => jsonConstraint(vocab).mask(new Float32Array(3)),
    (err: unknown) => isCairnError(err, 'BAD_ARGUMENT') && /logits/.test(err.message),
  );
});

test('accept: refuses what mask removes, and keeps its state after refusing', () => {
  const vocab = tinyVocab();
  const c = jsonConstraint(vocab, { type: 'object', properties: { s: { type: 'string' } }, required: ['s'] });
  const refused = (id: number): void =>
    assert.throws(
      () => c.accept(id),
      (err: unknown) => isCairnError(err, 'BAD_ARGUMENT'),
      `token ${id} is refused`,
    );
  refused(vocab.id('['));
  refused(0); // end of generation before the value is complete
  refused(2); // no text
  refused(-1);
  refused(vocab.size);
  refused(1.5);
  c.accept(vocab.id('{"'));
  c.accept(vocab.id('s'));
  c.accept(vocab.id('": "'));
  // A character split over two byte tokens: the first half alone cannot be followed by a quote.
  c.accept(vocab.id(String.fromCharCode(0xc3)));
  refused(vocab.id('"'));
  c.accept(vocab.id(String.fromCharCode(0xa9)));
  c.accept(vocab.id('"}'));
  assert.ok(c.complete);
  c.accept(1);
  refused(vocab.id(' '));
});

test('jsonConstraint: unsupported schemas are refused up front', () => {
  assert.throws(
    () => jsonConstraint(tinyVocab(), { type: 'object', properties: { a: { type: 'string', format: 'date', not: {} } } }),
    (err: unknown) => isCairnError(err, 'BAD_ARGUMENT') && err.message.includes('#/properties/a/not'),
  );
});

test('jsonConstraint: independent constraints of one schema do not share progress', () => {
  const vocab = tinyVocab();
  const a = jsonConstraint(vocab, { type: 'array' });
  const b = jsonConstraint(vocab, { type: 'array' });
  a.accept(vocab.id('['));
  a.accept(vocab.id(']'));
  assert.ok(a.complete);
  assert.equal(b.complete, false);
  b.accept(vocab.id('['));
  assert.equal(b.complete, false);
});

for (const name of ['ggml-vocab-gpt-2.gguf', 'ggml-vocab-llama-spm.gguf']) {
  const rel = `vocab/${name}`;
  const path = fixture(rel);
  test(`${name}: random-logit generations end in valid documents for every schema`, (t) => {
    if (!path) return t.skip(missingFixture(rel));
    const tokenizer = tokenizerFromGguf(path);
    const vocab = constraintVocab(tokenizer);
    assert.equal(constraintVocab(tokenizer), vocab, 'one adapter per tokenizer, so its trie is built once');
    randomRuns(vocab, 6, 7, 20);
  });

  test(`${name}: masks equal a token-by-token check`, (t) => {
    if (!path) return t.skip(missingFixture(rel));
    const vocab = constraintVocab(tokenizerFromGguf(path));
    assertMaskMatchesBruteForce(vocab, SCHEMAS.person, ['', '{"name":"Jo', '{"name":"x","age":13', '{"name":"x","age":1}']);
  });
}

test('jsonConstraint: schemas differing only in property order are compiled apart', () => {
  const vocab = tinyVocab();
  const ab = { type: 'object', properties: { a: { type: 'null' }, b: { type: 'null' } }, required: ['a', 'b'] };
  const ba = { type: 'object', properties: { b: { type: 'null' }, a: { type: 'null' } }, required: ['a', 'b'] };
  const feed = (schema: JsonSchema, text: string): boolean => {
    const c = jsonConstraint(vocab, schema);
    for (const ch of text) c.accept(vocab.id(ch));
    return c.complete;
  };
  assert.ok(feed(ab, '{"a":null,"b":null}'));
  assert.ok(feed(ba, '{"b":null,"a":null}'));
  assert.throws(
    () => feed(ba, '{"a":null,"b":null}'),
    (err: unknown) => isCairnError(err, 'BAD_ARGUMENT'),
  );
  const nested = { type: 'array', prefixItems: [ab, ba] };
  assert.ok(feed(nested, '[{"a":null,"b":null},{"b":null,"a":null}]'));
});

test('jsonConstraint: a schema that is not plain JSON data is a clear error', () => {
  const cyclic: Record<string, unknown> = { type: 'object' };
  cyclic.properties = { self: cyclic };
  assert.throws(
    () => jsonConstraint(tinyVocab(), cyclic),
    (err: unknown) => isCairnError(err, 'BAD_ARGUMENT') && /plain JSON/.test(err.message),
  );
});

test('mask walks: run in slices, a walk gives the mask of one uninterrupted walk', () => {
  const vocab = tinyVocab();
  const trie = VocabTrie.build(vocab);
  const cases: [string, string][] = [
    ['json_object', ''],
    ['json_object', '{"'],
    ['person', '{"name": "'],
    ['tool', '{"name": "search", "query": "'],
  ];
  for (const [name, prefix] of cases) {
    const whole = new CompiledConstraint(compileSchema(SCHEMAS[name]), trie);
    const sliced = new CompiledConstraint(compileSchema(SCHEMAS[name]), trie);
    const bytes = new TextEncoder().encode(prefix);
    const walk = sliced.walk(sliced.automaton.advance(sliced.automaton.initial, bytes)!);
    let slices = 1;
    while (!walk.run(100)) slices++;
    assert.deepEqual(walk.bits, whole.maskOf(whole.automaton.advance(whole.automaton.initial, bytes)!), `${name} after ${prefix}`);
    if (prefix.endsWith('"') && name !== 'json_object') assert.ok(slices > 1, `${name}: the walk inside a string was cut into slices`);
  }
});

test('prepareJsonConstraint: the same constraint as jsonConstraint, compiled without holding the event loop', async () => {
  const vocab = tinyVocab();
  const schema = SCHEMAS.person;
  let otherWorkRan = false;
  setImmediate(() => (otherWorkRan = true));
  const prepared = await prepareJsonConstraint(vocab, schema);
  assert.ok(otherWorkRan, 'the event loop had a turn while compiling');
  const direct = jsonConstraint(vocab, schema);
  const a = new Float32Array(vocab.size);
  const b = new Float32Array(vocab.size);
  prepared.mask(a);
  direct.mask(b);
  assert.deepEqual(a, b);
  await assert.rejects(
    prepareJsonConstraint(vocab, JSON.parse('{"items":'.repeat(5000) + '{}' + '}'.repeat(5000)) as JsonSchema),
    (err: unknown) => isCairnError(err, 'BAD_ARGUMENT') && /too large/.test(err.message),
  );
});

test('schemas that keep too many parses open are refused as too complex, not run for minutes', async () => {
  const vocab = tinyVocab();
  for (const pattern of ['^(.{0,100}){0,100}$', '^((a|ab|abc|abcd)*.{0,50}){0,20}$']) {
    await assert.rejects(
      (async () => {
        const c = await prepareJsonConstraint(vocab, { type: 'string', pattern });
        // What the first mask did not reach, generation does: walk on until refused.
        const logits = new Float32Array(vocab.size);
        for (const byte of new TextEncoder().encode('"abcabcabcabcabc')) {
          c.mask(logits.fill(0));
          const id = Array.from({ length: vocab.size }, (_, i) => i).find(
            (i) => vocab.piece(i).length === 1 && vocab.piece(i)[0] === byte,
          )!;
          c.accept(id);
        }
      })(),
      (err: unknown) => isCairnError(err, 'BAD_ARGUMENT') && /too complex/.test(err.message),
      pattern,
    );
  }
  // The same patterns with small counts are fine.
  await prepareJsonConstraint(vocab, { type: 'string', pattern: '^(.{0,4}){0,4}$' });
});

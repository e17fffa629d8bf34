/**
 * The terminals against independent definitions: JSON.parse and a fatal UTF-8 decoder for string
 * contents, a regular expression for numbers and whitespace, and exact comparisons for bounds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from '../../util/prng.js';
import type { Lexer } from './lexer.js';
import { NumberLexer, type NumberBounds } from './number-lexer.js';
import { StringLexer } from './string-lexer.js';
import { WhitespaceLexer } from './whitespace-lexer.js';

const encoder = new TextEncoder();

/** The lexer state after `bytes`, or -1. */
function run(lexer: Lexer, bytes: Uint8Array | string): number {
  const data = typeof bytes === 'string' ? encoder.encode(bytes) : bytes;
  let s = lexer.initial;
  for (const b of data) {
    s = lexer.step(s, b);
    if (s < 0) return -1;
  }
  return s;
}

function accepts(lexer: Lexer, bytes: Uint8Array | string): boolean {
  const s = run(lexer, bytes);
  return s >= 0 && lexer.accepts(s);
}

/** The string value of JSON content bytes, or undefined when they are not a valid JSON string. */
function jsonStringValue(bytes: Uint8Array): string | undefined {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
  try {
    const value = JSON.parse(`"${text}"`) as string;
    return LONE_SURROGATE.test(value) ? undefined : value;
  } catch {
    return undefined;
  }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const STRING_BYTES = [
  ...encoder.encode('ab"\\/ubfnrtdD089AcCeF'),
  0x00,
  0x1f,
  0x7f,
  0x80,
  0xbf,
  0xc2,
  0xc3,
  0xa9,
  0xe0,
  0xa0,
  0xed,
  0x9f,
  0xa0,
  0xe4,
  0xb8,
  0xad,
  0xf0,
  0x9f,
  0x90,
  0xf4,
  0x8f,
  0x90,
  0xf5,
  0xff,
];

test('string content: accepted exactly when JSON.parse reads it as a well-formed string', () => {
  const lexer = new StringLexer({ minLength: 0, maxLength: Infinity });
  const rng = new Prng(11);
  let valid = 0;
  for (let i = 0; i < 40000; i++) {
    const bytes = Uint8Array.from({ length: 1 + rng.int(7) }, () => STRING_BYTES[rng.int(STRING_BYTES.length)]);
    const expected = jsonStringValue(bytes) !== undefined;
    if (expected) valid++;
    assert.equal(accepts(lexer, bytes), expected, `content ${JSON.stringify(Array.from(bytes))}`);
  }
  assert.ok(valid > 2000, 'the sample holds enough valid strings to mean something');
});

test('string content: a refused byte means no continuation could make it valid', () => {
  // Every prefix the lexer keeps alive must be completable: append the shortest closers.
  const lexer = new StringLexer({ minLength: 0, maxLength: Infinity });
  const closers = [
    '',
    '0',
    '00',
    '000',
    '0000',
    '\\udc00',
    '0\\udc00',
    '00\\udc00',
    '000\\udc00',
    'udc00',
    'dc00',
    'c00',
    '00',
    '\x80',
    '\x80\x80',
    '\x80\x80\x80',
    '\x90\x80\x80',
    '\xa0\x80',
  ];
  const rng = new Prng(5);
  for (let i = 0; i < 20000; i++) {
    const bytes = Uint8Array.from({ length: 1 + rng.int(6) }, () => STRING_BYTES[rng.int(STRING_BYTES.length)]);
    const s = run(lexer, bytes);
    if (s < 0) continue;
    const completable = closers.some((c) => {
      const tail = Uint8Array.from(c, (ch) => ch.charCodeAt(0));
      const full = new Uint8Array([...bytes, ...tail]);
      return accepts(lexer, full) && jsonStringValue(full) !== undefined;
    });
    assert.ok(completable, `alive prefix ${JSON.stringify(Array.from(bytes))} can be completed`);
  }
});

test('string content: minLength and maxLength count characters, not bytes or escapes', () => {
  const lexer = new StringLexer({ minLength: 2, maxLength: 3 });
  assert.equal(accepts(lexer, 'a'), false);
  assert.equal(accepts(lexer, 'ab'), true);
  assert.equal(accepts(lexer, '中🦙'), true);
  assert.equal(accepts(lexer, '\\n\\u00e9\\ud83e\\udd99'), true, 'an escaped surrogate pair is one character');
  assert.equal(accepts(lexer, 'abcd'), false);
  assert.equal(run(lexer, 'abc\\'), -1, 'a fourth character cannot even start');
  assert.equal(lexer.hasMore(run(lexer, 'abc')), false);
});

test('string content: excluded contents are refused but their extensions are not', () => {
  const lexer = new StringLexer({ minLength: 0, maxLength: Infinity, excluded: [encoder.encode('name'), encoder.encode('na')] });
  assert.equal(accepts(lexer, 'name'), false);
  assert.equal(accepts(lexer, 'na'), false);
  assert.equal(accepts(lexer, 'n'), true);
  assert.equal(accepts(lexer, 'names'), true);
  assert.equal(accepts(lexer, 'nam'), true);
  assert.equal(accepts(lexer, 'other'), true);
});

const NUMBER = /^-?(0|[1-9]\d{0,15})(\.\d{1,16})?([eE][+-]?\d{1,3})?$/;
const NUMBER_ALPHABET = '0123456789.-+eE';

function randomNumberText(rng: Prng, maxLength: number): string {
  return Array.from({ length: 1 + rng.int(maxLength) }, () => NUMBER_ALPHABET[rng.int(NUMBER_ALPHABET.length)]).join('');
}

test('numbers: accepted exactly when they are JSON numbers within the digit limits', () => {
  const lexer = new NumberLexer({ integer: false });
  const integers = new NumberLexer({ integer: true });
  const rng = new Prng(3);
  for (let i = 0; i < 30000; i++) {
    const text = rng.next() < 0.5 ? randomNumberText(rng, 6) : String((rng.next() - 0.5) * 10 ** rng.int(8)).slice(0, 12);
    assert.equal(accepts(lexer, text), NUMBER.test(text), text);
    assert.equal(accepts(integers, text), /^-?(0|[1-9]\d{0,15})$/.test(text), `integer ${text}`);
  }
  assert.equal(accepts(lexer, '1234567890123456'), true);
  assert.equal(run(lexer, '12345678901234567'), -1, 'a 17th integer digit is refused');
});

/** Whether some completion of `state` is accepted, searched depth-first (bounded). */
function completable(lexer: Lexer, state: number, budget = { nodes: 20000 }, depth = 0): boolean {
  if (lexer.accepts(state)) return true;
  if (depth > 40 || --budget.nodes < 0) return false;
  for (const b of encoder.encode(NUMBER_ALPHABET)) {
    const next = lexer.step(state, b);
    if (next >= 0 && completable(lexer, next, budget, depth + 1)) return true;
  }
  return false;
}

function inBounds(x: number, b: NumberBounds): boolean {
  return (
    (b.minimum === undefined || x >= b.minimum) &&
    (b.maximum === undefined || x <= b.maximum) &&
    (b.exclusiveMinimum === undefined || x > b.exclusiveMinimum) &&
    (b.exclusiveMaximum === undefined || x < b.exclusiveMaximum)
  );
}

test('numbers with bounds: exactly the in-range values, and every live prefix can finish in range', () => {
  const rng = new Prng(8);
  const boundsList: NumberBounds[] = [
    { minimum: 0 },
    { maximum: 0 },
    { minimum: 10, maximum: 20 },
    { minimum: -5, maximum: 5 },
    { minimum: 0.25, maximum: 0.75 },
    { exclusiveMinimum: 0, exclusiveMaximum: 1 },
    { minimum: -100, exclusiveMaximum: -99.5 },
    { minimum: 1000, maximum: 1000 },
    { minimum: -3.5 },
  ];
  for (const bounds of boundsList) {
    for (const integer of [false, true]) {
      const someInteger = Array.from({ length: 4001 }, (_, k) => k - 2000).some((x) => inBounds(x, bounds));
      if (integer && !someInteger) {
        assert.throws(() => new NumberLexer({ integer, bounds }), RangeError);
        continue;
      }
      const lexer = new NumberLexer({ integer, bounds });
      for (let i = 0; i < 3000; i++) {
        const text = rng.next() < 0.5 ? randomNumberText(rng, 5) : String(Math.round((rng.next() - 0.5) * 10 ** rng.int(5) * 100) / 100);
        const syntax = integer ? /^-?(0|[1-9]\d{0,15})$/.test(text) : /^-?(0|[1-9]\d{0,15})(\.\d{1,16})?$/.test(text);
        const value = Number(text);
        const expected = syntax && inBounds(value, bounds) && !(value === 0 && text.startsWith('-'));
        assert.equal(accepts(lexer, text), expected, `${text} with ${JSON.stringify(bounds)} integer=${integer}`);
        const s = run(lexer, text);
        if (s >= 0) assert.ok(completable(lexer, s), `prefix ${text} can finish within ${JSON.stringify(bounds)} integer=${integer}`);
      }
    }
  }
});

test('numbers with bounds: a leading minus is refused when the minimum is not negative', () => {
  assert.equal(run(new NumberLexer({ integer: false, bounds: { minimum: 0 } }), '-'), -1);
  assert.equal(run(new NumberLexer({ integer: true, bounds: { exclusiveMinimum: -1 } }), '-'), -1);
  assert.ok(run(new NumberLexer({ integer: false, bounds: { exclusiveMinimum: -1 } }), '-') >= 0, '-0.5 is above -1');
});

test('numbers with bounds: bounds no number can meet are refused up front', () => {
  assert.throws(() => new NumberLexer({ integer: true, bounds: { minimum: 0.2, maximum: 0.8 } }), RangeError);
  assert.throws(() => new NumberLexer({ integer: false, bounds: { minimum: 2, maximum: 1 } }), RangeError);
  assert.throws(() => new NumberLexer({ integer: false, bounds: { minimum: 1e300 } }), RangeError);
});

test('whitespace: nothing, one space, or up to two newlines and twenty spaces or tabs', () => {
  const lexer = new WhitespaceLexer();
  const allowed = /^( |\n{1,2}[ \t]{0,20})?$/;
  const rng = new Prng(2);
  for (let i = 0; i < 5000; i++) {
    const text = Array.from({ length: rng.int(26) }, () => ' \n\t'[rng.int(3)]).join('');
    assert.equal(accepts(lexer, text), allowed.test(text), JSON.stringify(text));
  }
  for (let n = 0; n <= 22; n++) assert.equal(accepts(lexer, `\n${' '.repeat(n)}`), n <= 20);
});

/**
 * Patterns against JavaScript's own RegExp (with the u flag, as JSON Schema asks): for many
 * strings, the grammar accepts the JSON string exactly when RegExp.test says the pattern matches.
 * Also the UTF-8 range splitting behind character classes, and the refusals.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from '../../util/prng.js';
import { Automaton } from './automaton.js';
import { isCairnError } from '../../util/errors.js';
import { compileSchema } from './schema-compiler.js';
import { runText } from './testing/byte-walk.js';
import { utf8Sequences } from './utf8-ranges.js';

const ALPHABET = [
  'a',
  'b',
  'c',
  'A',
  'Z',
  '0',
  '5',
  '9',
  '-',
  '_',
  '.',
  ' ',
  '\t',
  '\n',
  '"',
  '\\',
  '/',
  'é',
  'ß',
  '中',
  '🦙',
  '\u2028',
  '\u0001',
  '@',
  '[',
  '}',
];

function accepted(automaton: Automaton, value: string): boolean {
  return runText(automaton, JSON.stringify(value)).state?.accepting ?? false;
}

/** Patterns with strings that match them (so acceptance is exercised, not only refusal). */
const PATTERNS: [string, string[]][] = [
  ['^abc$', ['abc']],
  ['^a*b+c?$', ['b', 'aabbc']],
  ['^(ab|cd)*$', ['', 'abcdab']],
  ['^[a-c]{2,4}$', ['ab', 'cabc']],
  ['^[^a-c]+$', ['xyz', '🦙"\\']],
  ['^\\d{3}-\\d{2}$', ['123-45']],
  ['^\\w+@\\w+\\.[a-z]{2,3}$', ['bob@mail.com', 'a_1@x.io']],
  ['^\\s*\\S+\\s*$', ['a', ' \u2028x\t']],
  ['^.{0,3}$', ['', 'a🦙c']],
  ['^[\\u00e0-\\u00ff]+$', ['é']],
  ['^[^\\x00-\\x7f]*$', ['', 'é中🦙']],
  ['^(?:a|b)(?<n>c|d)?$', ['a', 'bd']],
  ['^a.c$', ['abc', 'a"c']],
  ['^["\\\\/]+$', ['"', '\\/"']],
  ['^\\t?\\n*$', ['', '\t\n\n']],
  ['^x{3}$', ['xxx']],
  ['^(a|ab)(c|bcd)$', ['abcd', 'ac', 'abc']],
  ['^[-.a]+$', ['-.a']],
  ['^[\\d\\s]+$', ['1 2']],
  ['^a+?b*?$', ['a', 'aab']],
  ['ab', ['ab', 'xaby']],
  ['^ab', ['abc']],
  ['ab$', ['cab']],
  ['a|^b', ['ba', 'xa', 'b']],
  ['^$', ['']],
  ['^\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\^\\$$', ['.*+?()[]{}|^$']],
  ['^a{2,}$', ['aa', 'aaaaa']],
  ['^🦙+$', ['🦙🦙']],
  ['^[🦙中]$', ['中']],
];

for (const [pattern, examples] of PATTERNS) {
  test(`pattern ${pattern} agrees with RegExp`, () => {
    const automaton = new Automaton(compileSchema({ type: 'string', pattern }));
    const re = new RegExp(pattern, 'u');
    for (const s of examples) {
      assert.ok(re.test(s), `example ${JSON.stringify(s)} matches /${pattern}/u`);
      assert.ok(accepted(automaton, s), `example ${JSON.stringify(s)} is accepted`);
    }
    const rng = new Prng(pattern.length * 7919);
    // Random strings, half of them from the pattern's own characters so near-misses are common.
    const own = Array.from(pattern.replace(/[\\^$()[\]{}|*+?]/g, ''));
    for (let i = 0; i < 1500; i++) {
      const pool = rng.next() < 0.5 && own.length > 0 ? own : ALPHABET;
      const s = Array.from({ length: rng.int(7) }, () => pool[rng.int(pool.length)]).join('');
      assert.equal(accepted(automaton, s), re.test(s), `${JSON.stringify(s)} against /${pattern}/u`);
    }
  });
}

test('patterns the grammar cannot express are refused with the reason and the schema path', () => {
  const bad: [string, RegExp][] = [
    ['^(a)\\1$', /back-references/],
    ['^(?=a)a$', /look-around/],
    ['\\bword\\b', /word boundaries/],
    ['^a{2000}$', /repetition counts/],
    ['^a$b', /inside the pattern/],
    ['^(ab', /missing '\)'/],
    ['^[ab$', /missing '\]'/],
    ['^*a$', /nothing to repeat/],
    ['^\\p{L}$', /escape/],
  ];
  for (const [pattern, reason] of bad) {
    assert.throws(
      () => compileSchema({ type: 'object', properties: { code: { type: 'string', pattern } } }),
      (err: unknown) => isCairnError(err, 'BAD_ARGUMENT') && reason.test(err.message) && err.message.includes('#/properties/code/pattern'),
      pattern,
    );
  }
});

test('UTF-8 range splitting: each code point is spelled by exactly one sequence, and only those', () => {
  const rng = new Prng(4);
  const encoder = new TextEncoder();
  const ranges: [number, number][] = [
    [0, 0x10ffff],
    [0x80, 0x7ff],
    [0x7f0, 0x810],
    [0xe000, 0xffff],
    [0xfff0, 0x10010],
    [0x10000, 0x10ffff],
    [0x1234, 0x5678],
    [0x41, 0x41],
  ];
  for (let i = 0; i < 30; i++) {
    const a = rng.int(0x10ffff);
    ranges.push([a, Math.min(0x10ffff, a + rng.int(1 << (rng.int(20) + 1)))]);
  }
  for (const [first, last] of ranges) {
    const sequences = utf8Sequences(first, last);
    const matches = (bytes: Uint8Array): number =>
      sequences.filter((seq) => seq.length === bytes.length && seq.every(([lo, hi], i) => bytes[i] >= lo && bytes[i] <= hi)).length;
    for (let k = 0; k < 400; k++) {
      let cp = rng.next() < 0.5 ? first + rng.int(last - first + 1) : rng.int(0x110000);
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xe000;
      const inside = cp >= first && cp <= last;
      assert.equal(
        matches(encoder.encode(String.fromCodePoint(cp))),
        inside ? 1 : 0,
        `U+${cp.toString(16)} in [${first.toString(16)}, ${last.toString(16)}]`,
      );
    }
    // Every byte string a sequence allows decodes to one code point inside the range.
    for (const seq of sequences) {
      for (let k = 0; k < 20; k++) {
        const bytes = Uint8Array.from(seq, ([lo, hi]) => lo + rng.int(hi - lo + 1));
        const cp = new TextDecoder('utf-8', { fatal: true }).decode(bytes).codePointAt(0)!;
        assert.ok(cp >= first && cp <= last, `sequence bytes ${Array.from(bytes)} stay in range`);
      }
    }
  }
});

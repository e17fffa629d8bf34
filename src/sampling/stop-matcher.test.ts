import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StopMatcher } from './stop-matcher.js';

/** Feeds pieces and returns everything shown plus the stop that ended the stream. */
function run(stops: string[], pieces: string[]): { shown: string; stop?: string } {
  const m = new StopMatcher(stops);
  let shown = '';
  for (const p of pieces) {
    const r = m.push(p);
    shown += r.text;
    if (r.stopped) return { shown, stop: r.stop };
  }
  return { shown: shown + m.flush() };
}

/** Every way to cut `text` into single characters, pairs, and one piece. */
function splits(text: string): string[][] {
  const pairs: string[] = [];
  for (let i = 0; i < text.length; i += 2) pairs.push(text.slice(i, i + 2));
  return [[...text], pairs, [text]];
}

test('a stop string inside one piece ends the stream without being shown', () => {
  assert.deepEqual(run(['END'], ['hello END world']), { shown: 'hello ', stop: 'END' });
});

test('a stop string split across many pieces is caught and held back meanwhile', () => {
  const m = new StopMatcher(['<|im_end|>']);
  assert.deepEqual(m.push('Hi<|'), { text: 'Hi', stopped: false });
  assert.deepEqual(m.push('im_'), { text: '', stopped: false });
  assert.deepEqual(m.push('e'), { text: '', stopped: false });
  assert.deepEqual(m.push('nd|>tail'), { text: '', stopped: true, stop: '<|im_end|>' });
  assert.equal(m.flush(), '');
  assert.deepEqual(m.push('more'), { text: '', stopped: true, stop: '<|im_end|>' });
});

test('a false start is released once it can no longer match', () => {
  const m = new StopMatcher(['STOP']);
  assert.deepEqual(m.push('ST'), { text: '', stopped: false });
  assert.deepEqual(m.push('AR!'), { text: 'STAR!', stopped: false });
});

test('with no match the held tail is flushed at the end', () => {
  assert.deepEqual(run(['</s>'], ['a', 'b', '</']), { shown: 'ab</' });
});

test('overlapping candidates: the stop that completes first wins, however the text is split', () => {
  for (const pieces of splits('xxabcd')) {
    assert.deepEqual(run(['abcd', 'bc'], pieces), { shown: 'xxa', stop: 'bc' }, pieces.join('|'));
  }
  for (const pieces of splits('xxabab')) {
    assert.deepEqual(run(['abab', 'bab'], pieces), { shown: 'xx', stop: 'abab' }, pieces.join('|'));
  }
  // Same end: the longer (earlier-starting) one wins.
  for (const pieces of splits('go two')) {
    assert.deepEqual(run(['two', 'o two'], pieces), { shown: 'g', stop: 'o two' }, pieces.join('|'));
  }
});

test('a repeated prefix does not hide a later match', () => {
  for (const pieces of splits('aaab')) {
    assert.deepEqual(run(['aab'], pieces), { shown: 'a', stop: 'aab' }, pieces.join('|'));
  }
});

test('multiple stops: text between them is shown up to the first', () => {
  assert.deepEqual(run(['\n\n', 'User:'], ['Sure.', ' User', ':', ' hi']), { shown: 'Sure. ', stop: 'User:' });
});

test('no stop strings (or only empty ones) pass text straight through', () => {
  assert.deepEqual(run([], ['a', 'b']), { shown: 'ab' });
  assert.deepEqual(run([''], ['a', 'b']), { shown: 'ab' });
});

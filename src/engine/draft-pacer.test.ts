/** Prompt lookup's matches, the measured step costs, and the draft lengths the pacer picks from them. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DraftPacer, expectedTokens } from './draft-pacer.js';
import { lookupDraft } from './prompt-lookup.js';
import { StepCosts } from './step-costs.js';

test('prompt lookup continues the most recent earlier occurrence of the longest tail, into its own draft for a repeating pattern', () => {
  // Tail [7, 8, 9] appeared at 1 and at 6: the later one's continuation wins.
  assert.deepEqual(lookupDraft([5, 7, 8, 9, 1, 2, 7, 8, 9, 3, 4, 7, 8, 9], 3), [3, 4, 7]);
  // No 3-token match; the 2-token tail [8, 9] did appear.
  assert.deepEqual(lookupDraft([8, 9, 6, 6, 1, 8, 9], 2), [6, 6]);
  // A single repeated token is not enough by default, and an empty history or max 0 drafts nothing.
  assert.deepEqual(lookupDraft([4, 5, 6, 4], 3), []);
  assert.deepEqual(lookupDraft([4, 5, 6, 4], 3, { ngramMin: 1 }), [5, 6, 4]);
  assert.deepEqual(lookupDraft([], 3), []);
  assert.deepEqual(lookupDraft([1, 2, 1, 2], 0), []);
  // A period-2 loop continues with period 2 past the end of the history.
  assert.deepEqual(lookupDraft([1, 2, 1, 2, 1, 2], 5), [1, 2, 1, 2, 1]);
  // Matches older than the window are not looked at.
  assert.deepEqual(lookupDraft([7, 8, 9, 1, 2, 3, 4, 5, 7, 8, 9], 2, { window: 6 }), []);
});

test('step costs: running means per size, sizes between measured ones on the line between them', () => {
  const c = new StepCosts();
  assert.equal(c.estimate(1), undefined);
  c.record(1, 100);
  c.record(9, 300);
  assert.equal(c.estimate(1), 100);
  assert.equal(c.estimate(5), 200);
  assert.equal(c.estimate(12), undefined, 'nothing measured above');
  c.record(1, 200);
  assert.ok(c.estimate(1)! > 100 && c.estimate(1)! < 200);
  c.record(0, 50);
  c.record(3, NaN);
  assert.equal(c.estimate(3), c.estimate(1)! + ((300 - c.estimate(1)!) * 2) / 8);
});

test('the pacer drafts long where extra tokens are cheap, not at all where they cost a step each, and waits after misses', () => {
  assert.equal(expectedTokens(0, 0.9), 1);
  assert.ok(Math.abs(expectedTokens(3, 0.5) - 1.875) < 1e-12);
  assert.equal(expectedTokens(4, 1), 5);
  const cheap = new StepCosts();
  const dear = new StepCosts();
  for (let n = 1; n <= 17; n++) {
    cheap.record(n, 100 + 2 * n); // bound by memory reads
    dear.record(n, 100 * n); // bound by arithmetic: every token costs a step
  }
  const sure = new DraftPacer(8);
  for (let i = 0; i < 10; i++) sure.record(8, 8);
  assert.ok(sure.acceptance > 0.9);
  assert.equal(sure.next(cheap), 8);
  assert.equal(sure.next(dear), 0, 'no draft yields more than a plain step when each token costs one');
  // Now and then one token is drafted anyway, to see whether the text started to repeat; after
  // each probe that failed, half as often.
  const probes = Array.from({ length: 64 }, () => sure.next(dear));
  assert.deepEqual([probes.filter((k) => k === 1).length, probes.filter((k) => k > 1).length], [2, 0]);
  const rare = new DraftPacer(8);
  for (let i = 0; i < 20; i++) rare.record(4, 0);
  const at: number[] = [];
  for (let step = 0; step < 600; step++) {
    if (rare.next(dear) > 0) {
      at.push(step);
      rare.record(1, 0);
    }
  }
  const gaps = at.slice(1).map((x, i) => x - at[i]);
  assert.ok(gaps.length >= 2 && gaps.every((g, i) => i === 0 || g >= gaps[i - 1]), `probe gaps ${gaps.join(',')} widen`);
  assert.ok(gaps.at(-1)! >= 256, `probe gaps ${gaps.join(',')} reach 256`);
  // A draft of middling acceptance on a middling machine: some length between.
  const middling = new StepCosts();
  for (let n = 1; n <= 17; n++) middling.record(n, 100 + 40 * (n - 1));
  const half = new DraftPacer(8);
  for (let i = 0; i < 10; i++) half.record(4, 2);
  const k = half.next(middling);
  assert.ok(k >= 1 && k < 8, `length ${k}`);
  // Wholly rejected drafts: a pause of 1, then 3 steps, with nothing drafted in between.
  const miss = new DraftPacer(8);
  miss.record(4, 0);
  assert.equal(miss.next(cheap), 0);
  assert.ok(miss.next(cheap) > 0);
  miss.record(4, 0);
  assert.deepEqual([miss.next(cheap), miss.next(cheap), miss.next(cheap)], [0, 0, 0]);
  assert.ok(miss.next(cheap) >= 0);
  // In a step of 8 decoding sequences, one sequence's draft is weighed against all 8 tokens.
  assert.ok(sure.next(cheap, 8) > 0);
  assert.equal(new DraftPacer(0).next(cheap), 0);
});

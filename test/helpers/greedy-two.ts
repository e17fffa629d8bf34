/**
 * Greedy decoding of two sequences prefilled together (3 and 2 prompt tokens), then 6 decode
 * steps of both: what the tensor-parallel tests run on a whole model and on a group, to compare
 * their logits step by step.
 */
import type { ShardBatch } from '../../src/model/decoder.js';

/** What a run gave: the tokens fed, each step's logits (both rows), and each step's greedy picks. */
export interface GreedyTwo {
  readonly tokens: number[][];
  readonly logits: Float32Array[];
  readonly picked: number[][];
}

function argmax(v: Float32Array): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

/**
 * Runs the greedy steps through `run`. `forced`: feed these tokens instead of its own picks (so a
 * near-tie that picks differently does not change what later steps compare); `around`: wraps each
 * decode step (after the prefill), e.g. to record what it reads.
 */
export function greedyTwo(
  run: (b: ShardBatch) => Float32Array,
  nVocab: number,
  forced?: number[][],
  around?: (step: () => void) => void,
): GreedyTwo {
  const logits: Float32Array[] = [];
  const picked: number[][] = [];
  const tokens = [
    [1, 260, 270],
    [1, 280],
  ];
  let out = run({
    nTokens: 5,
    tokens: Int32Array.from([...tokens[0], ...tokens[1]]),
    spans: [
      { slot: 0, pos0: 0, start: 0, n: 3 },
      { slot: 1, pos0: 0, start: 3, n: 2 },
    ],
    outputRows: [2, 4],
  });
  for (let step = 0; step < 6; step++) {
    logits.push(out.slice());
    const picks = [0, 1].map((s) => argmax(out.subarray(s * nVocab, (s + 1) * nVocab)));
    picked.push(picks);
    const next = forced ? forced.map((t, s) => t[tokens[s].length]) : picks;
    const decodeStep = () => {
      out = run({
        nTokens: 2,
        tokens: Int32Array.from(next),
        spans: [
          { slot: 0, pos0: tokens[0].length, start: 0, n: 1 },
          { slot: 1, pos0: tokens[1].length, start: 1, n: 1 },
        ],
        outputRows: [0, 1],
      });
    };
    if (around) around(decodeStep);
    else decodeStep();
    next.forEach((t, s) => tokens[s].push(t));
  }
  return { tokens, logits, picked };
}

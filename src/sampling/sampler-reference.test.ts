/**
 * The sampler against a plain twin of its chain: every candidate list sorted whole, nothing
 * skipped. The Sampler takes short cuts (top-k straight from the caller's logits, top-p sorting only
 * the tokens its probability bands can admit); each must land on the very token the plain chain
 * draws with the same random stream, over vocabularies with ties, NaN, infinities, peaked and flat
 * distributions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveSamplerOptions, type SamplerOptions } from './options.js';
import { applyLogitBias, applyPenalties, penaltiesAreOff, PenaltyScratch } from './penalties.js';
import { Xoshiro128 } from './prng.js';
import { Sampler } from './sampler.js';

/** llama.cpp's chain (top-k -> top-p -> min-p -> temperature -> draw), every step over a full sort. */
type ChainOptions = Required<Pick<SamplerOptions, 'topK' | 'topP' | 'minP' | 'temperature'>> &
  Pick<SamplerOptions, 'logitBias' | 'repeatPenalty' | 'presencePenalty' | 'frequencyPenalty'>;

/** NaN read as -Infinity first, then logit bias and penalties as llama.cpp's chain puts them. */
function adjusted(raw: Float32Array, o: ChainOptions, history: readonly number[]): Float64Array {
  const work = Float32Array.from(raw, (x) => (x !== x ? -Infinity : x));
  const r = resolveSamplerOptions(o);
  if (r.biasIds.length > 0) applyLogitBias(work, r.biasIds, r.biasValues);
  if (!penaltiesAreOff(r)) applyPenalties(work, history, r, new PenaltyScratch(work.length));
  return Float64Array.from(work);
}

function referenceSample(raw: Float32Array, o: ChainOptions, rng: Xoshiro128, history: readonly number[] = []): number {
  const v = adjusted(raw, o, history);
  const n = v.length;
  const byRank = (a: number, b: number) => (v[a] === v[b] ? a - b : v[b] > v[a] ? 1 : -1);
  const all = Array.from({ length: n }, (_, i) => i);
  if (v[[...all].sort(byRank)[0]] === -Infinity) throw new Error('no token');
  // Candidates in their order: best first once anything has sorted them, else by id.
  let ids = all;
  let sorted = false;
  if (o.topK > 0 && o.topK < n) {
    ids = [...all].sort(byRank).slice(0, o.topK);
    sorted = true;
  }
  const maxOf = (list: number[]) => list.reduce((m, i) => (v[i] > m ? v[i] : m), -Infinity);
  const expShift = (x: number, max: number) => (x === max ? 1 : Math.exp(x - max));
  if (o.topP < 1) {
    const max = maxOf(ids);
    const target = o.topP * ids.reduce((s, i) => s + expShift(v[i], max), 0);
    ids = [...ids].sort(byRank);
    sorted = true;
    let cum = 0;
    let keep = ids.length;
    for (let i = 0; i < ids.length; i++) {
      cum += expShift(v[ids[i]], max);
      if (cum >= target) {
        keep = i + 1;
        break;
      }
    }
    ids = ids.slice(0, keep);
  }
  if (o.minP > 0) {
    const threshold = maxOf(ids) + Math.log(o.minP);
    if (sorted) {
      let keep = 1;
      while (keep < ids.length && v[ids[keep]] >= threshold) keep++;
      ids = ids.slice(0, keep);
    } else {
      ids = ids.filter((i) => v[i] >= threshold);
    }
  }
  const u = rng.nextFloat();
  if (ids.length === 1) return ids[0];
  const max = maxOf(ids);
  const probs = ids.map((i) => (v[i] === max ? 1 : Math.exp((v[i] - max) / o.temperature)));
  const target = u * probs.reduce((a, b) => a + b, 0);
  let cum = 0;
  let last = 0;
  for (let i = 0; i < ids.length; i++) {
    if (probs[i] === 0) continue;
    cum += probs[i];
    last = i;
    if (cum > target) return ids[i];
  }
  return ids[last];
}

/** A seeded generator of test vocabularies. */
function vocabularies(seed: number): { name: string; logits: Float32Array }[] {
  const rng = new Xoshiro128(seed);
  const r = () => rng.nextFloat();
  const make = (name: string, n: number, f: (i: number) => number) => ({ name, logits: Float32Array.from({ length: n }, (_, i) => f(i)) });
  return [
    make('peaked', 3000, () => (r() < 0.01 ? 8 + 4 * r() : -4 + 4 * r())),
    make('flat', 3000, () => r()),
    make('zipf', 20000, (i) => -1.1 * Math.log(1 + ((i * 7919) % 20000)) + 0.3 * r()),
    make('ties', 500, () => Math.round(r() * 6) / 2),
    make('nan and -inf', 400, () => (r() < 0.2 ? Number.NaN : r() < 0.2 ? -Infinity : 3 * r())),
    make('mostly nan', 300, (i) => (i % 50 === 7 ? r() : Number.NaN)),
    make('an infinity', 200, (i) => (i === 137 ? Infinity : r())),
    make('tiny', 3, (i) => [0.5, 0.5, -1][i]),
  ];
}

test('the sampler draws exactly the token of the fully sorted chain, with the same random stream', () => {
  const settings: ChainOptions[] = [];
  for (const topK of [0, 1, 40, 100000])
    for (const topP of [1, 0.95, 0.5])
      for (const minP of [0, 0.05]) settings.push({ topK, topP, minP, temperature: topK === 1 ? 0.7 : 1.3 - topP / 2 });
  let compared = 0;
  for (const { name, logits } of vocabularies(11)) {
    for (const o of settings) {
      const seed = 1000 + compared;
      const sampler = new Sampler({ ...o, seed });
      const rng = new Xoshiro128(seed);
      for (let draw = 0; draw < 6; draw++) {
        const want = referenceSample(logits, o, rng);
        assert.equal(sampler.sample(logits), want, `${name}, ${JSON.stringify(o)}, draw ${draw}`);
        compared++;
      }
    }
  }
  assert.equal(compared, 8 * 24 * 6);
});

test('with logit bias and penalties, the same tokens as the fully sorted chain', () => {
  const settings: ChainOptions[] = [
    { topK: 40, topP: 0.95, minP: 0.05, temperature: 0.8, repeatPenalty: 1.3 },
    { topK: 5, topP: 1, minP: 0, temperature: 1, frequencyPenalty: 0.7, presencePenalty: 0.4, logitBias: { 1: 5, 2: -Infinity } },
    { topK: 0, topP: 0.9, minP: 0, temperature: 1.1, repeatPenalty: 1.1, logitBias: { 0: 2 } },
    { topK: 40, topP: 1, minP: 0.1, temperature: 0.5, logitBias: { 0: -Infinity, 1: -Infinity } },
  ];
  let compared = 0;
  for (const { name, logits } of vocabularies(23)) {
    settings.forEach((o, k) => {
      const seed = 77 + k;
      const sampler = new Sampler({ ...o, seed });
      const rng = new Xoshiro128(seed);
      const history: number[] = [];
      for (let draw = 0; draw < 6; draw++) {
        const want = referenceSample(logits, o, rng, history);
        assert.equal(sampler.sample(logits, history), want, `${name}, ${JSON.stringify(o)}, draw ${draw}`);
        history.push(want, (want * 31 + draw) % logits.length);
        compared++;
      }
    });
  }
  assert.equal(compared, 8 * 4 * 6);
});

test('top-p over a whole vocabulary cuts where a full sort would, at the edges of its bands', () => {
  // Logits on and beside the band edges (an eighth of a nat), many equal, p set so the cut falls
  // inside a crowded band.
  const logits = Float32Array.from({ length: 4096 }, (_, i) => 10 - (i % 97) / 8 - (i % 3 === 0 ? 2 ** -20 : 0));
  for (const topP of [0.3, 0.61, 0.9, 0.999, 0.99999]) {
    const o = { topK: 0, topP, minP: 0, temperature: 1 };
    const sampler = new Sampler({ ...o, seed: 5 });
    const rng = new Xoshiro128(5);
    for (let draw = 0; draw < 20; draw++)
      assert.equal(sampler.sample(logits), referenceSample(logits, o, rng), `top-p ${topP}, draw ${draw}`);
  }
});

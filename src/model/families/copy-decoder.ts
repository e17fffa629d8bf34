/**
 * A Llama model that repeats its context: after position t it predicts the token at position
 * t + 1 - period. Its weights are built, not trained, so that text which quotes its own input (an
 * edit of a file, a summary that cites) can be measured on a model of a real shape: speculative
 * decoding's drafts from the context are then right, and the speed of checking them is that of
 * any model of the shape (every matrix is read and multiplied as usual).
 *
 * How it works (C = KV heads x head size, the width of the values):
 * - each token's embedding is a random +-1 code of C values, plus one constant channel;
 * - layer 0's queries and keys take only the constant channel, so after RoPE a score depends only
 *   on the distance between two positions; the rotary pairs with higher frequencies, their keys
 *   turned by period - 1 steps, peak together at exactly that distance, and the weights are
 *   scaled so that the peak beats every other distance in the context by a wide margin;
 * - its values carry the code, and its output writes the code found into a second block of C
 *   channels; the head reads that block, so the code of the token one period back scores highest;
 * - every other attention output and every FFN down projection is zero, so those layers add
 *   nothing (their other matrices are random, read and multiplied all the same).
 */
import { Prng } from '../../util/prng.js';
import { CairnError } from '../../util/errors.js';
import type { SyntheticModelSpec, SyntheticTensors } from '../synthetic-tensors.js';

/** The rope base copy models are written with: their rotary frequencies spread over (0.02, 1]. */
export const COPY_ROPE_BASE = 100;
/** Metadata key of the period a copy model repeats its context with. */
export const COPY_PERIOD_KEY = 'cairn.copy_period';
/** Rotary pairs of a lower frequency than this are left out (they barely tell neighbours apart). */
const MIN_FREQUENCY = 0.02;
/** How far the score of the position one period back stays above every other, in logits. */
const SCORE_MARGIN = 30;
/** The head's logit of the copied token. */
const COPY_LOGIT = 20;

/** The +-1 code of a token (C values), the same for every model of this seed. */
function tokenCode(seed: number, token: number, c: number): Float32Array {
  const rng = new Prng((seed * 0x9e3779b1 + token * 0x85ebca6b + 0x632be5ab) >>> 0);
  const v = new Float32Array(c);
  for (let i = 0; i < c; i++) v[i] = rng.next() < 0.5 ? -1 : 1;
  return v;
}

/** The copy model's geometry, derived from its shape and period. */
interface CopyGeometry {
  /** Width of the code (KV heads x head size). */
  readonly c: number;
  /** Head size. */
  readonly d: number;
  /** Rotary pairs used, and their amplitude. */
  readonly pairs: readonly number[];
  readonly amplitude: number;
  /** Frequency of each rotary pair. */
  readonly theta: Float64Array;
}

function geometry(spec: SyntheticModelSpec, period: number): CopyGeometry {
  const d = spec.headDim ?? spec.nEmbd / spec.nHead;
  const c = spec.nKvHead * d;
  const ctx = spec.ctx ?? 2048;
  if (spec.arch !== 'llama' || spec.moe || spec.mla) throw new CairnError('BAD_ARGUMENT', 'a copy model is a dense llama model');
  if (2 * c + 1 > spec.nEmbd) throw new CairnError('BAD_ARGUMENT', `a copy model needs an embedding of at least ${2 * c + 1} (2 x KV heads x head size + 1)`);
  if (d % 2 !== 0) throw new CairnError('BAD_ARGUMENT', 'a copy model needs an even head size');
  if (!Number.isInteger(period) || period < 2 || period >= ctx) {
    throw new CairnError('BAD_ARGUMENT', `the copy period must be an integer in [2, ${ctx - 1}] (the shape's context is ${ctx})`);
  }
  const theta = new Float64Array(d / 2);
  for (let i = 0; i < d / 2; i++) theta[i] = COPY_ROPE_BASE ** ((-2 * i) / d);
  const pairs = [...theta.keys()].filter((i) => theta[i] >= MIN_FREQUENCY);
  // The smallest margin, in units of amplitude^2, of the peak over any other distance in the context.
  const delta = period - 1;
  let gap = Infinity;
  for (let n = 0; n < ctx; n++) {
    if (n === delta) continue;
    let g = 0;
    for (const i of pairs) g += 1 - Math.cos((n - delta) * theta[i]);
    gap = Math.min(gap, g);
  }
  const amplitude = Math.sqrt((SCORE_MARGIN * Math.sqrt(d)) / gap);
  return { c, d, pairs, amplitude, theta };
}

/** Writes the tensors of a copy model of `spec`'s shape (llama tensor names and order). */
export function synthesizeCopyDecoder(spec: SyntheticModelSpec, out: SyntheticTensors, period: number): void {
  const e = spec.nEmbd;
  const { c, d, pairs, amplitude, theta } = geometry(spec, period);
  const nHead = spec.nHead;
  const nKv = spec.nKvHead;
  const group = nHead / nKv;
  const V = spec.nVocab;
  const seed = spec.seed;
  const constant = Math.sqrt(c); // the constant channel, at index 2c
  const rms0 = Math.sqrt((c + constant * constant) / e); // a token embedding's RMS
  const constantIn = constant / rms0; // the constant channel after layer 0's norm
  out.given('token_embd.weight', V, e, () => {
    const w = new Float32Array(V * e);
    for (let t = 0; t < V; t++) {
      w.set(tokenCode(seed, t, c), t * e);
      w[t * e + 2 * c] = constant;
    }
    return w;
  });
  out.constant('output_norm.weight', new Float32Array(e).fill(1));
  // The last residual: the token's code, the copied code and the constant channel.
  const rmsOut = Math.sqrt((2 * c + constant * constant) / e);
  const gain = (COPY_LOGIT * rmsOut) / c;
  out.given('output.weight', V, e, () => {
    const w = new Float32Array(V * e);
    for (let t = 0; t < V; t++) {
      const code = tokenCode(seed, t, c);
      for (let i = 0; i < c; i++) w[t * e + c + i] = gain * code[i];
    }
    return w;
  });
  const zeros = (rows: number, cols: number) => () => new Float32Array(rows * cols);
  for (let l = 0; l < spec.nLayer; l++) {
    const p = `blk.${l}.`;
    out.constant(`${p}attn_norm.weight`, new Float32Array(e).fill(1));
    if (l === 0) {
      out.given(`${p}attn_q.weight`, nHead * d, e, () => {
        const w = new Float32Array(nHead * d * e);
        for (let h = 0; h < nHead; h++) for (const i of pairs) w[(h * d + 2 * i) * e + 2 * c] = amplitude / constantIn;
        return w;
      });
      // Keys turned by period - 1 steps: the score of query t and key s is the sum over the pairs
      // of cos((t - s - (period - 1)) theta), largest at s = t + 1 - period.
      out.given(`${p}attn_k.weight`, nKv * d, e, () => {
        const w = new Float32Array(nKv * d * e);
        for (let g = 0; g < nKv; g++) {
          for (const i of pairs) {
            w[(g * d + 2 * i) * e + 2 * c] = (amplitude * Math.cos((period - 1) * theta[i])) / constantIn;
            w[(g * d + 2 * i + 1) * e + 2 * c] = (amplitude * Math.sin((period - 1) * theta[i])) / constantIn;
          }
        }
        return w;
      });
      out.given(`${p}attn_v.weight`, c, e, () => {
        const w = new Float32Array(c * e);
        for (let j = 0; j < c; j++) w[j * e + j] = rms0;
        return w;
      });
      // The first query head of each KV group writes the code it found into channels c .. 2c.
      out.given(`${p}attn_output.weight`, e, nHead * d, () => {
        const w = new Float32Array(e * nHead * d);
        for (let g = 0; g < nKv; g++) for (let j = 0; j < d; j++) w[(c + g * d + j) * nHead * d + g * group * d + j] = 1;
        return w;
      });
    } else {
      out.matrix(`${p}attn_q.weight`, nHead * d, e, 1 / Math.sqrt(e), l);
      out.matrix(`${p}attn_k.weight`, c, e, 1 / Math.sqrt(e), l);
      out.matrix(`${p}attn_v.weight`, c, e, 1 / Math.sqrt(e), l);
      out.given(`${p}attn_output.weight`, e, nHead * d, zeros(e, nHead * d), l);
    }
    out.constant(`${p}ffn_norm.weight`, new Float32Array(e).fill(1));
    out.matrix(`${p}ffn_gate.weight`, spec.nFf, e, 1 / Math.sqrt(e), l);
    out.matrix(`${p}ffn_up.weight`, spec.nFf, e, 1 / Math.sqrt(e), l);
    out.given(`${p}ffn_down.weight`, e, spec.nFf, zeros(e, spec.nFf), l);
  }
}

/**
 * A prompt for a copy model of this period: BOS, `period` random tokens past the byte tokens, then
 * the first `begun` of them again. The model continues with the rest of them, and round again.
 * Returns the prompt and the tokens the model goes on with, `count` of them.
 */
export function copyPrompt(period: number, nVocab: number, begun: number, count: number, seed = 1): { prompt: number[]; continuation: number[] } {
  const first = 259; // after <unk>, <s>, </s> and the 256 byte tokens of the synthetic vocabulary
  if (nVocab <= first) throw new CairnError('BAD_ARGUMENT', `a copy prompt needs a vocabulary past its ${first} special and byte tokens`);
  if (!Number.isInteger(begun) || begun < 0 || begun > period) throw new CairnError('BAD_ARGUMENT', `the copy prompt's repeated start must be 0 to ${period} tokens`);
  const rng = new Prng(seed >>> 0);
  const text = Array.from({ length: period }, () => first + rng.int(nVocab - first));
  const prompt = [1, ...text, ...text.slice(0, begun)];
  const continuation = Array.from({ length: count }, (_, i) => text[(begun + i) % period]);
  return { prompt, continuation };
}

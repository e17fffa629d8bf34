/**
 * Sampling options: what a request may set, the defaults, and the validation that turns a loose
 * options object into a complete, checked one.
 */
import { CairnError } from '../util/errors.js';

/**
 * How to pick the next token. Every field is optional; `resolveSamplerOptions` fills the defaults.
 *
 * The chain runs in llama.cpp's default order: logit bias, penalties, top-k, top-p, min-p,
 * temperature, then a draw from what is left. Top-p and min-p therefore see the distribution at
 * temperature 1, as in llama.cpp. Defaults that follow llama.cpp's `common_params_sampling`:
 * temperature 0.8, topK 40, topP 0.95, minP 0.05, repeatPenalty 1.0 (off), repeatLastN 64,
 * presence and frequency penalties 0 (off), random seed.
 *
 * OpenAI request fields map as: `temperature`, `top_p` -> topP, `presence_penalty`,
 * `frequency_penalty`, `logit_bias`, `seed`; the others are llama.cpp extensions.
 */
export interface SamplerOptions {
  /** Divides the logits before the draw; 0 picks the most likely token (greedy). Default 0.8. */
  temperature?: number;
  /** Keep only the k most likely tokens; 0 or less keeps all. Default 40. */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p; 1 = off. Default 0.95. */
  topP?: number;
  /** Drop tokens less likely than minP times the most likely one; 0 = off. Default 0.05. */
  minP?: number;
  /**
   * llama.cpp repetition penalty over the last `repeatLastN` tokens: a positive logit is divided
   * by it, a negative (or zero) one multiplied. 1 = off. Default 1.
   */
  repeatPenalty?: number;
  /** How many trailing history tokens the penalties look at; 0 = none, -1 = all. Default 64. */
  repeatLastN?: number;
  /** OpenAI presence penalty: subtracted once from every token seen in the window. Default 0. */
  presencePenalty?: number;
  /** OpenAI frequency penalty: subtracted once per occurrence in the window. Default 0. */
  frequencyPenalty?: number;
  /**
   * Added to the logits of the given token ids before anything else (OpenAI `logit_bias`; keys
   * may be numeric strings as JSON delivers them). -Infinity bans a token.
   */
  logitBias?: ReadonlyMap<number, number> | Readonly<Record<string, number>>;
  /**
   * Seed of the random draw: a non-negative safe integer gives the same tokens on every machine.
   * Absent, or -1 as in llama.cpp, means a fresh random seed.
   */
  seed?: number;
}

/** Options with every default filled in and every value checked. */
export interface ResolvedSamplerOptions {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly minP: number;
  readonly repeatPenalty: number;
  readonly repeatLastN: number;
  readonly presencePenalty: number;
  readonly frequencyPenalty: number;
  /** Biased token ids, parallel to `biasValues`. */
  readonly biasIds: Int32Array;
  readonly biasValues: Float32Array;
  /** Undefined when the caller asked for a random seed. */
  readonly seed: number | undefined;
}

/** The defaults, exported so documentation and callers can show them. */
export const SAMPLER_DEFAULTS = Object.freeze({
  temperature: 0.8,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
  repeatPenalty: 1,
  repeatLastN: 64,
  presencePenalty: 0,
  frequencyPenalty: 0,
});

function bad(message: string): CairnError {
  return new CairnError('BAD_ARGUMENT', message);
}

function finite(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw bad(`${name} must be a finite number, got ${String(value)}`);
  }
  return value;
}

function inRange(name: string, value: number, lo: number, hi: number): number {
  if (value < lo || value > hi) throw bad(`${name} must be in [${lo}, ${hi}], got ${value}`);
  return value;
}

function integer(name: string, value: number): number {
  if (!Number.isInteger(value)) throw bad(`${name} must be an integer, got ${value}`);
  return value;
}

function resolveBias(bias: SamplerOptions['logitBias']): { ids: Int32Array; values: Float32Array } {
  const entries: Array<[number, number]> = [];
  if (bias !== undefined) {
    const raw: Iterable<[string | number, number]> =
      bias instanceof Map ? bias.entries() : Object.entries(bias);
    for (const [key, value] of raw) {
      const id = typeof key === 'number' ? key : Number(key);
      // Ids are stored as int32: a larger one would wrap around to another token's id.
      if (!Number.isInteger(id) || id < 0 || id > 0x7fffffff || (typeof key === 'string' && key.trim() === '')) {
        throw bad(`logitBias key must be a token id (a non-negative integer), got ${String(key)}`);
      }
      if (typeof value !== 'number' || Number.isNaN(value) || value === Infinity) {
        throw bad(`logitBias for token ${id} must be a number or -Infinity, got ${String(value)}`);
      }
      entries.push([id, value]);
    }
  }
  const ids = new Int32Array(entries.length);
  const values = new Float32Array(entries.length);
  entries.forEach(([id, value], i) => {
    ids[i] = id;
    values[i] = value;
  });
  return { ids, values };
}

/** Fills defaults and checks ranges; bad values raise a CairnError with code BAD_ARGUMENT. */
export function resolveSamplerOptions(options: SamplerOptions = {}): ResolvedSamplerOptions {
  const d = SAMPLER_DEFAULTS;
  const temperature = finite('temperature', options.temperature, d.temperature);
  if (temperature < 0) throw bad(`temperature must be >= 0, got ${temperature}`);
  const topK = integer('topK', finite('topK', options.topK, d.topK));
  const topP = inRange('topP', finite('topP', options.topP, d.topP), 0, 1);
  const minP = inRange('minP', finite('minP', options.minP, d.minP), 0, 1);
  const repeatPenalty = finite('repeatPenalty', options.repeatPenalty, d.repeatPenalty);
  if (repeatPenalty <= 0) throw bad(`repeatPenalty must be > 0, got ${repeatPenalty}`);
  const repeatLastN = integer('repeatLastN', finite('repeatLastN', options.repeatLastN, d.repeatLastN));
  if (repeatLastN < -1) throw bad(`repeatLastN must be -1 (all), 0 (off) or positive, got ${repeatLastN}`);
  const presencePenalty = finite('presencePenalty', options.presencePenalty, d.presencePenalty);
  const frequencyPenalty = finite('frequencyPenalty', options.frequencyPenalty, d.frequencyPenalty);
  let seed: number | undefined;
  if (options.seed !== undefined && options.seed !== -1) {
    if (!Number.isSafeInteger(options.seed) || options.seed < 0) {
      throw bad(`seed must be a non-negative integer (or -1 for random), got ${options.seed}`);
    }
    seed = options.seed;
  }
  const bias = resolveBias(options.logitBias);
  return {
    temperature,
    topK,
    topP,
    minP,
    repeatPenalty,
    repeatLastN,
    presencePenalty,
    frequencyPenalty,
    biasIds: bias.ids,
    biasValues: bias.values,
    seed,
  };
}

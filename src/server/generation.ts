/**
 * What every generating route shares: turning API sampling fields into engine options, starting a
 * generation that stops when the client goes away, and rendering tokens and logprobs for output.
 */
import type { LoadedModel } from '../engine/load.js';
import type { GenerateRequest, GenerationConstraint, GenerationEvent } from '../engine/engine.js';
import { resolveSamplerOptions, type SamplerOptions, type StepLogprobs } from '../sampling/index.js';
import { isCairnError } from '../util/errors.js';
import { badRequest } from './errors.js';

/** API sampling fields (OpenAI names and llama.cpp extensions), all optional. */
export interface ApiSampling {
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  min_p?: number | null;
  repeat_penalty?: number | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  seed?: number | null;
  logit_bias?: Record<string, number> | null;
}

/** Token ids a request may name: those of the tokenizer that the model also has logits for. */
export function vocabularySize(model: LoadedModel): number {
  return Math.min(model.config.nVocab, model.tokenizer.vocabSize);
}

/**
 * `logit_bias` with its keys checked as token ids of the model (decimal integers below the
 * vocabulary size) and its values as finite numbers in [-100, 100], before any key becomes a
 * number that could be narrowed (2^32 + 313 must not turn into token 313). Errors are 400s naming
 * `param`.
 */
export function logitBiasFromApi(
  bias: Readonly<Record<string, unknown>> | null | undefined,
  model: LoadedModel,
  param = 'logit_bias',
): Map<number, number> | undefined {
  if (bias === null || bias === undefined) return undefined;
  const n = vocabularySize(model);
  const out = new Map<number, number>();
  for (const [key, value] of Object.entries(bias)) {
    if (!/^\d+$/.test(key) || Number(key) >= n) {
      throw badRequest(`logit_bias key "${key.slice(0, 32)}" is not a token id of this model (an integer from 0 to ${n - 1})`, param);
    }
    if (typeof value !== 'number' || !(value >= -100 && value <= 100)) {
      throw badRequest(`logit_bias for token ${key} must be a number from -100 to 100`, param);
    }
    out.set(Number(key), value);
  }
  return out;
}

/**
 * `options` once the sampler has accepted them, or a 400: checked here, before a streamed answer
 * sends its headers, not when the generation starts (which would answer 200 with an error event).
 */
export function checkedSampler(options: SamplerOptions): SamplerOptions {
  try {
    resolveSamplerOptions(options);
  } catch (err) {
    if (isCairnError(err, 'BAD_ARGUMENT')) throw badRequest(err.message);
    throw err;
  }
  return options;
}

/** Sampler options for API fields; unset fields take llama.cpp server's defaults. */
export function samplerFromApi(s: ApiSampling, model: LoadedModel): SamplerOptions {
  const opt = <T>(v: T | null | undefined): T | undefined => (v === null ? undefined : v);
  return checkedSampler({
    temperature: opt(s.temperature),
    topP: opt(s.top_p),
    topK: opt(s.top_k),
    minP: opt(s.min_p),
    repeatPenalty: opt(s.repeat_penalty),
    presencePenalty: opt(s.presence_penalty),
    frequencyPenalty: opt(s.frequency_penalty),
    seed: opt(s.seed),
    logitBias: logitBiasFromApi(s.logit_bias, model),
  });
}

/** Normalizes `stop` to an array. */
export function stopList(stop: string | string[] | null | undefined): string[] {
  if (stop === null || stop === undefined) return [];
  return typeof stop === 'string' ? [stop] : stop;
}

/** Everything a route decided about one generation. */
export interface ServerGeneration {
  readonly prompt: number[];
  /** Most tokens; default: what is left of the context. */
  readonly maxTokens?: number | null;
  readonly sampler: SamplerOptions;
  readonly stop?: string[];
  readonly logprobs?: number;
  /** Logprobs of the prompt's tokens too, with this many alternatives (echo with logprobs). */
  readonly promptLogprobs?: number;
  readonly ignoreEos?: boolean;
  readonly constraint?: GenerationConstraint;
  /** Most draft tokens per step (speculative decoding; 0 = off; default: the server's). */
  readonly maxDraft?: number;
}

/** Starts a generation; aborting `signal` (client gone) stops it and frees its slot. */
export function startGeneration(model: LoadedModel, g: ServerGeneration, signal: AbortSignal): AsyncIterable<GenerationEvent> {
  const room = model.engine.runner.ctxPerSlot - g.prompt.length;
  const req: GenerateRequest = {
    prompt: g.prompt,
    // 0 reads the prompt only (for its logprobs).
    maxTokens: g.maxTokens === 0 ? 0 : Math.max(1, Math.min(g.maxTokens ?? room, room)),
    sampler: g.sampler,
    stop: g.stop,
    logprobs: g.logprobs,
    promptLogprobs: g.promptLogprobs,
    ignoreEos: g.ignoreEos,
    constraint: g.constraint,
    maxDraft: g.maxDraft,
    signal,
  };
  return model.engine.generate(req);
}

/** A token as text and bytes (a byte-fallback piece may be part of a character). */
export function tokenView(model: LoadedModel, id: number): { token: string; bytes: number[] } {
  const bytes = model.tokenizer.tokenPiece(id);
  return { token: new TextDecoder().decode(bytes), bytes: Array.from(bytes) };
}

/** OpenAI chat-format logprobs entry for one step. */
export function chatLogprob(model: LoadedModel, lp: StepLogprobs): unknown {
  return {
    ...tokenView(model, lp.id),
    logprob: lp.logprob,
    top_logprobs: lp.top.map((t) => ({ ...tokenView(model, t.id), logprob: t.logprob })),
  };
}

/**
 * What every generating route shares: turning API sampling fields into engine options, starting a
 * generation that stops when the client goes away, and rendering tokens and logprobs for output.
 */
import type { LoadedModel } from '../engine/load.js';
import type { GenerateRequest, GenerationConstraint, GenerationEvent } from '../engine/engine.js';
import type { SamplerOptions, StepLogprobs } from '../sampling/index.js';

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

/** Sampler options for API fields; unset fields take llama.cpp server's defaults. */
export function samplerFromApi(s: ApiSampling): SamplerOptions {
  const opt = <T>(v: T | null | undefined): T | undefined => (v === null ? undefined : v);
  return {
    temperature: opt(s.temperature),
    topP: opt(s.top_p),
    topK: opt(s.top_k),
    minP: opt(s.min_p),
    repeatPenalty: opt(s.repeat_penalty),
    presencePenalty: opt(s.presence_penalty),
    frequencyPenalty: opt(s.frequency_penalty),
    seed: opt(s.seed),
    logitBias: s.logit_bias ?? undefined,
  };
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
  readonly ignoreEos?: boolean;
  readonly constraint?: GenerationConstraint;
}

/** Starts a generation; aborting `signal` (client gone) stops it and frees its slot. */
export function startGeneration(model: LoadedModel, g: ServerGeneration, signal: AbortSignal): AsyncIterable<GenerationEvent> {
  const room = model.engine.runner.ctxPerSlot - g.prompt.length;
  const req: GenerateRequest = {
    prompt: g.prompt,
    maxTokens: Math.max(1, Math.min(g.maxTokens ?? room, room)),
    sampler: g.sampler,
    stop: g.stop,
    logprobs: g.logprobs,
    ignoreEos: g.ignoreEos,
    constraint: g.constraint,
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

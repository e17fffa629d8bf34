/**
 * Several choices of one request (`n` > 1, or one per prompt of an array prompt) generated at
 * once, their events merged into one stream tagged with the choice's index. The choices of one
 * prompt share its KV: the first reads the prompt alone, and the others start once it has (its
 * first event), so the engine copies the prompt's KV from its slot instead of reading it again.
 */
import { setMaxListeners } from 'node:events';
import type { GenerationEvent, GenerationSummary } from '../engine/engine.js';
import type { LoadedModel } from '../engine/load.js';
import { startGeneration, type ServerGeneration } from './generation.js';
import { badRequest } from './errors.js';

/** Most choices one request may ask for, whatever the server's slots and queue. */
export const MAX_CHOICES = 64;

/**
 * Refuses (400, naming `param`) a request for more choices than the engine can take in at once:
 * each choice takes a slot or a place in the queue, so one asking for more than there are would
 * be answered 429 however long its client waited and retried.
 */
export function checkChoiceCount(model: LoadedModel, count: number, param: string, asked = `${count} choices`): void {
  const { runner, maxQueue } = model.engine;
  const most = Math.min(MAX_CHOICES, runner.slots + maxQueue);
  if (count > most) {
    throw badRequest(
      `${asked} is more than this server generates for one request (at most ${most}: ${runner.slots} slots and a queue of ${maxQueue}); ask for fewer`,
      param,
    );
  }
}

/** One choice's event. */
export interface ChoiceEvent {
  readonly index: number;
  readonly event: GenerationEvent;
}

/** What to generate: per prompt, its generation and how many choices it gets. */
export interface ChoicePlan {
  readonly gen: ServerGeneration;
  /** Choices of this prompt; their indices follow on from the previous prompt's. */
  readonly n: number;
  /** Choice i's generation (i >= 1) where it needs state of its own, such as a constraint; default: `gen`. */
  readonly choice?: (i: number) => ServerGeneration;
}

/**
 * Generates every choice of `plans` and yields their events as they come, each choice's in order.
 * With a seed, choice i of a prompt samples with seed + i (the same seed would give n copies).
 * Stopping the iteration (or aborting `signal`) stops every choice.
 *
 * Each prompt's first choice is admitted here, before anything is iterated: a full queue or a
 * refused prompt throws now (the route answers 429 or 400 before it starts a stream), and the
 * choices already admitted are stopped.
 */
export function generateChoices(model: LoadedModel, plans: readonly ChoicePlan[], signal: AbortSignal): AsyncGenerator<ChoiceEvent> {
  const iterators: { index: number; it: AsyncIterator<GenerationEvent> }[] = [];
  const start = (index: number, gen: ServerGeneration): number => {
    iterators.push({ index, it: startGeneration(model, gen, signal)[Symbol.asyncIterator]() });
    return iterators.length - 1;
  };
  // Each choice's generation listens for the abort: more listeners than Node's default of 10
  // (which would print a leak warning) is what a request for many choices needs.
  setMaxListeners(plans.reduce((sum, p) => sum + p.n, 0) + 10, signal);
  // The choices after a prompt's first wait for its first event: by then its prompt is read.
  const waiting = new Map<number, () => void>();
  let index = 0;
  try {
    for (const plan of plans) {
      const first = index;
      const k = start(first, plan.gen);
      if (plan.n > 1) {
        waiting.set(k, () => {
          for (let i = 1; i < plan.n; i++) start(first + i, withSeedOffset(plan.choice?.(i) ?? plan.gen, i));
        });
      }
      index += plan.n;
    }
  } catch (err) {
    for (const { it } of iterators) void it.return?.();
    throw err;
  }
  return interleave(iterators, waiting);
}

/** The admitted choices' events as they come; a first event starts the prompt's other choices. */
async function* interleave(iterators: { index: number; it: AsyncIterator<GenerationEvent> }[], waiting: Map<number, () => void>): AsyncGenerator<ChoiceEvent> {
  const pending = new Map<number, Promise<{ k: number; r: IteratorResult<GenerationEvent> }>>();
  const next = (k: number) => iterators[k].it.next().then((r) => ({ k, r }));
  try {
    for (let k = 0; k < iterators.length; k++) pending.set(k, next(k));
    while (pending.size > 0) {
      const { k, r } = await Promise.race(pending.values());
      const then = waiting.get(k);
      if (then) {
        waiting.delete(k);
        const from = iterators.length;
        then();
        for (let j = from; j < iterators.length; j++) pending.set(j, next(j));
      }
      if (r.done) {
        pending.delete(k);
        continue;
      }
      pending.set(k, next(k));
      yield { index: iterators[k].index, event: r.value };
    }
  } finally {
    // A consumer that stops early stops every choice (each frees its slot).
    await Promise.all(iterators.map(({ it }) => it.return?.()));
  }
}

function withSeedOffset(gen: ServerGeneration, i: number): ServerGeneration {
  const seed = gen.sampler.seed;
  return seed === undefined || seed === -1 ? gen : { ...gen, sampler: { ...gen.sampler, seed: (seed + i) >>> 0 } };
}

/**
 * Prompt tokens as the API's usage counts them: each prompt once, however many choices it has
 * (`perPrompt`, side by side), from the first of its choices that has a summary.
 */
export function promptTokensOnce(summaries: readonly (GenerationSummary | undefined)[], perPrompt: number): number {
  const group = Math.max(1, Math.floor(perPrompt));
  let tokens = 0;
  for (let p = 0; p < summaries.length; p += group) tokens += summaries.slice(p, p + group).find((s) => s !== undefined)?.promptTokens ?? 0;
  return tokens;
}

/**
 * The choices' totals as one summary, for the metrics (the first choice's timings): the engine's
 * work, so each choice's prompt and cache use count (promptTokensOnce gives the prompt as received).
 */
export function combinedSummary(summaries: readonly (GenerationSummary | undefined)[]): GenerationSummary | undefined {
  const first = summaries[0];
  if (!first) return undefined;
  const sum = (f: (s: GenerationSummary) => number) => summaries.reduce((a, s) => a + (s ? f(s) : 0), 0);
  return { ...first, promptTokens: sum((s) => s.promptTokens), cachedTokens: sum((s) => s.cachedTokens), completionTokens: sum((s) => s.completionTokens) };
}

/**
 * Drives a streamed reply's choices: `onEvent` gets each event of a choice before its end,
 * `onFinish` each choice that ends well. Returns every choice's summary (undefined where none came)
 * and the first failure: a choice's error or abort (an abort stops them all), or the events throwing.
 */
export async function streamChoices(
  events: AsyncIterable<ChoiceEvent>,
  n: number,
  onEvent: (index: number, event: Exclude<GenerationEvent, { type: 'done' }>) => void,
  onFinish: (index: number, summary: GenerationSummary) => void,
): Promise<{ summaries: (GenerationSummary | undefined)[]; error?: Error }> {
  const summaries: (GenerationSummary | undefined)[] = new Array(n).fill(undefined);
  let error: Error | undefined;
  try {
    for await (const { index, event } of events) {
      if (event.type !== 'done') {
        onEvent(index, event);
        continue;
      }
      summaries[index] = event.summary;
      if (event.summary.finishReason === 'error' || event.summary.finishReason === 'abort') {
        error ??= event.summary.error ?? new Error('generation ended without a result');
        if (event.summary.finishReason === 'abort') break;
        continue;
      }
      onFinish(index, event.summary);
    }
  } catch (err) {
    error = err as Error;
  }
  return { summaries, error };
}

/**
 * The requests an engine holds right now, with their tokens and speed so far, and the last ones
 * that ended (from the server's metrics), as the Live view lists them.
 */
import type { Engine } from '../engine/engine.js';
import type { EndedRequest } from '../server/metrics.js';
import type { FinishedRequest, RunningRequest } from './wire.js';

/** Running requests listed at most; a snapshot says how many there are in all. */
export const MAX_RUNNING_LISTED = 64;
/** Ended requests listed. */
export const FINISHED_LISTED = 20;

/** The fields of one of the engine's sequences that the list reads. */
interface SequenceView {
  readonly id: number;
  readonly req: { readonly prompt: readonly number[]; readonly maxTokens: number };
  readonly generated: readonly number[];
  readonly tStart: number;
  readonly tFirstToken: number;
  readonly finished: boolean;
}

function isSequence(v: unknown): v is SequenceView {
  const s = v as Partial<SequenceView> | null;
  return (
    typeof s?.id === 'number' &&
    Array.isArray(s.req?.prompt) &&
    typeof s.req.maxTokens === 'number' &&
    Array.isArray(s.generated) &&
    typeof s.tStart === 'number' &&
    typeof s.tFirstToken === 'number'
  );
}

function sequences(list: unknown): SequenceView[] {
  return Array.isArray(list) ? list.filter(isSequence) : [];
}

/**
 * The engine's waiting and running sequences. The Engine tells only counts publicly, and the
 * server's metrics hear of a request only when it starts and ends, so the tokens of a request still
 * running are read from the engine's own queues; checked field by field, so that a change there
 * empties the list (and fails the dashboard test) rather than breaking the feed.
 */
function held(engine: Engine): { queued: SequenceView[]; active: SequenceView[] } {
  const e = engine as unknown as { queue?: unknown; active?: unknown };
  return { queued: sequences(e.queue), active: sequences(e.active) };
}

/** The requests `engine` holds at `now` (performance.now()), oldest first, at most MAX_RUNNING_LISTED; and how many in all. */
export function runningRequests(
  engine: Engine | undefined,
  model: string,
  now = performance.now(),
): { list: RunningRequest[]; total: number } {
  if (!engine) return { list: [], total: 0 };
  const { queued, active } = held(engine);
  const all = [
    ...active.filter((s) => !s.finished).map((s) => ({ s, waiting: false })),
    ...queued.filter((s) => !s.finished).map((s) => ({ s, waiting: true })),
  ].sort((a, b) => a.s.id - b.s.id);
  const list = all.slice(0, MAX_RUNNING_LISTED).map(({ s, waiting }): RunningRequest => {
    const tokens = s.generated.length;
    const first = tokens > 0 && s.tFirstToken > 0 ? s.tFirstToken : undefined;
    const decodeSeconds = first !== undefined ? (now - first) / 1000 : 0;
    return {
      id: s.id,
      model,
      phase: waiting ? 'queued' : tokens > 0 ? 'generating' : 'prompt',
      promptTokens: s.req.prompt.length,
      tokens,
      maxTokens: s.req.maxTokens,
      tokensPerSecond: tokens > 1 && decodeSeconds > 0 ? (tokens - 1) / decodeSeconds : null,
      elapsedMs: Math.max(0, now - s.tStart),
      ttftMs: first !== undefined ? first - s.tStart : null,
    };
  });
  return { list, total: all.length };
}

/** The last FINISHED_LISTED of `recent` (oldest first, as the metrics keep them), newest first. */
export function finishedRequests(recent: readonly EndedRequest[]): FinishedRequest[] {
  return recent
    .slice(-FINISHED_LISTED)
    .reverse()
    .map((r) => ({
      seq: r.seq,
      endedAt: r.endedAt,
      promptTokens: r.promptTokens,
      completionTokens: r.completionTokens,
      tokensPerSecond: r.decodeTokensPerSecond,
      ttftMs: r.ttftMs,
    }));
}

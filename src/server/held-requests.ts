/**
 * The requests an engine holds right now, with their tokens and speed so far, and the last ones
 * that ended (from the server's metrics), as status pages (the dashboard's Live view) list them.
 * The dashboard's wire types (src/dashboard/wire.ts, which the browser build reads without Node's
 * types) repeat these shapes; the compiler checks they agree where the snapshot is built.
 */
import type { Engine } from '../engine/engine.js';
import type { EndedRequest } from './metrics.js';

/** A request the engine holds now: waiting for a slot, reading its prompt, or generating. */
export interface RunningRequest {
  /** The engine's number for it (counting from 1 since the model loaded). */
  readonly id: number;
  readonly model: string;
  readonly phase: 'queued' | 'prompt' | 'generating';
  readonly promptTokens: number;
  /** Tokens generated so far. */
  readonly tokens: number;
  /** The most it may generate. */
  readonly maxTokens: number;
  /** Decode speed so far: tokens after the first, per second since the first (null: fewer than two yet). */
  readonly tokensPerSecond: number | null;
  /** Since it reached the engine, in ms. */
  readonly elapsedMs: number;
  /** Time to its first token in ms (null: none yet). */
  readonly ttftMs: number | null;
}

/** A request that ended. */
export interface FinishedRequest {
  /** Its place in the order requests ended (1, 2, ...). */
  readonly seq: number;
  /** ms since the epoch. */
  readonly endedAt: number;
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Decode speed: tokens after the first per second (0: fewer than two tokens). */
  readonly tokensPerSecond: number;
  readonly ttftMs: number;
}

/** Running requests listed at most; a snapshot says how many there are in all. */
export const MAX_RUNNING_LISTED = 64;
/** Ended requests listed. */
export const FINISHED_LISTED = 20;

/** The requests `engine` holds at `now` (performance.now()), oldest first, at most MAX_RUNNING_LISTED; and how many in all. */
export function runningRequests(
  engine: Engine | undefined,
  model: string,
  now = performance.now(),
): { list: RunningRequest[]; total: number } {
  if (!engine) return { list: [], total: 0 };
  const all = engine.heldSequences();
  const list = all.slice(0, MAX_RUNNING_LISTED).map((s): RunningRequest => {
    const waiting = s.queued;
    const tokens = s.generated;
    const first = tokens > 0 && s.tFirstToken > 0 ? s.tFirstToken : undefined;
    const decodeSeconds = first !== undefined ? (now - first) / 1000 : 0;
    return {
      id: s.id,
      model,
      phase: waiting ? 'queued' : tokens > 0 ? 'generating' : 'prompt',
      promptTokens: s.promptTokens,
      tokens,
      maxTokens: s.maxTokens,
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

/**
 * Streaming stop strings. Text arrives in pieces (one per decoded token); the matcher passes on
 * what can safely be shown and holds back the shortest tail that could still grow into a stop
 * string. When a stop string completes, everything before it is released, the stop text itself is
 * not, and the matcher is done.
 *
 * Which stop wins when several match: the one that completes first (smallest end offset), and of
 * those the one that starts first. That is what a token-by-token stream would see, so the result
 * does not depend on how the text was split into pieces.
 */

/** What one `push` releases. */
export interface StopMatchResult {
  /** Text safe to show now (never part of a stop string). */
  readonly text: string;
  /** True once a stop string has matched; further input is ignored. */
  readonly stopped: boolean;
  /** The stop string that matched, when `stopped`. */
  readonly stop?: string;
}

/** Matches stop strings across streamed text pieces. Empty stop strings are ignored. */
export class StopMatcher {
  private readonly stops: readonly string[];
  private held = '';
  private matched: string | undefined;

  constructor(stops: readonly string[]) {
    this.stops = [...new Set(stops.filter((s) => typeof s === 'string' && s.length > 0))];
  }

  /** True once a stop string has matched. */
  get stopped(): boolean {
    return this.matched !== undefined;
  }

  /** The stop string that matched, if any. */
  get stop(): string | undefined {
    return this.matched;
  }

  /** Feeds the next piece of generated text. */
  push(piece: string): StopMatchResult {
    if (this.matched !== undefined) return { text: '', stopped: true, stop: this.matched };
    const text = this.held + piece;
    if (this.stops.length === 0) {
      this.held = '';
      return { text, stopped: false };
    }
    let bestEnd = Infinity;
    let bestStart = Infinity;
    let bestStop: string | undefined;
    // The held tail alone never contains a whole stop string, so any match here is new.
    for (const stop of this.stops) {
      const at = text.indexOf(stop);
      if (at < 0) continue;
      const end = at + stop.length;
      if (end < bestEnd || (end === bestEnd && at < bestStart)) {
        bestEnd = end;
        bestStart = at;
        bestStop = stop;
      }
    }
    if (bestStop !== undefined) {
      this.matched = bestStop;
      this.held = '';
      return { text: text.slice(0, bestStart), stopped: true, stop: bestStop };
    }
    const keep = this.partialTailLength(text);
    this.held = text.slice(text.length - keep);
    return { text: text.slice(0, text.length - keep), stopped: false };
  }

  /** Ends the stream: releases any held tail (nothing if a stop matched) and clears the state. */
  flush(): string {
    const rest = this.matched === undefined ? this.held : '';
    this.held = '';
    return rest;
  }

  /** Length of the longest suffix of `text` that is a proper prefix of some stop string. */
  private partialTailLength(text: string): number {
    let best = 0;
    for (const stop of this.stops) {
      const limit = Math.min(stop.length - 1, text.length);
      for (let len = limit; len > best; len--) {
        if (text.endsWith(stop.slice(0, len))) {
          best = len;
          break;
        }
      }
    }
    return best;
  }
}

/** Runs a constraint automaton over text, and walks it at random to produce documents. */
import type { Prng } from '../../../util/prng.js';
import type { Automaton, DfaState } from '../automaton.js';

const encoder = new TextEncoder();

/** Where a text leaves the automaton. */
export interface TextRun {
  /** State after the whole text; null when a byte was refused. */
  state: DfaState | null;
  /** Index of the first refused byte, or the text length. */
  consumed: number;
}

/** Feeds `text` (UTF-8) byte by byte. */
export function runText(automaton: Automaton, text: string | Uint8Array): TextRun {
  const bytes = typeof text === 'string' ? encoder.encode(text) : text;
  let state = automaton.initial;
  for (let i = 0; i < bytes.length; i++) {
    const next = state && automaton.step(state, bytes[i]);
    if (!next) return { state: null, consumed: i };
    state = next;
  }
  return { state, consumed: bytes.length };
}

/** Bytes the automaton takes in `state`. */
export function allowedBytes(automaton: Automaton, state: DfaState): number[] {
  const out: number[] = [];
  for (let b = 0; b < 256; b++) if (automaton.step(state, b)) out.push(b);
  return out;
}

/** Bytes a shortest-completion search tries: enough to close strings, values and containers. */
const FINISHING = Array.from('"]}0123456789-.:,aA/@TZ', (c) => c.charCodeAt(0));
const firstSteps = new WeakMap<DfaState, number | undefined>();

/**
 * The first byte of a shortest way from `state` to a complete document, searched breadth-first
 * over a few finishing bytes only (so the search stays small); undefined when none is found.
 */
export function firstStepToCompletion(automaton: Automaton, state: DfaState, maxStates = 2000): number | undefined {
  if (firstSteps.has(state)) return firstSteps.get(state);
  const first = new Map<DfaState, number>();
  let frontier: DfaState[] = [state];
  const seen = new Set<DfaState>([state]);
  let found: number | undefined;
  search: while (frontier.length > 0 && seen.size < maxStates) {
    const next: DfaState[] = [];
    for (const s of frontier) {
      for (const b of FINISHING) {
        const t = automaton.step(s, b);
        if (!t || seen.has(t)) continue;
        const origin = s === state ? b : first.get(s)!;
        if (t.accepting) {
          found = origin;
          break search;
        }
        seen.add(t);
        first.set(t, origin);
        next.push(t);
      }
    }
    frontier = next;
  }
  firstSteps.set(state, found);
  return found;
}

/**
 * A random document: random allowed bytes, and, more and more often after `patience` bytes, a
 * step along a shortest way to completion; it stops at a complete state with probability `stop`.
 * Throws when it reaches a state with no allowed byte that is not complete (a dead end), or runs
 * past `maxBytes`.
 */
export function randomDocument(automaton: Automaton, rng: Prng, options: { patience: number; maxBytes: number; stop: number }): Uint8Array {
  const out: number[] = [];
  let state = automaton.initial!;
  while (out.length < options.maxBytes) {
    const bytes = allowedBytes(automaton, state);
    if (state.accepting && (bytes.length === 0 || rng.next() < options.stop)) return Uint8Array.from(out);
    if (bytes.length === 0) throw new Error(`dead end after ${JSON.stringify(new TextDecoder().decode(Uint8Array.from(out)))}`);
    const urge = Math.max(0, out.length - options.patience) / 50;
    const pick =
      rng.next() < urge ? (firstStepToCompletion(automaton, state) ?? bytes[rng.int(bytes.length)]) : bytes[rng.int(bytes.length)];
    out.push(pick);
    state = automaton.step(state, pick)!;
  }
  throw new Error(`no complete document within ${options.maxBytes} bytes: ${new TextDecoder().decode(Uint8Array.from(out))}`);
}

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

const CLOSERS = new Set(Array.from('"]}', (c) => c.charCodeAt(0)));

/**
 * A random document: random allowed bytes, closing punctuation favoured more and more after
 * `patience` bytes, stopping at a complete state with probability `stop`. Throws when it reaches
 * a state with no allowed byte that is not complete (a dead end), or runs past `maxBytes`.
 */
export function randomDocument(automaton: Automaton, rng: Prng, options: { patience: number; maxBytes: number; stop: number }): Uint8Array {
  const out: number[] = [];
  let state = automaton.initial!;
  while (out.length < options.maxBytes) {
    const bytes = allowedBytes(automaton, state);
    if (state.accepting && (bytes.length === 0 || rng.next() < options.stop)) return Uint8Array.from(out);
    if (bytes.length === 0) throw new Error(`dead end after ${JSON.stringify(new TextDecoder().decode(Uint8Array.from(out)))}`);
    const closers = bytes.filter((b) => CLOSERS.has(b));
    const urge = Math.max(0, out.length - options.patience) / 50;
    const pick = closers.length > 0 && rng.next() < urge ? closers[rng.int(closers.length)] : bytes[rng.int(bytes.length)];
    out.push(pick);
    state = automaton.step(state, pick)!;
  }
  throw new Error(`no complete document within ${options.maxBytes} bytes: ${new TextDecoder().decode(Uint8Array.from(out))}`);
}

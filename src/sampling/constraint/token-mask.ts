/**
 * Allowed tokens of a parser state: one walk of the vocabulary trie that carries the parser state
 * down each branch and abandons a branch at the first byte the parser refuses, so the cost follows
 * the allowed part of the vocabulary, not its size times the token lengths.
 */
import type { Automaton, DfaState } from './automaton.js';
import type { VocabTrie } from './vocab-trie.js';

/** A bitmap (bit i set: token i allowed) of the tokens that may come next in `state`. */
export function allowedTokens(automaton: Automaton, trie: VocabTrie, state: DfaState): Uint32Array {
  const bits = new Uint32Array((trie.size + 31) >>> 5);
  const { bytes, end, tokenStart, tokenIds } = trie;

  const walk = (from: DfaState, first: number, last: number): void => {
    for (let node = first; node < last; node = end[node]) {
      const byte = bytes[node];
      let next = from.transitions[byte];
      if (next === undefined) next = automaton.step(from, byte);
      if (next === null) continue;
      for (let t = tokenStart[node]; t < tokenStart[node + 1]; t++) {
        const id = tokenIds[t];
        bits[id >>> 5] |= 1 << (id & 31);
      }
      if (node + 1 < end[node]) walk(next, node + 1, end[node]);
    }
  };

  walk(state, 0, trie.nodeCount);
  if (state.accepting) {
    for (const id of trie.eog) bits[id >>> 5] |= 1 << (id & 31);
  }
  return bits;
}

/** Sets to -Infinity every logit whose bit is clear, and every logit past the vocabulary. */
export function applyMask(bits: Uint32Array, size: number, logits: Float32Array): void {
  const words = (size + 31) >>> 5;
  for (let w = 0; w < words; w++) {
    const word = bits[w];
    if (word === 0xffffffff) continue;
    const base = w << 5;
    const stop = Math.min(base + 32, size);
    for (let i = base; i < stop; i++) {
      if ((word & (1 << (i - base))) === 0) logits[i] = -Infinity;
    }
  }
  if (logits.length > size) logits.fill(-Infinity, size);
}

/** True when token `id`'s bit is set. */
export function isAllowed(bits: Uint32Array, id: number): boolean {
  return (bits[id >>> 5] & (1 << (id & 31))) !== 0;
}

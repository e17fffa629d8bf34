/**
 * Allowed tokens of a parser state: one walk of the vocabulary trie that carries the parser state
 * down each branch and abandons a branch at the first byte the parser refuses, so the cost follows
 * the allowed part of the vocabulary, not its size times the token lengths.
 */
import { CairnError } from '../../util/errors.js';
import type { Automaton, DfaState } from './automaton.js';
import type { VocabTrie } from './vocab-trie.js';

/**
 * The walk behind a mask, resumable: `run` does a slice of it and reports whether it is done, so
 * a caller with an event loop to keep free can spread a long walk over several turns. The work of
 * one walk (trie nodes visited and Automaton.work) is capped: a grammar that keeps very many
 * parses open at once (nested optional repetitions, huge alternations) would otherwise hold the
 * thread for minutes.
 */
export class MaskWalk {
  /** Bit i set: token i allowed. Complete once run() returned true. */
  readonly bits: Uint32Array;
  /** Work done so far by this walk. */
  work = 0;
  // The pending trie ranges, depth first: [node, last] with the parser state before node's byte.
  private readonly nodes: number[] = [];
  private readonly lasts: number[] = [];
  private readonly states: DfaState[] = [];

  constructor(
    private readonly automaton: Automaton,
    private readonly trie: VocabTrie,
    private readonly state: DfaState,
    private readonly maxWork = Infinity,
  ) {
    this.bits = new Uint32Array((trie.size + 31) >>> 5);
    this.push(state, 0, trie.nodeCount);
  }

  private push(state: DfaState, first: number, last: number): void {
    if (first >= last) return;
    this.nodes.push(first);
    this.lasts.push(last);
    this.states.push(state);
  }

  /** Walks until done or until about `budget` more work is spent; true when done. */
  run(budget = Infinity): boolean {
    const { bytes, end, tokenStart, tokenIds } = this.trie;
    const { bits, nodes, lasts, states, automaton } = this;
    const base = this.work;
    const automatonBase = automaton.work;
    let visits = 0;
    // A trie node visited costs about as much as four parser stack operations.
    const spent = (): number => (this.work = base + 4 * visits + automaton.work - automatonBase);
    while (nodes.length > 0) {
      if ((visits & 63) === 0 && spent() - base > budget) return false;
      visits++;
      const top = nodes.length - 1;
      const node = nodes[top];
      const from = states[top];
      // Advance this range to node's next sibling before descending into node.
      if (end[node] < lasts[top]) nodes[top] = end[node];
      else {
        nodes.pop();
        lasts.pop();
        states.pop();
      }
      let next = from.transitions[bytes[node]];
      if (next === undefined) {
        if (spent() > this.maxWork) throw tooComplex(this.maxWork);
        next = automaton.step(from, bytes[node]);
      }
      if (next === null) continue;
      for (let t = tokenStart[node]; t < tokenStart[node + 1]; t++) {
        const id = tokenIds[t];
        bits[id >>> 5] |= 1 << (id & 31);
      }
      this.push(next, node + 1, end[node]);
    }
    if (spent() > this.maxWork) throw tooComplex(this.maxWork);
    if (this.state.accepting) {
      for (const id of this.trie.eog) bits[id >>> 5] |= 1 << (id & 31);
    }
    return true;
  }
}

function tooComplex(maxWork: number): CairnError {
  return new CairnError(
    'BAD_ARGUMENT',
    `the JSON schema is too complex to enforce: finding the tokens allowed at one point took more than ${maxWork} parser steps (nested optional repetitions or very large alternations keep too many parses open)`,
  );
}

/**
 * A bitmap (bit i set: token i allowed) of the tokens that may come next in `state`: one walk of
 * the vocabulary trie that carries the parser state down each branch and abandons a branch at the
 * first byte the parser refuses. Throws CairnError BAD_ARGUMENT past `maxWork` (see MaskWalk).
 */
export function allowedTokens(automaton: Automaton, trie: VocabTrie, state: DfaState, maxWork = Infinity): Uint32Array {
  const walk = new MaskWalk(automaton, trie, state, maxWork);
  walk.run();
  return walk.bits;
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

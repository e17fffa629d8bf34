/**
 * A schema compiled for one vocabulary: the parser automaton plus the vocabulary trie, with the
 * allowed-token bitmap of each parser state kept once computed (bounded in total size).
 */
import { Automaton, type DfaState } from './automaton.js';
import type { Grammar } from './grammar.js';
import { allowedTokens } from './token-mask.js';
import type { VocabTrie } from './vocab-trie.js';

/** Memory for cached masks per compiled schema. */
const MASK_CACHE_BYTES = 64 * 1024 * 1024;

/** Automaton + trie + mask cache for one (vocabulary, schema). */
export class CompiledConstraint {
  readonly automaton: Automaton;
  private readonly masked: DfaState[] = [];
  private readonly maxMasks: number;

  constructor(
    grammar: Grammar,
    readonly trie: VocabTrie,
  ) {
    this.automaton = new Automaton(grammar);
    this.maxMasks = Math.max(16, Math.floor(MASK_CACHE_BYTES / (4 * Math.ceil(trie.size / 32))));
  }

  /** The allowed-token bitmap of `state`, computed on first use. */
  maskOf(state: DfaState): Uint32Array {
    let mask = state.mask;
    if (mask === undefined) {
      mask = allowedTokens(this.automaton, this.trie, state);
      state.mask = mask;
      this.masked.push(state);
      // Oldest first: states early in a document are the least likely to come back.
      if (this.masked.length > this.maxMasks) this.masked.splice(0, this.masked.length >> 1).forEach((s) => (s.mask = undefined));
    }
    return mask;
  }
}

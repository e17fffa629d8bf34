/**
 * A schema compiled for one vocabulary: the parser automaton plus the vocabulary trie, with the
 * allowed-token bitmap of each parser state kept once computed (bounded in total size).
 */
import { Automaton, type DfaState } from './automaton.js';
import type { Grammar } from './grammar.js';
import { MaskWalk } from './token-mask.js';
import type { VocabTrie } from './vocab-trie.js';

/** Memory for cached masks per compiled schema. */
const MASK_CACHE_BYTES = 64 * 1024 * 1024;

/**
 * Work one mask may take (MaskWalk.work units) before the schema is refused as too complex: a
 * walk of the whole vocabulary (what a free-text string costs, about 4 units per trie node) with
 * room to spare, plus a million for the parser (what the largest schemas within the size limits
 * need at most). A mask computed during generation cannot yield, so this bounds how long one
 * holds the thread: tens of milliseconds, a few hundred on a slow, busy machine.
 */
export function defaultMaxMaskWork(trie: VocabTrie): number {
  return 1_000_000 + 6 * trie.nodeCount;
}

/** Automaton + trie + mask cache for one (vocabulary, schema). */
export class CompiledConstraint {
  readonly automaton: Automaton;
  private readonly masked: DfaState[] = [];
  private readonly maxMasks: number;
  /** See MaskWalk. */
  readonly maxMaskWork: number;

  constructor(
    grammar: Grammar,
    readonly trie: VocabTrie,
    maxMaskWork?: number,
  ) {
    this.automaton = new Automaton(grammar);
    this.maxMasks = Math.max(16, Math.floor(MASK_CACHE_BYTES / (4 * Math.ceil(trie.size / 32))));
    this.maxMaskWork = maxMaskWork ?? defaultMaxMaskWork(trie);
  }

  /** A walk that computes the mask of `state` (for callers that spread it over several turns). */
  walk(state: DfaState): MaskWalk {
    return new MaskWalk(this.automaton, this.trie, state, this.maxMaskWork);
  }

  /** The allowed-token bitmap of `state`, computed on first use. */
  maskOf(state: DfaState): Uint32Array {
    if (state.mask !== undefined) return state.mask;
    const walk = this.walk(state);
    walk.run();
    return this.keep(state, walk.bits);
  }

  /** Stores a state's finished mask (from maskOf or a walk run to its end). */
  keep(state: DfaState, mask: Uint32Array): Uint32Array {
    if (state.mask !== undefined) return state.mask;
    state.mask = mask;
    this.masked.push(state);
    // Oldest first: states early in a document are the least likely to come back.
    if (this.masked.length > this.maxMasks) this.masked.splice(0, this.masked.length >> 1).forEach((s) => (s.mask = undefined));
    return mask;
  }
}

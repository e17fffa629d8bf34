/**
 * The vocabulary as a byte trie, laid out flat in depth-first order so a walk is a loop over
 * typed arrays: node i's subtree is the range [i, end[i]), its children start at i + 1.
 * End-of-generation tokens and tokens without text are kept apart: the former are allowed only
 * at the end of a document, the latter never (they would add nothing and could repeat forever).
 */
import type { ConstraintVocab } from './types.js';

/** Token ids by the bytes they spell. */
export class VocabTrie {
  private constructor(
    /** Vocabulary size. */
    readonly size: number,
    /** The byte each node adds. */
    readonly bytes: Uint8Array,
    /** One past the last node of each node's subtree. */
    readonly end: Int32Array,
    /** Tokens spelled exactly by node i: tokenIds[tokenStart[i] .. tokenStart[i + 1]). */
    readonly tokenStart: Int32Array,
    readonly tokenIds: Int32Array,
    /** End-of-generation token ids. */
    readonly eog: Int32Array,
  ) {}

  /** Number of trie nodes (the root is implicit; its children start at node 0). */
  get nodeCount(): number {
    return this.bytes.length;
  }

  /** Builds the trie of a vocabulary. */
  static build(vocab: ConstraintVocab): VocabTrie {
    const eog: number[] = [];
    const keyed: { key: string; id: number }[] = [];
    for (let id = 0; id < vocab.size; id++) {
      if (vocab.isEog(id)) {
        eog.push(id);
        continue;
      }
      const piece = vocab.piece(id);
      if (piece.length === 0) continue;
      // One char per byte: the engine's string sort then orders pieces bytewise.
      let key = '';
      for (let i = 0; i < piece.length; i++) key += String.fromCharCode(piece[i]);
      keyed.push({ key, id });
    }
    keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.id - b.id));

    const bytes: number[] = [];
    const end: number[] = [];
    const tokensPerNode: number[] = [];
    const tokenIds: number[] = [];
    const path: number[] = []; // node index per depth along the current key
    let previous = '';
    for (const { key, id } of keyed) {
      let common = 0;
      while (common < key.length && common < previous.length && key.charCodeAt(common) === previous.charCodeAt(common)) common++;
      while (path.length > common) end[path.pop()!] = bytes.length;
      for (let d = common; d < key.length; d++) {
        path.push(bytes.length);
        bytes.push(key.charCodeAt(d));
        end.push(0);
        tokensPerNode.push(0);
      }
      tokensPerNode[path[path.length - 1]]++;
      tokenIds.push(id);
      previous = key;
    }
    while (path.length > 0) end[path.pop()!] = bytes.length;

    const tokenStart = new Int32Array(bytes.length + 1);
    for (let i = 0; i < bytes.length; i++) tokenStart[i + 1] = tokenStart[i] + tokensPerNode[i];
    return new VocabTrie(
      vocab.size,
      Uint8Array.from(bytes),
      Int32Array.from(end),
      tokenStart,
      Int32Array.from(tokenIds),
      Int32Array.from(eog),
    );
  }
}

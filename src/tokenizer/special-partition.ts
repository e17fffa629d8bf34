/**
 * Finds special tokens written verbatim in the input before the text is tokenized (llama.cpp's
 * tokenizer_st_partition). Tokens are tried longest first; each one cuts every remaining text
 * fragment at its occurrences. User-defined tokens are always matched; control and unknown
 * tokens only when the caller asks to parse special tokens. A token with the LSTRIP / RSTRIP
 * attribute also swallows the ASCII whitespace before / after it.
 */
import { TokenAttr } from './token-attr.js';
import type { Vocab } from './vocab.js';

/** A piece of input: plain text (a range of the input string) or a matched token. */
export type Fragment = { readonly text: string } | { readonly token: number };

function isAsciiSpace(code: number): boolean {
  return code === 0x20 || (code >= 0x09 && code <= 0x0d);
}

/** A fragment while partitioning: a range of the input, or a matched token. */
type Range = { readonly start: number; readonly end: number } | { readonly token: number };

/**
 * Finds the occurrences of one token, left to right across the ranges of the input. The next
 * occurrence is remembered between ranges: searching afresh from each range would scan to the
 * end of the input once per range, quadratic in a text holding many special tokens.
 */
class Occurrences {
  private next = -1;
  private searched = false;

  constructor(
    private readonly input: string,
    readonly tokenText: string,
  ) {}

  /** The first occurrence at or after `pos` (-1: none); `pos` never decreases from call to call. */
  from(pos: number): number {
    if (!this.searched || (this.next !== -1 && this.next < pos)) {
      this.next = this.input.indexOf(this.tokenText, pos);
      this.searched = true;
    }
    return this.next;
  }
}

function splitRange(input: string, start: number, end: number, found: Occurrences, token: number, attr: number, out: Range[]): void {
  const tokenText = found.tokenText;
  let pos = start;
  for (;;) {
    const match = found.from(pos);
    if (match === -1 || match + tokenText.length > end) break;
    let leftEnd = match;
    if (attr & TokenAttr.LSTRIP) while (leftEnd > pos && isAsciiSpace(input.charCodeAt(leftEnd - 1))) leftEnd--;
    if (leftEnd > pos) out.push({ start: pos, end: leftEnd });
    out.push({ token });
    pos = match + tokenText.length;
    if (attr & TokenAttr.RSTRIP) while (pos < end && isAsciiSpace(input.charCodeAt(pos))) pos++;
  }
  if (pos < end) out.push({ start: pos, end });
}

/** The special tokens' texts as a trie of UTF-16 units, for finding all that occur in one pass. */
interface SpecialTrie {
  /** The node after the first unit (-1: no token starts with it). */
  readonly first: Int32Array;
  /** Each node's children by unit (node 0 is the root, unused). */
  readonly children: Map<number, number>[];
  /** The tokens whose text ends at each node. */
  readonly ends: (number[] | undefined)[];
  /** Tokens with an empty text (which every input "contains"). */
  readonly empty: readonly number[];
  /** Tokens left out of the trie (longer than TRIE_MAX_TEXT, or past TRIE_MAX_NODES): each sought in the input on its own. */
  readonly rest: readonly number[];
}

/**
 * Longest token text in the trie: the scan walks at most this far from each position of the input
 * (special tokens are a few dozen characters; a hostile file's long ones are sought on their own).
 */
const TRIE_MAX_TEXT = 128;
/** Most trie nodes: a vocabulary's special tokens take a few thousand; a hostile file's cannot take the memory. */
const TRIE_MAX_NODES = 1 << 20;

const triesByVocab = new WeakMap<Vocab, SpecialTrie>();

function specialTrie(vocab: Vocab): SpecialTrie {
  let trie = triesByVocab.get(vocab);
  if (trie) return trie;
  const first = new Int32Array(0x10000).fill(-1);
  const children: Map<number, number>[] = [new Map()];
  const ends: (number[] | undefined)[] = [undefined];
  const empty: number[] = [];
  const rest: number[] = [];
  for (const id of vocab.specialTokens) {
    const text = vocab.texts[id];
    if (text.length === 0) {
      empty.push(id);
      continue;
    }
    if (text.length > TRIE_MAX_TEXT || children.length + text.length > TRIE_MAX_NODES) {
      rest.push(id);
      continue;
    }
    let node = first[text.charCodeAt(0)];
    if (node === -1) {
      node = children.push(new Map()) - 1;
      ends.push(undefined);
      first[text.charCodeAt(0)] = node;
    }
    for (let i = 1; i < text.length; i++) {
      const unit = text.charCodeAt(i);
      let child = children[node].get(unit);
      if (child === undefined) {
        child = children.push(new Map()) - 1;
        ends.push(undefined);
        children[node].set(unit, child);
      }
      node = child;
    }
    (ends[node] ??= []).push(id);
  }
  trie = { first, children, ends, empty, rest };
  triesByVocab.set(vocab, trie);
  return trie;
}

/**
 * The special tokens whose text occurs somewhere in `input`: one pass over it, where asking each
 * token in turn read a long prompt once per special token (thousands, in some vocabularies).
 */
function specialTokensIn(vocab: Vocab, input: string): Set<number> {
  const { first, children, ends, empty, rest } = specialTrie(vocab);
  const found = new Set<number>(empty);
  for (const id of rest) if (input.includes(vocab.texts[id])) found.add(id);
  for (let i = 0; i < input.length; i++) {
    let node = first[input.charCodeAt(i)];
    for (let j = i + 1; node !== -1; j++) {
      const here = ends[node];
      if (here) for (const id of here) found.add(id);
      if (j >= input.length) break;
      node = children[node].get(input.charCodeAt(j)) ?? -1;
    }
  }
  return found;
}

/** Cuts `input` into text fragments and special-token fragments. */
export function partitionSpecial(vocab: Vocab, input: string, parseSpecial: boolean): Fragment[] {
  if (input === '') return [];
  let ranges: Range[] = [{ start: 0, end: input.length }];
  const present = specialTokensIn(vocab, input);
  for (const id of vocab.specialTokens) {
    const attr = vocab.attrs[id];
    if (!parseSpecial && attr & (TokenAttr.CONTROL | TokenAttr.UNKNOWN)) continue;
    const tokenText = vocab.texts[id];
    if (!present.has(id)) continue;
    const next: Range[] = [];
    const found = new Occurrences(input, tokenText);
    for (const r of ranges) {
      if ('token' in r) next.push(r);
      else splitRange(input, r.start, r.end, found, id, attr, next);
    }
    ranges = next;
  }
  return ranges.map((r) => ('token' in r ? { token: r.token } : { text: input.slice(r.start, r.end) }));
}

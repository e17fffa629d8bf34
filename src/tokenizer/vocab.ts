/**
 * A loaded vocabulary: the tokens with their scores and attributes, BPE merge ranks, the special
 * token ids and the flags that steer tokenization. Built once from GGUF metadata (vocab-load.ts)
 * and read by the tokenizers; nothing here changes after loading.
 */
import type { PreTokenizerSpec } from './pre-tokenizers.js';
import { TokenAttr } from './token-attr.js';

/** Tokenizer algorithm: SentencePiece-style (llama), byte-level BPE (gpt2) or WordPiece (bert). */
export type VocabType = 'spm' | 'bpe' | 'wpm';

/** Special token ids; undefined where the vocabulary has none. */
export interface SpecialIds {
  bos?: number;
  eos?: number;
  eot?: number;
  eom?: number;
  unk?: number;
  sep?: number;
  pad?: number;
  mask?: number;
  fimPre?: number;
  fimSuf?: number;
  fimMid?: number;
  fimPad?: number;
  fimRep?: number;
  fimSep?: number;
}

/** Flags that change how text is tokenized or detokenized. */
export interface VocabFlags {
  addBos: boolean;
  addEos: boolean;
  addSep: boolean;
  /** SPM: a space is put in front of the text (and of text after a special token). */
  addSpacePrefix: boolean;
  removeExtraWhitespaces: boolean;
  /** BPE: a word that is itself a token is not merged piece by piece. */
  ignoreMerges: boolean;
  /** Decode removes spaces before punctuation and contractions (clean_up_tokenization_spaces). */
  cleanSpaces: boolean;
  /** BPE with U+2581 for spaces instead of the byte-level alphabet. */
  escapeWhitespaces: boolean;
  /** WPM normalizer. */
  lowercase: boolean;
  stripAccents: boolean;
}

/** Everything a vocabulary is made of. */
export interface VocabData {
  readonly type: VocabType;
  /** `tokenizer.ggml.model` as stored. */
  readonly model: string;
  /** `tokenizer.ggml.pre` as stored (undefined when absent). */
  readonly pre: string | undefined;
  /** BPE only: the pre-tokenizer regexes and defaults. */
  readonly preSpec: PreTokenizerSpec | undefined;
  readonly texts: readonly string[];
  readonly scores: Float32Array;
  /** TokenAttr bits per token. */
  readonly attrs: Uint16Array;
  readonly tokenToId: ReadonlyMap<string, number>;
  /** BPE merge rank keyed by "left right". */
  readonly mergeRanks: ReadonlyMap<string, number>;
  /** Longest token text in UTF-8 bytes. */
  readonly maxTokenLen: number;
  readonly special: Readonly<SpecialIds>;
  readonly flags: Readonly<VocabFlags>;
  /** Tokens that end generation. */
  readonly eog: ReadonlySet<number>;
  /** Control, user-defined and unknown tokens, longest text first: matched before tokenizing. */
  readonly specialTokens: readonly number[];
}

/** A loaded vocabulary with lookups. */
export class Vocab implements VocabData {
  readonly type: VocabType;
  readonly model: string;
  readonly pre: string | undefined;
  readonly preSpec: PreTokenizerSpec | undefined;
  readonly texts: readonly string[];
  readonly scores: Float32Array;
  readonly attrs: Uint16Array;
  readonly tokenToId: ReadonlyMap<string, number>;
  readonly mergeRanks: ReadonlyMap<string, number>;
  readonly maxTokenLen: number;
  readonly special: Readonly<SpecialIds>;
  readonly flags: Readonly<VocabFlags>;
  readonly eog: ReadonlySet<number>;
  readonly specialTokens: readonly number[];

  constructor(data: VocabData) {
    this.type = data.type;
    this.model = data.model;
    this.pre = data.pre;
    this.preSpec = data.preSpec;
    this.texts = data.texts;
    this.scores = data.scores;
    this.attrs = data.attrs;
    this.tokenToId = data.tokenToId;
    this.mergeRanks = data.mergeRanks;
    this.maxTokenLen = data.maxTokenLen;
    this.special = data.special;
    this.flags = data.flags;
    this.eog = data.eog;
    this.specialTokens = data.specialTokens;
  }

  /** Number of tokens. */
  get size(): number {
    return this.texts.length;
  }

  /** The id of a token text, or undefined. */
  idOf(text: string): number | undefined {
    return this.tokenToId.get(text);
  }

  /** True when `id` is a valid token id. */
  has(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < this.texts.length;
  }

  /** True when the token has any of the attribute bits. */
  hasAttr(id: number, bits: number): boolean {
    return (this.attrs[id] & bits) !== 0;
  }

  /** True for control tokens (BOS, EOS, chat markers...). */
  isControl(id: number): boolean {
    return this.hasAttr(id, TokenAttr.CONTROL);
  }

  /** The BPE merge rank of a pair, or -1. */
  mergeRank(left: string, right: string): number {
    return this.mergeRanks.get(`${left} ${right}`) ?? -1;
  }
}

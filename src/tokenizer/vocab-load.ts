/**
 * Builds a Vocab from GGUF tokenizer metadata with llama.cpp's defaults: the tokenizer model
 * picks the algorithm and the default special ids, `tokenizer.ggml.pre` the BPE pre-tokenizer
 * and its flags, and explicit keys override both. Inconsistent metadata fails with
 * GGUF_MALFORMED; algorithms or pre-tokenizers we do not implement with TOKENIZER_UNSUPPORTED.
 */
import type { Metadata } from '../gguf/metadata.js';
import { GgufValueType } from '../gguf/values.js';
import { CairnError } from '../util/errors.js';
import { preTokenizerSpec, type PreTokenizerSpec } from './pre-tokenizers.js';
import { setupSpecialTokens, readSpecialIds } from './special-tokens.js';
import { TokenAttr, attrFromTokenType } from './token-attr.js';
import { Vocab, type SpecialIds, type VocabFlags, type VocabType } from './vocab.js';

const K = {
  model: 'tokenizer.ggml.model',
  pre: 'tokenizer.ggml.pre',
  tokens: 'tokenizer.ggml.tokens',
  scores: 'tokenizer.ggml.scores',
  tokenType: 'tokenizer.ggml.token_type',
  merges: 'tokenizer.ggml.merges',
  addBos: 'tokenizer.ggml.add_bos_token',
  addEos: 'tokenizer.ggml.add_eos_token',
  addSep: 'tokenizer.ggml.add_sep_token',
  addSpacePrefix: 'tokenizer.ggml.add_space_prefix',
  removeExtraWs: 'tokenizer.ggml.remove_extra_whitespaces',
  lowercase: 'tokenizer.ggml.normalizer.lowercase',
  stripAccents: 'tokenizer.ggml.normalizer.strip_accents',
} as const;

const UNSUPPORTED_MODELS: Readonly<Record<string, string>> = {
  t5: 'the Unigram (T5) tokenizer',
  rwkv: 'the RWKV tokenizer',
  plamo2: 'the PLaMo-2 tokenizer',
  gemma4: 'the Gemma 4 tokenizer',
  hybriddna: 'the HybridDNA tokenizer',
  whitespace: 'the whitespace tokenizer',
  none: 'a model without a vocabulary',
  no_vocab: 'a model without a vocabulary',
};

function malformed(meta: Metadata, problem: string): CairnError {
  return new CairnError('GGUF_MALFORMED', `${meta.file.path}: tokenizer metadata is inconsistent: ${problem}`);
}

function unsupported(meta: Metadata, problem: string): CairnError {
  return new CairnError('TOKENIZER_UNSUPPORTED', `${meta.file.path}: ${problem}`);
}

function vocabType(meta: Metadata, model: string): VocabType {
  if (model === 'llama') return 'spm';
  if (model === 'gpt2') return 'bpe';
  if (model === 'bert') return 'wpm';
  const what = UNSUPPORTED_MODELS[model];
  if (what) throw unsupported(meta, `${what} ("${K.model}" = "${model}") is not supported`);
  throw unsupported(meta, `unknown tokenizer model "${model}" in "${K.model}"`);
}

function defaultIds(type: VocabType): SpecialIds {
  switch (type) {
    case 'spm':
      return { bos: 1, eos: 2, unk: 0 };
    case 'wpm':
      return { bos: 101, unk: 100, sep: 102, pad: 0, mask: 103 };
    case 'bpe':
      return { bos: 11, eos: 11 };
  }
}

function defaultFlags(type: VocabType, pre: PreTokenizerSpec | undefined): VocabFlags {
  const base: VocabFlags = {
    addBos: false,
    addEos: false,
    addSep: false,
    addSpacePrefix: false,
    removeExtraWhitespaces: false,
    ignoreMerges: false,
    cleanSpaces: false,
    escapeWhitespaces: true,
    lowercase: true,
    stripAccents: true,
  };
  switch (type) {
    case 'spm':
      return { ...base, addSpacePrefix: true, addBos: true };
    case 'wpm':
      return { ...base, cleanSpaces: true, addBos: true, addSep: true };
    case 'bpe':
      return {
        ...base,
        escapeWhitespaces: false,
        cleanSpaces: pre!.cleanSpaces,
        ignoreMerges: pre!.ignoreMerges,
        addBos: pre!.addBos,
        addSep: pre!.addSep,
      };
  }
}

function readTokens(meta: Metadata): string[] {
  if (!meta.has(K.tokens)) throw malformed(meta, `"${K.tokens}" (the token list) is missing`);
  const tokens = meta.strings(K.tokens)!;
  if (tokens.length === 0) throw malformed(meta, `"${K.tokens}" is empty`);
  // llama.cpp renames empty tokens so every text stays unique and printable.
  return tokens.map((t, i) => (t === '' ? `[EMPTY_${i}]` : t));
}

function readScores(meta: Metadata, n: number): Float32Array {
  const raw = meta.raw(K.scores);
  if (!raw) return new Float32Array(n);
  const ok = raw.type === GgufValueType.ARRAY && (raw.itemType === GgufValueType.FLOAT32 || raw.itemType === GgufValueType.INT32);
  if (!ok) throw malformed(meta, `"${K.scores}" must be an array of f32 or i32`);
  const scores = meta.numbers(K.scores)!;
  if (scores.length !== n) throw malformed(meta, `"${K.scores}" has ${scores.length} entries for ${n} tokens`);
  return Float32Array.from(scores);
}

function readAttrs(meta: Metadata, n: number): Uint16Array {
  const attrs = new Uint16Array(n).fill(TokenAttr.NORMAL);
  const raw = meta.raw(K.tokenType);
  if (!raw) return attrs;
  const integer = [GgufValueType.INT32, GgufValueType.UINT32, GgufValueType.INT8, GgufValueType.UINT8, GgufValueType.INT16, GgufValueType.UINT16];
  if (raw.type !== GgufValueType.ARRAY || !integer.includes(raw.itemType)) {
    throw malformed(meta, `"${K.tokenType}" must be an array of integers`);
  }
  const types = meta.numbers(K.tokenType)!;
  if (types.length !== n) throw malformed(meta, `"${K.tokenType}" has ${types.length} entries for ${n} tokens`);
  for (let i = 0; i < n; i++) attrs[i] = attrFromTokenType(types[i]);
  return attrs;
}

function indexTokens(meta: Metadata, texts: readonly string[]): Map<string, number> {
  const map = new Map<string, number>();
  texts.forEach((t, i) => {
    const prev = map.get(t);
    if (prev === undefined) {
      map.set(t, i);
    } else if (!t.includes('\ufffd')) {
      // Texts with U+FFFD may be distinct invalid byte strings in the file that decoded alike.
      throw malformed(meta, `token ${JSON.stringify(t)} appears twice (ids ${prev} and ${i})`);
    }
  });
  return map;
}

function readMerges(meta: Metadata, tokenToId: ReadonlyMap<string, number>): Map<string, number> {
  if (!meta.has(K.merges)) throw malformed(meta, `"${K.merges}" is missing (a BPE vocabulary needs its merges)`);
  const merges = meta.strings(K.merges)!;
  const ranks = new Map<string, number>();
  merges.forEach((merge, rank) => {
    // The separator is the first space after the first character: a merge may start with a space.
    const sep = merge.indexOf(' ', 1);
    if (sep === -1) throw malformed(meta, `merge #${rank} ${JSON.stringify(merge)} is not of the form "left right"`);
    const left = merge.slice(0, sep);
    const right = merge.slice(sep + 1);
    for (const part of [left, right]) {
      if (!tokenToId.has(part)) throw malformed(meta, `merge #${rank} ${JSON.stringify(merge)} refers to ${JSON.stringify(part)}, which is not a token`);
    }
    // The merge text is already the "left right" key; an earlier duplicate keeps its rank.
    if (!ranks.has(merge)) ranks.set(merge, rank);
  });
  return ranks;
}

function overrideFlags(meta: Metadata, flags: VocabFlags): void {
  flags.addSpacePrefix = meta.bool(K.addSpacePrefix) ?? flags.addSpacePrefix;
  flags.removeExtraWhitespaces = meta.bool(K.removeExtraWs) ?? flags.removeExtraWhitespaces;
  flags.addBos = meta.bool(K.addBos) ?? flags.addBos;
  flags.addEos = meta.bool(K.addEos) ?? flags.addEos;
  flags.addSep = meta.bool(K.addSep) ?? flags.addSep;
  const lowercase = meta.bool(K.lowercase);
  if (lowercase !== undefined) {
    flags.lowercase = lowercase;
    flags.stripAccents = lowercase;
  }
  flags.stripAccents = meta.bool(K.stripAccents) ?? flags.stripAccents;
}

function checkAddedTokens(meta: Metadata, flags: VocabFlags, ids: SpecialIds): void {
  const need: [boolean, number | undefined, string, string][] = [
    [flags.addBos, ids.bos, K.addBos, 'tokenizer.ggml.bos_token_id'],
    [flags.addEos, ids.eos, K.addEos, 'tokenizer.ggml.eos_token_id'],
    [flags.addSep, ids.sep, K.addSep, 'tokenizer.ggml.seperator_token_id'],
  ];
  for (const [add, id, addKey, idKey] of need) {
    if (add && id === undefined) throw malformed(meta, `"${addKey}" is true but "${idKey}" names no token`);
  }
}

/** Reads the vocabulary of a GGUF file's metadata. */
export function loadVocab(meta: Metadata): Vocab {
  const model = meta.string(K.model);
  if (model === undefined) throw malformed(meta, `"${K.model}" is missing`);
  const type = vocabType(meta, model);
  const pre = meta.string(K.pre);
  let preSpec: PreTokenizerSpec | undefined;
  if (type === 'bpe') {
    preSpec = preTokenizerSpec(pre);
    if (!preSpec) throw unsupported(meta, `pre-tokenizer "${pre}" ("${K.pre}") is not supported`);
  }

  const texts = readTokens(meta);
  const n = texts.length;
  const scores = readScores(meta, n);
  const attrs = readAttrs(meta, n);
  const tokenToId = indexTokens(meta, texts);
  const mergeRanks = type === 'bpe' ? readMerges(meta, tokenToId) : new Map<string, number>();

  const flags = defaultFlags(type, preSpec);
  overrideFlags(meta, flags);
  const defaults = defaultIds(type);
  if (preSpec?.noBos) defaults.bos = undefined;
  const given = readSpecialIds(meta, defaults, n);
  checkAddedTokens(meta, flags, given);

  const { ids, eog, specialTokens } = setupSpecialTokens(
    texts,
    attrs,
    given,
    meta.string('general.name') ?? '',
    pre ?? '',
    meta.string('general.architecture') ?? '',
  );
  let maxTokenLen = 0;
  for (const t of texts) maxTokenLen = Math.max(maxTokenLen, Buffer.byteLength(t, 'utf8'));

  return new Vocab({
    type,
    model,
    pre,
    preSpec,
    texts,
    scores,
    attrs,
    tokenToId,
    mergeRanks,
    maxTokenLen,
    special: ids,
    flags,
    eog,
    specialTokens,
  });
}

/**
 * Small vocab-only GGUF files for tests: a handful of tokens written with the project's GGUF
 * writer, so a test states exactly which tokens, scores and merges exist.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeGguf } from '../../gguf/writer.js';
import { gv, type GgufValue } from '../../gguf/values.js';
import { BYTE_TO_CHAR } from '../byte-level.js';
import { TokenType } from '../token-attr.js';
import { tokenizerFromGguf, type Tokenizer } from '../tokenizer.js';

let counter = 0;

/** Writes `entries` as a vocab-only GGUF file in `dir` and returns its path. */
export function writeVocabFile(dir: string, entries: ReadonlyArray<readonly [string, GgufValue]>): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `vocab-${process.pid}-${counter++}.gguf`);
  writeGguf(path, { metadata: entries, tensors: [] });
  return path;
}

/** Writes the entries and loads a tokenizer from the file. */
export function tinyTokenizer(dir: string, entries: ReadonlyArray<readonly [string, GgufValue]>): Tokenizer {
  return tokenizerFromGguf(writeVocabFile(dir, entries));
}

/** The 256 <0xNN> byte tokens of an SPM vocabulary. */
export function byteTokens(): string[] {
  return Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
}

/** One SPM token: text, score and type (normal unless given). */
export type SpmToken = readonly [text: string, score: number, type?: number];

/**
 * Metadata of an SPM vocabulary: <unk>, <s>, </s>, then the given tokens, then (optionally) the
 * 256 byte tokens. Ids: unk 0, bos 1, eos 2, given tokens from 3.
 */
export function spmEntries(tokens: readonly SpmToken[], opts: { bytes?: boolean } = {}): [string, GgufValue][] {
  const all: SpmToken[] = [['<unk>', 0, TokenType.UNKNOWN], ['<s>', 0, TokenType.CONTROL], ['</s>', 0, TokenType.CONTROL], ...tokens];
  if (opts.bytes) for (const b of byteTokens()) all.push([b, 0, TokenType.BYTE]);
  return [
    ['tokenizer.ggml.model', gv.str('llama')],
    ['tokenizer.ggml.tokens', gv.strs(all.map((t) => t[0]))],
    ['tokenizer.ggml.scores', gv.f32s(all.map((t) => t[1]))],
    ['tokenizer.ggml.token_type', gv.i32s(all.map((t) => t[2] ?? TokenType.NORMAL))],
  ];
}

/**
 * Metadata of a byte-level BPE vocabulary: the 256 byte characters (ids 0..255), then the given
 * extra tokens, with the given merges ("left right", rank = position).
 */
export function bpeEntries(extra: readonly (readonly [string, number?])[], merges: readonly string[], pre = 'gpt-2'): [string, GgufValue][] {
  const tokens = [...BYTE_TO_CHAR, ...extra.map((t) => t[0])];
  const types = [...BYTE_TO_CHAR.map(() => TokenType.NORMAL), ...extra.map((t) => t[1] ?? TokenType.NORMAL)];
  return [
    ['tokenizer.ggml.model', gv.str('gpt2')],
    ['tokenizer.ggml.pre', gv.str(pre)],
    ['tokenizer.ggml.tokens', gv.strs(tokens)],
    ['tokenizer.ggml.token_type', gv.i32s(types)],
    ['tokenizer.ggml.merges', gv.strs([...merges])],
  ];
}

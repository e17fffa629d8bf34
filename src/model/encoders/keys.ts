/**
 * The metadata of a random-weight encoder as llama.cpp's converter writes a BERT-style model's:
 * its `<arch>.*` keys (LayerNorm epsilon, non-causal attention, pooling) and a WordPiece
 * vocabulary laid out like BERT's (ids 0 and 100 to 103 special, GGUF's "▁" word starts), so the
 * file tokenizes text as a real one does.
 */
import { gv } from '../../gguf/values.js';
import { syntheticWord, type SyntheticModelSpec, type SyntheticTensors } from '../synthetic-tensors.js';

/** llama.cpp's numbers of the pooling types. */
const POOLING_NUMBER = { none: 0, mean: 1, cls: 2, last: 3 } as const;

/** The special tokens of a BERT vocabulary, at BERT's ids. */
const SPECIAL = { pad: 0, unk: 100, cls: 101, sep: 102, mask: 103 } as const;

/** Writes the architecture keys and the vocabulary; `rope` adds nomic-bert's rotary keys. */
export function writeEncoderKeys(spec: SyntheticModelSpec, out: SyntheticTensors, opts: { rope?: boolean } = {}): void {
  const a = spec.arch;
  out.meta(`${a}.context_length`, gv.u32(spec.ctx ?? 512));
  out.meta(`${a}.embedding_length`, gv.u32(spec.nEmbd));
  out.meta(`${a}.feed_forward_length`, gv.u32(spec.nFf));
  out.meta(`${a}.block_count`, gv.u32(spec.nLayer));
  out.meta(`${a}.attention.head_count`, gv.u32(spec.nHead));
  if (spec.nKvHead !== spec.nHead) out.meta(`${a}.attention.head_count_kv`, gv.u32(spec.nKvHead));
  out.meta(`${a}.attention.layer_norm_epsilon`, gv.f32(1e-12));
  out.meta(`${a}.attention.causal`, gv.bool(false));
  out.meta(`${a}.pooling_type`, gv.u32(POOLING_NUMBER[spec.pooling ?? 'mean']));
  if (opts.rope) out.meta(`${a}.rope.freq_base`, gv.f32(spec.ropeBase ?? 1000));
  const vocab = wordPieceVocab(spec.nVocab);
  out.meta('tokenizer.ggml.token_type_count', gv.u32(2));
  out.meta('tokenizer.ggml.model', gv.str('bert'));
  out.meta('tokenizer.ggml.tokens', gv.strs(vocab.tokens));
  out.meta('tokenizer.ggml.token_type', gv.i32s(vocab.types));
  out.meta('tokenizer.ggml.unknown_token_id', gv.u32(SPECIAL.unk));
  out.meta('tokenizer.ggml.seperator_token_id', gv.u32(SPECIAL.sep));
  out.meta('tokenizer.ggml.padding_token_id', gv.u32(SPECIAL.pad));
  out.meta('tokenizer.ggml.cls_token_id', gv.u32(SPECIAL.cls));
  out.meta('tokenizer.ggml.mask_token_id', gv.u32(SPECIAL.mask));
}

/**
 * A WordPiece vocabulary of n tokens (n >= 200): BERT's specials and unused slots, then every
 * lowercase letter as a word start ("▁a") and as a continuation ("a"), then longer words, so any
 * lowercase word is covered.
 */
export function wordPieceVocab(n: number): { tokens: string[]; types: number[] } {
  if (!(Number.isInteger(n) && n >= 200)) throw new RangeError(`a WordPiece vocabulary of ${n} tokens (at least 200)`);
  const tokens: string[] = [];
  const types: number[] = [];
  const names: Record<number, string> = { [SPECIAL.pad]: '[PAD]', [SPECIAL.unk]: '[UNK]', [SPECIAL.cls]: '[CLS]', [SPECIAL.sep]: '[SEP]', [SPECIAL.mask]: '[MASK]' };
  for (let i = 0; i <= SPECIAL.mask; i++) {
    tokens.push(names[i] ?? `[unused${i}]`);
    types.push(names[i] ? 3 : 1);
  }
  for (const c of 'abcdefghijklmnopqrstuvwxyz') tokens.push(`\u2581${c}`, c);
  for (let i = 26; tokens.length < n; i++) {
    const word = syntheticWord(i);
    tokens.push(i % 2 === 0 ? `\u2581${word}` : word);
  }
  tokens.length = n;
  while (types.length < n) types.push(1);
  return { tokens, types };
}

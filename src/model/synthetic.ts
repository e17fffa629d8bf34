/**
 * Writes random-weight GGUF models of the architectures cairn runs, with the tensor names, shapes,
 * metadata and quantization mixes llama.cpp expects, so tests and benchmarks can compare cairn with
 * llama.cpp on real model shapes without downloading anything. Same spec and seed, same file. The
 * model's family writes its tensors and `<arch>.*` keys; the rest (general keys, tokenizer) is here.
 */
import { GgmlType } from '../gguf/ggml-types.js';
import { gv, type GgufValue } from '../gguf/values.js';
import { writeGguf } from '../gguf/writer.js';
import { familyFor, MODEL_FAMILIES } from './registry.js';
import { encoderFamilyFor, isEncoderArchitecture } from './encoders/registry.js';
import { SyntheticTensors, syntheticWord, type Quantizer, type SyntheticModelSpec, type SyntheticQuant, type SyntheticShape } from './synthetic-tensors.js';

export type { Quantizer, SyntheticModelSpec, SyntheticQuant, SyntheticShape } from './synthetic-tensors.js';

/** Named shapes of real models (random weights), for benchmarks: every family's. */
export const SYNTHETIC_SHAPES: Readonly<Record<string, SyntheticShape>> = Object.assign({}, ...MODEL_FAMILIES.map((f) => f.synthetic.shapes));

/** The vocabulary written into synthetic models: SentencePiece-style with byte fallback. */
export function syntheticVocab(n: number): { tokens: string[]; scores: number[]; types: number[] } {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [2, 3, 3];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(6);
  }
  for (let i = 0; tokens.length < n; i++) {
    tokens.push((i % 2 === 0 ? '▁' : '') + syntheticWord(i));
    types.push(1);
  }
  tokens.length = n;
  types.length = n;
  return { tokens, scores: tokens.map((_, i) => (i < 259 ? 0 : -i)), types };
}

/** Writes a synthetic model to `path`. Matrices whose row length the type's block does not divide get llama.cpp's fallback type (Q5_0 for Q4_K, ..., else F16). */
export function writeSyntheticModel(path: string, spec: SyntheticModelSpec, quantize: Quantizer, onProgress?: (doneBytes: number, totalBytes: number) => void): void {
  const out = new SyntheticTensors(spec, quantize);
  (isEncoderArchitecture(spec.arch) ? encoderFamilyFor(spec.arch) : familyFor(spec.arch)).synthetic.write(spec, out);
  const a = spec.arch;
  const vocab = syntheticVocab(spec.nVocab);
  const metadata: [string, GgufValue][] = [
    ['general.architecture', gv.str(a)],
    ['general.name', gv.str(spec.name ?? `synthetic-${a}`)],
    ['general.file_type', gv.u32(fileType(spec.quant))],
    ['general.quantization_version', gv.u32(2)],
    ...out.metadata,
  ];
  // A family that writes its own vocabulary (an encoder's WordPiece one) keeps it.
  if (!out.metadata.some(([k]) => k === 'tokenizer.ggml.model')) {
    metadata.push(
      ['tokenizer.ggml.model', gv.str('llama')],
      ['tokenizer.ggml.tokens', gv.strs(vocab.tokens)],
      ['tokenizer.ggml.scores', gv.f32s(vocab.scores)],
      ['tokenizer.ggml.token_type', gv.i32s(vocab.types)],
      ['tokenizer.ggml.bos_token_id', gv.u32(1)],
      ['tokenizer.ggml.eos_token_id', gv.u32(2)],
      ['tokenizer.ggml.unknown_token_id', gv.u32(0)],
      ['tokenizer.ggml.add_bos_token', gv.bool(true)],
    );
  }
  writeGguf(path, { metadata, tensors: out.tensors }, onProgress);
}

/** llama.cpp's general.file_type numbers for the mixes we write. */
function fileType(q: SyntheticQuant): number {
  if (q === 'Q3_K_M') return 12;
  if (q === 'Q4_K_M') return 15;
  if (q === 'Q5_K_M') return 17;
  const map: Partial<Record<GgmlType, number>> = {
    [GgmlType.F32]: 0, [GgmlType.F16]: 1, [GgmlType.Q4_0]: 2, [GgmlType.Q4_1]: 3, [GgmlType.Q8_0]: 7,
    [GgmlType.Q5_0]: 8, [GgmlType.Q5_1]: 9, [GgmlType.Q2_K]: 10, [GgmlType.Q3_K]: 11, [GgmlType.Q4_K]: 15, [GgmlType.IQ4_XS]: 30, [GgmlType.IQ4_NL]: 25, [GgmlType.IQ2_XXS]: 19, [GgmlType.IQ2_XS]: 20, [GgmlType.IQ3_XXS]: 23, [GgmlType.IQ1_S]: 24, [GgmlType.IQ3_S]: 26, [GgmlType.IQ2_S]: 28, [GgmlType.IQ1_M]: 31, [GgmlType.Q5_K]: 17, [GgmlType.Q6_K]: 18, [GgmlType.BF16]: 32,
  };
  return map[q] ?? 0;
}

/**
 * Writes random-weight GGUF models of the architectures cairn runs, with the tensor names, shapes,
 * metadata and quantization mixes llama.cpp expects, so tests and benchmarks can compare cairn with
 * llama.cpp on real model shapes without downloading anything. Same spec and seed, same file.
 */
import { GgmlType, ggmlRowBytes, ggmlTypeInfo } from '../gguf/ggml-types.js';
import { gv, type GgufValue } from '../gguf/values.js';
import { writeGguf, type GgufTensorSpec } from '../gguf/writer.js';
import { Prng } from '../util/prng.js';
import type { Architecture } from './config.js';

/** The quantization of a synthetic model: one type for all matrices, or a llama.cpp-style mix. */
export type SyntheticQuant = GgmlType | 'Q4_K_M' | 'Q5_K_M';

/** Shape and content of a synthetic model. */
export interface SyntheticModelSpec {
  readonly arch: Architecture;
  readonly nEmbd: number;
  readonly nLayer: number;
  readonly nHead: number;
  readonly nKvHead: number;
  readonly nFf: number;
  readonly nVocab: number;
  /** Per-head size; defaults to nEmbd / nHead (Qwen3 sets it independently). */
  readonly headDim?: number;
  readonly ctx?: number;
  readonly ropeBase?: number;
  /** Output head shares the embedding matrix. */
  readonly tied?: boolean;
  /** Write a Llama 3 style `rope_freqs.weight` tensor. */
  readonly ropeFreqs?: boolean;
  readonly quant: SyntheticQuant;
  readonly seed: number;
  readonly name?: string;
}

/** Converts f32 values to a GGML type's bytes (a kernel implementation's quantize). */
export type Quantizer = (type: GgmlType, src: Float32Array) => Uint8Array;

/** Named shapes of real models (random weights), for benchmarks. */
export const SYNTHETIC_SHAPES: Readonly<Record<string, Omit<SyntheticModelSpec, 'quant' | 'seed'>>> = {
  'llama-1b': { arch: 'llama', nEmbd: 2048, nLayer: 16, nHead: 32, nKvHead: 8, nFf: 8192, nVocab: 32000, ctx: 4096, ropeBase: 500000 },
  'llama-8b': { arch: 'llama', nEmbd: 4096, nLayer: 32, nHead: 32, nKvHead: 8, nFf: 14336, nVocab: 32000, ctx: 8192, ropeBase: 500000 },
  'qwen3-0.6b': { arch: 'qwen3', nEmbd: 1024, nLayer: 28, nHead: 16, nKvHead: 8, headDim: 128, nFf: 3072, nVocab: 32000, ctx: 4096, ropeBase: 1000000, tied: true },
};

/** The vocabulary written into synthetic models: SentencePiece-style with byte fallback. */
export function syntheticVocab(n: number): { tokens: string[]; scores: number[]; types: number[] } {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [2, 3, 3];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(6);
  }
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  for (let i = 0; tokens.length < n; i++) {
    let word = '';
    let k = i;
    do {
      word += letters[k % 26];
      k = Math.floor(k / 26);
    } while (k > 0);
    tokens.push((i % 2 === 0 ? '▁' : '') + word);
    types.push(1);
  }
  tokens.length = n;
  types.length = n;
  return { tokens, scores: tokens.map((_, i) => (i < 259 ? 0 : -i)), types };
}

/** The type llama.cpp's mixes give a tensor (Q4_K_M/Q5_K_M: Q6_K for output, and for attn_v/ffn_down on some layers). */
function tensorType(quant: SyntheticQuant, name: string, layer: number, nLayer: number): GgmlType {
  if (typeof quant === 'number') return quant;
  const base = quant === 'Q4_K_M' ? GgmlType.Q4_K : GgmlType.Q5_K;
  if (name === 'output.weight') return GgmlType.Q6_K;
  // llama.cpp's use_more_bits: the first and last eighth of layers, and every third in between.
  const moreBits = layer < nLayer / 8 || layer >= (7 * nLayer) / 8 || (layer - Math.floor(nLayer / 8)) % 3 === 2;
  if ((name.endsWith('attn_v.weight') || name.endsWith('ffn_down.weight')) && moreBits) return GgmlType.Q6_K;
  return base;
}

/** Writes a synthetic model to `path`. Matrices whose row length the type's block does not divide stay F16. */
export function writeSyntheticModel(path: string, spec: SyntheticModelSpec, quantize: Quantizer): void {
  const hd = spec.headDim ?? spec.nEmbd / spec.nHead;
  const qDim = spec.nHead * hd;
  const kvDim = spec.nKvHead * hd;
  const tensors: GgufTensorSpec[] = [];

  // Each tensor draws from its own stream (seed + name), so tensors can be generated lazily, one
  // at a time, and a multi-gigabyte model never sits in memory as f32.
  const values = (name: string, n: number, std: number, mean = 0): Float32Array => {
    const rng = new Prng((spec.seed ^ hashName(name)) >>> 0);
    const a = new Float32Array(n);
    const halfWidth = std * Math.sqrt(3); // uniform with the requested standard deviation
    for (let i = 0; i < n; i++) a[i] = mean + halfWidth * (2 * rng.next() - 1);
    return a;
  };
  const f32 = (name: string, dims: number[], std: number, mean = 0) => {
    const v = values(name, dims.reduce((a, b) => a * b, 1), std, mean);
    tensors.push({ name, type: GgmlType.F32, dims, data: new Uint8Array(v.buffer) });
  };
  const matrix = (name: string, rows: number, cols: number, std: number, layer = 0) => {
    let type = tensorType(spec.quant, name, layer, spec.nLayer);
    if (cols % ggmlTypeInfo(type)!.blockSize !== 0) type = GgmlType.F16;
    tensors.push({
      name,
      type,
      dims: [cols, rows],
      data: () => {
        const v = values(name, rows * cols, std);
        const bytes = type === GgmlType.F32 ? new Uint8Array(v.buffer) : quantize(type, v);
        if (bytes.length !== ggmlRowBytes(type, cols) * rows) throw new Error(`quantizer returned ${bytes.length} bytes for ${name}`);
        return bytes;
      },
    });
  };

  const e = spec.nEmbd;
  // A tied head reads logits off the embeddings. Small unit-length embeddings keep a token's own
  // embedding (still in the residual stream) from dominating its logit, which would make the model
  // repeat its input; the output norm's gain restores the logit scale.
  matrix('token_embd.weight', spec.nVocab, e, spec.tied ? 1 / Math.sqrt(e) : 1);
  f32('output_norm.weight', [e], 0.1, spec.tied ? 4 : 1);
  if (!spec.tied) matrix('output.weight', spec.nVocab, e, 3 / Math.sqrt(e));
  if (spec.ropeFreqs) {
    // Llama 3.1 style: low frequencies stretched by up to 8x.
    const half = hd / 2;
    const ff = new Float32Array(half).map((_, i) => 1 + (7 * i) / Math.max(1, half - 1));
    tensors.push({ name: 'rope_freqs.weight', type: GgmlType.F32, dims: [half], data: new Uint8Array(ff.buffer) });
  }
  for (let l = 0; l < spec.nLayer; l++) {
    const p = `blk.${l}.`;
    f32(p + 'attn_norm.weight', [e], 0.1, 1);
    matrix(p + 'attn_q.weight', qDim, e, 1 / Math.sqrt(e), l);
    matrix(p + 'attn_k.weight', kvDim, e, 1 / Math.sqrt(e), l);
    matrix(p + 'attn_v.weight', kvDim, e, 1 / Math.sqrt(e), l);
    matrix(p + 'attn_output.weight', e, qDim, 1 / Math.sqrt(qDim), l);
    if (spec.arch === 'qwen2') {
      f32(p + 'attn_q.bias', [qDim], 0.1);
      f32(p + 'attn_k.bias', [kvDim], 0.1);
      f32(p + 'attn_v.bias', [kvDim], 0.1);
    }
    if (spec.arch === 'qwen3') {
      f32(p + 'attn_q_norm.weight', [hd], 0.1, 1);
      f32(p + 'attn_k_norm.weight', [hd], 0.1, 1);
    }
    f32(p + 'ffn_norm.weight', [e], 0.1, 1);
    matrix(p + 'ffn_gate.weight', spec.nFf, e, 1 / Math.sqrt(e), l);
    matrix(p + 'ffn_up.weight', spec.nFf, e, 1 / Math.sqrt(e), l);
    matrix(p + 'ffn_down.weight', e, spec.nFf, 1 / Math.sqrt(spec.nFf), l);
  }

  const a = spec.arch;
  const vocab = syntheticVocab(spec.nVocab);
  const metadata: [string, GgufValue][] = [
    ['general.architecture', gv.str(a)],
    ['general.name', gv.str(spec.name ?? `synthetic-${a}`)],
    ['general.file_type', gv.u32(fileType(spec.quant))],
    ['general.quantization_version', gv.u32(2)],
    [`${a}.context_length`, gv.u32(spec.ctx ?? 2048)],
    [`${a}.embedding_length`, gv.u32(e)],
    [`${a}.block_count`, gv.u32(spec.nLayer)],
    [`${a}.feed_forward_length`, gv.u32(spec.nFf)],
    [`${a}.attention.head_count`, gv.u32(spec.nHead)],
    [`${a}.attention.head_count_kv`, gv.u32(spec.nKvHead)],
    [`${a}.attention.layer_norm_rms_epsilon`, gv.f32(1e-6)],
    [`${a}.rope.freq_base`, gv.f32(spec.ropeBase ?? 10000)],
    [`${a}.rope.dimension_count`, gv.u32(hd)],
    ...(spec.headDim !== undefined
      ? ([
          [`${a}.attention.key_length`, gv.u32(hd)],
          [`${a}.attention.value_length`, gv.u32(hd)],
        ] as [string, GgufValue][])
      : []),
    ['tokenizer.ggml.model', gv.str('llama')],
    ['tokenizer.ggml.tokens', gv.strs(vocab.tokens)],
    ['tokenizer.ggml.scores', gv.f32s(vocab.scores)],
    ['tokenizer.ggml.token_type', gv.i32s(vocab.types)],
    ['tokenizer.ggml.bos_token_id', gv.u32(1)],
    ['tokenizer.ggml.eos_token_id', gv.u32(2)],
    ['tokenizer.ggml.unknown_token_id', gv.u32(0)],
    ['tokenizer.ggml.add_bos_token', gv.bool(true)],
  ];
  writeGguf(path, { metadata, tensors });
}

/** llama.cpp's general.file_type numbers for the mixes we write. */
function fileType(q: SyntheticQuant): number {
  if (q === 'Q4_K_M') return 15;
  if (q === 'Q5_K_M') return 17;
  const map: Partial<Record<GgmlType, number>> = {
    [GgmlType.F32]: 0, [GgmlType.F16]: 1, [GgmlType.Q4_0]: 2, [GgmlType.Q4_1]: 3, [GgmlType.Q8_0]: 7,
    [GgmlType.Q5_0]: 8, [GgmlType.Q5_1]: 9, [GgmlType.Q4_K]: 15, [GgmlType.Q5_K]: 17, [GgmlType.Q6_K]: 18, [GgmlType.BF16]: 32,
  };
  return map[q] ?? 0;
}

/** FNV-1a hash of a tensor name, to derive per-tensor random streams. */
function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

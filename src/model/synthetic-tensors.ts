/**
 * What a family writes a random-weight model through: its tensors (random values from a stream per
 * tensor name, quantized the way llama.cpp's mixes quantize them) and its metadata keys, in order.
 */
import { GgmlType, ggmlRowBytes, ggmlTypeInfo } from '../gguf/ggml-types.js';
import type { GgufValue } from '../gguf/values.js';
import type { GgufTensorSpec } from '../gguf/writer.js';
import { Prng } from '../util/prng.js';

/** The quantization of a synthetic model: one type for all matrices, or a llama.cpp-style mix. */
export type SyntheticQuant = GgmlType | 'Q3_K_M' | 'Q4_K_M' | 'Q5_K_M';

/** Shape and content of a synthetic model; each family reads the fields its models have. */
export interface SyntheticModelSpec {
  /** GGUF architecture name: picks the family that writes the file. */
  readonly arch: string;
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
  /** YaRN rope scaling: its factor and the original context, as llama.cpp's converters write them. */
  readonly yarn?: { readonly factor: number; readonly origCtx: number };
  /** Also write the attention's optional tensors the family's files may have: Q/K/V biases, per-head Q/K norms. */
  readonly attnExtras?: { readonly qkvBias?: boolean; readonly qkNorm?: boolean };
  /** Mixture-of-Experts layers (the families that have them read it). */
  readonly moe?: SyntheticMoe;
  /** Multi-head latent attention (deepseek2). */
  readonly mla?: SyntheticMla;
  /** Positions a sliding-window layer sees (gpt-oss, Gemma 3). */
  readonly slidingWindow?: number;
  /** `attention.sliding_window_pattern`, where the family reads it; unset: not written (the family's default). */
  readonly slidingWindowPattern?: number;
  /** Linear rope scaling (`rope.scaling.type` linear) by this factor. */
  readonly linearRopeFactor?: number;
  /** Final logit softcapping (`final_logit_softcapping`), where the family reads it. */
  readonly finalLogitSoftcap?: number;
  /** Attention score softcapping (`attn_logit_softcapping`), where the family reads it. */
  readonly attnLogitSoftcap?: number;
  /** Rotated dimensions of a head where fewer than all (Phi-4-mini), where the family writes them. */
  readonly ropeDims?: number;
  /** Phi-3's long-context rope: the two factor sets, the original context and the attention factor. */
  readonly longRope?: { readonly origCtx: number; readonly attnFactor: number };
  /** Q, K and V as three tensors where the family's files fuse them (Phi-3). */
  readonly separateQkv?: boolean;
  /** `rope.scaling.yarn_log_multiplier` as mistral3 files store it (mscale_all_dim itself). */
  readonly yarnLogMul?: number;
  /** Llama 4's attention temperature (`attention.temperature_scale`, mistral3). */
  readonly attnTemperature?: number;
  /** The pooling an embedding model's file names (encoders write it; default mean). */
  readonly pooling?: 'none' | 'mean' | 'cls' | 'last';
  readonly quant: SyntheticQuant;
  readonly seed: number;
  readonly name?: string;
  /**
   * Write a llama model that repeats its context with this period instead of random weights (see
   * families/copy-decoder.ts): text whose continuation repeats its input, for speculative decoding.
   */
  readonly copyPeriod?: number;
  /**
   * Build matrices and expert banks of more rows than this from a pool of this many random rows,
   * quantized once and copied to the rows in a seeded random order: a benchmark model of tens of
   * gigabytes is written in minutes instead of hours (quantizing K-quants is the slow part), with
   * the same bytes to read per token. Unset: every row is drawn on its own (what tests use).
   */
  readonly pooledRows?: number;
}

/** The Mixture-of-Experts part of a synthetic model's shape. */
export interface SyntheticMoe {
  readonly experts: number;
  /** Experts each token uses. */
  readonly used: number;
  /** Hidden width of one routed expert. */
  readonly width: number;
  /** Shared experts (each of `width`, or of `sharedWidth` in all where a family sets it apart). */
  readonly shared?: number;
  /** Total hidden width of the shared experts, where the family's files give it on its own (Qwen2-MoE). */
  readonly sharedWidth?: number;
  /** Leading layers with a dense FFN of nFf. */
  readonly leadingDense?: number;
  /** Routing by sigmoid (with a score-correction bias) instead of softmax, where the family's files choose. */
  readonly sigmoid?: boolean;
  /** Normalize the chosen weights, where the family's files choose. */
  readonly normalize?: boolean;
  /** Scale of the chosen weights, where the family's files choose. */
  readonly scale?: number;
  /** Group-limited routing: groups, and groups a token may use. */
  readonly groups?: number;
  readonly groupsUsed?: number;
  /** Multi-token-prediction layers after the model's layers (GLM), which inference skips. */
  readonly nextn?: number;
  /** Type of the routed experts' tensors; default: the spec's quantization (gpt-oss files have MXFP4 experts). */
  readonly expertType?: GgmlType;
}

/** The latent attention part of a synthetic model's shape (DeepSeek's names in comments). */
export interface SyntheticMla {
  /** Query bottleneck rank (q_lora_rank); 0 for direct queries. */
  readonly qLora: number;
  /** Latent rank (kv_lora_rank). */
  readonly kvLora: number;
  /** Per-head key dims without rotation (qk_nope_head_dim) and rotated dims (qk_rope_head_dim). */
  readonly nope: number;
  readonly ropeDim: number;
  /** Per-head value size (v_head_dim). */
  readonly vDim: number;
  /** YaRN's mscale_all_dim (written as rope.scaling.yarn_log_multiplier = 0.1 x it); with spec.yarn. */
  readonly mscaleAllDim?: number;
  /** Write older converters' files: an unsplit attn_kv_b, no MLA keys, every head a KV head (nKvHead = nHead). */
  readonly unsplit?: boolean;
}

/** A named model shape, without quantization and seed. */
export type SyntheticShape = Omit<SyntheticModelSpec, 'quant' | 'seed'>;

/** Converts f32 values to a GGML type's bytes (a kernel implementation's quantize). */
export type Quantizer = (type: GgmlType, src: Float32Array) => Uint8Array;

/**
 * The type llama.cpp's mixes give a tensor: Q6_K for output; Q4_K_M/Q5_K_M: Q6_K for attn_v/ffn_down
 * on some layers; Q3_K_M: Q5_K there (Q4_K on the others), and Q4_K for attn_output.
 */
function tensorType(quant: SyntheticQuant, name: string, layer: number, nLayer: number): GgmlType {
  if (typeof quant === 'number') return quant;
  if (name === 'output.weight') return GgmlType.Q6_K;
  // llama.cpp's use_more_bits: the first and last eighth of layers, and every third in between.
  const moreBits = layer < nLayer / 8 || layer >= (7 * nLayer) / 8 || (layer - Math.floor(nLayer / 8)) % 3 === 2;
  const vOrDown = name.endsWith('attn_v.weight') || /ffn_down(_exps|_shexp)?\.weight$/.test(name);
  if (quant === 'Q3_K_M') {
    if (vOrDown) return moreBits ? GgmlType.Q5_K : GgmlType.Q4_K;
    return name.endsWith('attn_output.weight') ? GgmlType.Q4_K : GgmlType.Q3_K;
  }
  if (vOrDown && moreBits) return GgmlType.Q6_K;
  return quant === 'Q4_K_M' ? GgmlType.Q4_K : GgmlType.Q5_K;
}

/**
 * The type llama.cpp's quantizer gives a tensor whose rows the wanted type's block does not divide:
 * a 32-block type of about the same size, as llama.cpp's quantizer picks it (the IQ types -> IQ4_NL,
 * Q2_K, Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0), F16 when that does not fit either.
 */
function fittingType(type: GgmlType, cols: number): GgmlType {
  if (cols % ggmlTypeInfo(type)!.blockSize === 0) return type;
  const toIq4Nl = [GgmlType.IQ1_S, GgmlType.IQ1_M, GgmlType.IQ2_XXS, GgmlType.IQ2_XS, GgmlType.IQ2_S, GgmlType.IQ3_XXS, GgmlType.IQ3_S, GgmlType.IQ4_XS];
  const fallback: Partial<Record<GgmlType, GgmlType>> = { ...Object.fromEntries(toIq4Nl.map((t) => [t, GgmlType.IQ4_NL])), [GgmlType.Q2_K]: GgmlType.Q4_0, [GgmlType.Q3_K]: GgmlType.Q4_0, [GgmlType.Q4_K]: GgmlType.Q5_0, [GgmlType.Q5_K]: GgmlType.Q5_1, [GgmlType.Q6_K]: GgmlType.Q8_0 };
  const next = fallback[type];
  return next !== undefined && cols % ggmlTypeInfo(next)!.blockSize === 0 ? next : GgmlType.F16;
}

/** FNV-1a hash of a tensor name, to derive per-tensor random streams. */
function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Collects a synthetic model's tensors and architecture metadata in the order they are declared. */
export class SyntheticTensors {
  readonly tensors: GgufTensorSpec[] = [];
  readonly metadata: [string, GgufValue][] = [];

  constructor(
    private readonly spec: SyntheticModelSpec,
    private readonly quantize: Quantizer,
  ) {}

  /**
   * Uniform values with the requested mean and standard deviation. Each tensor draws from its own
   * stream (seed + name), so tensors can be generated lazily, one at a time, and a
   * multi-gigabyte model never sits in memory as f32.
   */
  private values(name: string, n: number, std: number, mean = 0): Float32Array {
    const rng = new Prng((this.spec.seed ^ hashName(name)) >>> 0);
    const a = new Float32Array(n);
    const halfWidth = std * Math.sqrt(3);
    for (let i = 0; i < n; i++) a[i] = mean + halfWidth * (2 * rng.next() - 1);
    return a;
  }

  /** An f32 tensor of random values (norm weights, biases). */
  f32(name: string, dims: number[], std: number, mean = 0): void {
    const v = this.values(
      name,
      dims.reduce((a, b) => a * b, 1),
      std,
      mean,
    );
    this.tensors.push({ name, type: GgmlType.F32, dims, data: new Uint8Array(v.buffer) });
  }

  /** A rows x cols matrix in the spec's quantization for layer `layer`; where the type's block does not divide a row, llama.cpp's fallback type. */
  matrix(name: string, rows: number, cols: number, std: number, layer = 0): void {
    let type = tensorType(this.spec.quant, name, layer, this.spec.nLayer);
    type = fittingType(type, cols);
    this.tensors.push({
      name,
      type,
      dims: [cols, rows],
      data: () => {
        const pooled = this.pooled(name, type, rows, cols, std);
        if (pooled) return pooled;
        const v = this.values(name, rows * cols, std);
        const bytes = type === GgmlType.F32 ? new Uint8Array(v.buffer) : this.quantize(type, v);
        if (bytes.length !== ggmlRowBytes(type, cols) * rows) throw new Error(`quantizer returned ${bytes.length} bytes for ${name}`);
        return bytes;
      },
    });
  }

  /** A rows x cols matrix of the values `make` gives (row-major), typed as matrix() types one; never pooled. */
  given(name: string, rows: number, cols: number, make: () => Float32Array, layer = 0): void {
    const type = fittingType(tensorType(this.spec.quant, name, layer, this.spec.nLayer), cols);
    this.tensors.push({
      name,
      type,
      dims: [cols, rows],
      data: () => {
        const v = make();
        if (v.length !== rows * cols) throw new Error(`${name}: ${v.length} values for ${rows} x ${cols}`);
        const bytes = type === GgmlType.F32 ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : this.quantize(type, v);
        if (bytes.length !== ggmlRowBytes(type, cols) * rows) throw new Error(`quantizer returned ${bytes.length} bytes for ${name}`);
        return bytes;
      },
    });
  }

  /**
   * A bank of `count` expert matrices of rows x cols (GGUF dims [cols, rows, count]), in the spec's
   * expert type if it has one, else quantized as matrix() would quantize one of them; each expert
   * draws from its own stream and is made one at a time, so a large bank never sits in memory as f32.
   */
  experts(name: string, count: number, rows: number, cols: number, std: number, layer = 0): void {
    let type = this.spec.moe?.expertType ?? tensorType(this.spec.quant, name, layer, this.spec.nLayer);
    type = fittingType(type, cols);
    const expertBytes = ggmlRowBytes(type, cols) * rows;
    this.tensors.push({
      name,
      type,
      dims: [cols, rows, count],
      data: () => {
        const pooled = this.pooled(name, type, rows * count, cols, std);
        if (pooled) return pooled;
        const all = new Uint8Array(expertBytes * count);
        for (let e = 0; e < count; e++) {
          const v = this.values(`${name}#${e}`, rows * cols, std);
          const bytes = type === GgmlType.F32 ? new Uint8Array(v.buffer) : this.quantize(type, v);
          if (bytes.length !== expertBytes) throw new Error(`quantizer returned ${bytes.length} bytes for expert ${e} of ${name}`);
          all.set(bytes, e * expertBytes);
        }
        return all;
      },
    });
  }

  /** `rows` rows copied from a pool of spec.pooledRows random rows, when the spec asks for it and there are more rows than that. */
  private pooled(name: string, type: GgmlType, rows: number, cols: number, std: number): Uint8Array | undefined {
    const size = this.spec.pooledRows;
    if (size === undefined || rows <= size) return undefined;
    const v = this.values(`${name}#pool`, size * cols, std);
    const pool = type === GgmlType.F32 ? new Uint8Array(v.buffer) : this.quantize(type, v);
    const rowBytes = ggmlRowBytes(type, cols);
    if (pool.length !== rowBytes * size) throw new Error(`quantizer returned ${pool.length} bytes for the row pool of ${name}`);
    const out = new Uint8Array(rowBytes * rows);
    const rng = new Prng((this.spec.seed ^ hashName(`${name}#order`)) >>> 0);
    for (let r = 0; r < rows; r++) {
      const p = rng.int(size);
      out.set(pool.subarray(p * rowBytes, (p + 1) * rowBytes), r * rowBytes);
    }
    return out;
  }

  /** An f32 tensor of given values. */
  constant(name: string, values: Float32Array): void {
    this.tensors.push({
      name,
      type: GgmlType.F32,
      dims: [values.length],
      data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
    });
  }

  /** A metadata key of the architecture. */
  meta(key: string, value: GgufValue): void {
    this.metadata.push([key, value]);
  }
}

/** The i-th word of the synthetic vocabularies: a, b, ..., z, ba, ... (digits of i in base 26, lowest first). */
export function syntheticWord(i: number): string {
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  let word = '';
  let k = i;
  do {
    word += letters[k % 26];
    k = Math.floor(k / 26);
  } while (k > 0);
  return word;
}

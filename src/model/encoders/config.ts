/**
 * The hyperparameters of an encoder (BERT-style embedding model) as llama.cpp reads them: the keys
 * decoders share (widths, heads, context, rope) plus LayerNorm's epsilon, the token-type count,
 * the pooling and whether attention is causal. What tells the families apart (absolute positions
 * or rotary, GELU or SwiGLU FFN) is fixed per architecture.
 */
import { CairnError } from '../../util/errors.js';
import type { Metadata } from '../../gguf/metadata.js';
import type { ModelConfig } from '../config.js';
import { readDecoderConfig } from '../families/decoder-keys.js';
import { readPooling, type Pooling } from '../pooling.js';

/** How an encoder family's layers are made. */
export interface EncoderKind {
  /** `absolute`: a learned position table added to the input (BERT); `rope`: rotary queries and keys (nomic-bert). */
  readonly positions: 'absolute' | 'rope';
  /** `gelu`: up, GELU, down, with biases (BERT); `swiglu`: SiLU(gate) x up, then down, without (nomic-bert). */
  readonly ffn: 'gelu' | 'swiglu';
}

/** An encoder's configuration. */
export interface EncoderConfig extends ModelConfig {
  readonly kind: EncoderKind;
  /** LayerNorm's epsilon (`<arch>.attention.layer_norm_epsilon`). */
  readonly normEps: number;
  /** Rows of the token-type table (`tokenizer.ggml.token_type_count`); the input adds row 0. */
  readonly tokenTypes: number;
  /** `<arch>.pooling_type`, or undefined where the file has none. */
  readonly pooling: Pooling | undefined;
  /** `<arch>.attention.causal` (llama.cpp's default: true; converters write false for these models). */
  readonly causal: boolean;
}

/** True for a config an encoder family made. */
export function isEncoderConfig(cfg: ModelConfig): cfg is EncoderConfig {
  return (cfg as Partial<EncoderConfig>).kind !== undefined && (cfg as Partial<EncoderConfig>).normEps !== undefined;
}

/** Reads an encoder's keys under `arch`; variants llama.cpp loads but cairn does not run fail here, named. */
export function readEncoderConfig(meta: Metadata, arch: string, kind: EncoderKind): EncoderConfig {
  const path = meta.file.path;
  const k = (suffix: string) => `${arch}.${suffix}`;
  const base = readDecoderConfig(meta, arch, 'neox');
  const epsKey = k('attention.layer_norm_epsilon');
  const normEps = meta.number(epsKey);
  if (normEps === undefined) throw new CairnError('GGUF_MALFORMED', `${path}: "${epsKey}" is missing`);
  if (!(Number.isFinite(normEps) && normEps >= 0)) throw new CairnError('GGUF_MALFORMED', `${path}: "${epsKey}" is ${normEps}, not a non-negative number`);
  const tokenTypes = meta.number('tokenizer.ggml.token_type_count') ?? 0;
  if (!(Number.isInteger(tokenTypes) && tokenTypes >= 1 && tokenTypes <= 1 << 16)) {
    throw new CairnError('GGUF_MALFORMED', `${path}: an ${arch} model needs "tokenizer.ggml.token_type_count" (1 or more), as llama.cpp does; it is ${tokenTypes}`);
  }
  const moeEvery = meta.number(k('moe_every_n_layers')) ?? 0;
  if (moeEvery !== 0 || (meta.number(k('expert_count')) ?? 0) > 0) {
    throw new CairnError('MODEL_UNSUPPORTED', `${path}: ${arch} with Mixture-of-Experts layers ("${k('moe_every_n_layers')}" = ${moeEvery}) is not supported`);
  }
  if (base.nHead * base.headDim !== base.nEmbd) {
    throw new CairnError('GGUF_MALFORMED', `${path}: ${base.nHead} heads of ${base.headDim} do not make the embedding width ${base.nEmbd}`);
  }
  if (kind.positions === 'rope') {
    const r = base.rope;
    if (r.yarn) throw new CairnError('MODEL_UNSUPPORTED', `${path}: ${arch} with YaRN rope scaling is not supported`);
    if (!(r.nRot >= 2 && r.nRot % 2 === 0 && r.nRot <= base.headDim)) {
      throw new CairnError('GGUF_MALFORMED', `${path}: rope over ${r.nRot} dimensions of heads of ${base.headDim}`);
    }
  }
  const pooling = readPooling(meta, arch);
  if (pooling === 'rank') {
    throw new CairnError('MODEL_UNSUPPORTED', `${path}: this ${arch} model is a reranker (pooling "rank", a classification head), which is not supported; embedding models are`);
  }
  // Learned positions: nothing is rotated (nRot 0 says so to whoever describes the model).
  const rope = kind.positions === 'rope' ? base.rope : { ...base.rope, nRot: 0 };
  return { ...base, rope, kind, normEps, tokenTypes, pooling, causal: meta.bool(k('attention.causal')) ?? true };
}

/** `12 layers, embedding 768, 12 heads of 64, FFN 3072 (GELU), vocab 30522, absolute positions, mean pooling`. */
export function describeEncoder(cfg: EncoderConfig): string {
  const heads = cfg.nKvHead === cfg.nHead ? `${cfg.nHead} heads` : `${cfg.nHead} heads (${cfg.nKvHead} KV)`;
  const pos = cfg.kind.positions === 'rope' ? `rotary positions (base ${cfg.rope.freqBase})` : 'absolute positions';
  const attention = cfg.causal ? ', causal attention' : '';
  return `${cfg.nLayer} layers, embedding ${cfg.nEmbd}, ${heads} of ${cfg.headDim}, FFN ${cfg.nFf} (${cfg.kind.ffn === 'gelu' ? 'GELU' : 'SwiGLU'}), vocab ${cfg.nVocab}, ${pos}${attention}, ${cfg.pooling ?? 'no'} pooling`;
}

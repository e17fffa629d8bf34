/**
 * Model hyperparameters read from GGUF metadata, for the architecture families cairn runs:
 * Llama (1/2/3/3.1/3.2, Mistral: arch "llama"), Qwen2/2.5 ("qwen2", QKV bias) and Qwen3
 * ("qwen3", per-head Q/K RMSNorm). Keys and defaults follow llama.cpp's loader.
 */
import { CairnError } from '../util/errors.js';
import { Metadata } from '../gguf/metadata.js';
import type { GgufFile } from '../gguf/reader.js';
import type { RopeMode } from '../kernels/api.js';

/** Architecture families with a forward pass. */
export type Architecture = 'llama' | 'qwen2' | 'qwen3';

const ROPE_MODE: Record<Architecture, RopeMode> = { llama: 'normal', qwen2: 'neox', qwen3: 'neox' };

/** Everything the forward pass needs to know about a model's shape. */
export interface ModelConfig {
  readonly arch: Architecture;
  readonly name: string;
  readonly nLayer: number;
  readonly nEmbd: number;
  readonly nHead: number;
  readonly nKvHead: number;
  /** Per-head dimension of queries and keys. */
  readonly headDim: number;
  /** Per-head dimension of values. */
  readonly headDimV: number;
  readonly nFf: number;
  readonly nVocab: number;
  /** Context length the model was trained with. */
  readonly ctxTrain: number;
  readonly rmsEps: number;
  readonly rope: {
    readonly mode: RopeMode;
    readonly nRot: number;
    readonly freqBase: number;
    readonly freqScale: number;
  };
}

/** Architectures that have a forward pass here. */
export const SUPPORTED_ARCHITECTURES: readonly Architecture[] = ['llama', 'qwen2', 'qwen3'];

/** Reads the model configuration of a GGUF file; unsupported architectures give a clear error. */
export function readModelConfig(file: GgufFile): ModelConfig {
  const m = new Metadata(file);
  const archName = m.requireString('general.architecture');
  if (!(SUPPORTED_ARCHITECTURES as readonly string[]).includes(archName)) {
    throw new CairnError(
      'MODEL_UNSUPPORTED',
      `${file.path}: architecture "${archName}" is not supported (supported: ${SUPPORTED_ARCHITECTURES.join(', ')})`,
    );
  }
  const arch = archName as Architecture;
  const k = (suffix: string) => `${arch}.${suffix}`;
  const nEmbd = m.requireNumber(k('embedding_length'));
  const nLayer = m.requireNumber(k('block_count'));
  const nHead = uniform(file, k('attention.head_count'), m.numberOrArray(k('attention.head_count')));
  if (!nHead || nHead <= 0) throw new CairnError('GGUF_MALFORMED', `${file.path}: "${k('attention.head_count')}" is missing or zero`);
  const nKvHead = uniform(file, k('attention.head_count_kv'), m.numberOrArray(k('attention.head_count_kv'))) ?? nHead;
  if (nKvHead <= 0) throw new CairnError('GGUF_MALFORMED', `${file.path}: "${k('attention.head_count_kv')}" is zero`);
  if (nHead % nKvHead !== 0) {
    throw new CairnError('GGUF_MALFORMED', `${file.path}: ${nHead} attention heads are not a multiple of ${nKvHead} KV heads`);
  }
  const headDim = m.number(k('attention.key_length')) ?? nEmbd / nHead;
  const headDimV = m.number(k('attention.value_length')) ?? headDim;
  if (!Number.isInteger(headDim) || headDim <= 0) {
    throw new CairnError('GGUF_MALFORMED', `${file.path}: head dimension ${headDim} is not a positive integer`);
  }
  const nFf = uniform(file, k('feed_forward_length'), m.numberOrArray(k('feed_forward_length')));
  if (!nFf) throw new CairnError('GGUF_MALFORMED', `${file.path}: "${k('feed_forward_length')}" is missing`);
  const tokens = m.strings('tokenizer.ggml.tokens');
  const nVocab = m.number(k('vocab_size')) ?? tokens?.length;
  if (!nVocab) throw new CairnError('GGUF_MALFORMED', `${file.path}: vocabulary size unknown (no tokenizer.ggml.tokens)`);

  const scalingType = m.string(k('rope.scaling.type'));
  const scalingFactor = m.number(k('rope.scaling.factor')) ?? 0;
  let freqScale = m.number(k('rope.freq_scale')) ?? 1;
  if (scalingType === 'linear' && scalingFactor > 0) freqScale = 1 / scalingFactor;
  if (scalingType === 'yarn') {
    throw new CairnError('MODEL_UNSUPPORTED', `${file.path}: YaRN rope scaling is not supported yet`);
  }
  return {
    arch,
    name: m.string('general.name') ?? arch,
    nLayer,
    nEmbd,
    nHead,
    nKvHead,
    headDim,
    headDimV,
    nFf,
    nVocab,
    ctxTrain: m.number(k('context_length')) ?? 2048,
    rmsEps: m.number(k('attention.layer_norm_rms_epsilon')) ?? 1e-5,
    rope: {
      mode: ROPE_MODE[arch],
      nRot: m.number(k('rope.dimension_count')) ?? headDim,
      freqBase: m.number(k('rope.freq_base')) ?? 10000,
      freqScale,
    },
  };
}

/** Per-layer arrays must be uniform here (no architecture we run varies them). */
function uniform(file: GgufFile, key: string, v: number | ArrayLike<number> | undefined): number | undefined {
  if (v === undefined || typeof v === 'number') return v;
  const first = v[0];
  for (let i = 1; i < v.length; i++) {
    if (v[i] !== first) throw new CairnError('MODEL_UNSUPPORTED', `${file.path}: "${key}" varies per layer, which is not supported`);
  }
  return first;
}

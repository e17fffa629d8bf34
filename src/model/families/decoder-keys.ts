/**
 * The hyperparameter keys llama.cpp writes for every decoder architecture, under the architecture's
 * prefix (`llama.block_count`, `qwen3.attention.key_length`, ...), with its defaults: read here
 * into a ModelConfig, and written here into synthetic models. A family adds its own keys and checks.
 */
import { CairnError } from '../../util/errors.js';
import type { Metadata } from '../../gguf/metadata.js';
import { gv } from '../../gguf/values.js';
import type { RopeMode } from '../../kernels/api.js';
import type { ModelConfig } from '../config.js';
import type { SyntheticModelSpec, SyntheticTensors } from '../synthetic-tensors.js';

/** Reads the shared decoder keys of `arch`; `ropeMode` is the family's rotation layout. */
export function readDecoderConfig(m: Metadata, arch: string, ropeMode: RopeMode): ModelConfig {
  const path = m.file.path;
  const k = (suffix: string) => `${arch}.${suffix}`;
  const nEmbd = m.requireNumber(k('embedding_length'));
  const nLayer = m.requireNumber(k('block_count'));
  const nHead = uniform(path, k('attention.head_count'), m.numberOrArray(k('attention.head_count')));
  if (!nHead || nHead <= 0) throw new CairnError('GGUF_MALFORMED', `${path}: "${k('attention.head_count')}" is missing or zero`);
  const nKvHead = uniform(path, k('attention.head_count_kv'), m.numberOrArray(k('attention.head_count_kv'))) ?? nHead;
  if (nKvHead <= 0) throw new CairnError('GGUF_MALFORMED', `${path}: "${k('attention.head_count_kv')}" is zero`);
  if (nHead % nKvHead !== 0) {
    throw new CairnError('GGUF_MALFORMED', `${path}: ${nHead} attention heads are not a multiple of ${nKvHead} KV heads`);
  }
  const headDim = m.number(k('attention.key_length')) ?? nEmbd / nHead;
  const headDimV = m.number(k('attention.value_length')) ?? headDim;
  if (!Number.isInteger(headDim) || headDim <= 0) {
    throw new CairnError('GGUF_MALFORMED', `${path}: head dimension ${headDim} is not a positive integer`);
  }
  const nFf = uniform(path, k('feed_forward_length'), m.numberOrArray(k('feed_forward_length')));
  if (!nFf) throw new CairnError('GGUF_MALFORMED', `${path}: "${k('feed_forward_length')}" is missing`);
  const tokens = m.strings('tokenizer.ggml.tokens');
  const nVocab = m.number(k('vocab_size')) ?? tokens?.length;
  if (!nVocab) throw new CairnError('GGUF_MALFORMED', `${path}: vocabulary size unknown (no tokenizer.ggml.tokens)`);

  const scalingType = m.string(k('rope.scaling.type'));
  const scalingFactor = m.number(k('rope.scaling.factor')) ?? 0;
  let freqScale = m.number(k('rope.freq_scale')) ?? 1;
  if (scalingType === 'linear' && scalingFactor > 0) freqScale = 1 / scalingFactor;
  if (scalingType === 'yarn') {
    throw new CairnError('MODEL_UNSUPPORTED', `${path}: YaRN rope scaling is not supported yet`);
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
      mode: ropeMode,
      nRot: m.number(k('rope.dimension_count')) ?? headDim,
      freqBase: m.number(k('rope.freq_base')) ?? 10000,
      freqScale,
    },
  };
}

/** Per-layer arrays must be uniform for the families that read them through here. */
function uniform(path: string, key: string, v: number | ArrayLike<number> | undefined): number | undefined {
  if (v === undefined || typeof v === 'number') return v;
  const first = v[0];
  for (let i = 1; i < v.length; i++) {
    if (v[i] !== first) throw new CairnError('MODEL_UNSUPPORTED', `${path}: "${key}" varies per layer, which is not supported`);
  }
  return first;
}

/** Writes the shared decoder keys of a synthetic model. */
export function writeDecoderKeys(spec: SyntheticModelSpec, out: SyntheticTensors): void {
  const a = spec.arch;
  const hd = spec.headDim ?? spec.nEmbd / spec.nHead;
  out.meta(`${a}.context_length`, gv.u32(spec.ctx ?? 2048));
  out.meta(`${a}.embedding_length`, gv.u32(spec.nEmbd));
  out.meta(`${a}.block_count`, gv.u32(spec.nLayer));
  out.meta(`${a}.feed_forward_length`, gv.u32(spec.nFf));
  out.meta(`${a}.attention.head_count`, gv.u32(spec.nHead));
  out.meta(`${a}.attention.head_count_kv`, gv.u32(spec.nKvHead));
  out.meta(`${a}.attention.layer_norm_rms_epsilon`, gv.f32(1e-6));
  out.meta(`${a}.rope.freq_base`, gv.f32(spec.ropeBase ?? 10000));
  out.meta(`${a}.rope.dimension_count`, gv.u32(hd));
  if (spec.headDim !== undefined) {
    out.meta(`${a}.attention.key_length`, gv.u32(hd));
    out.meta(`${a}.attention.value_length`, gv.u32(hd));
  }
}

/**
 * The hyperparameter keys llama.cpp writes for every decoder architecture, under the architecture's
 * prefix (`llama.block_count`, `qwen3.attention.key_length`, ...), with its defaults: read here
 * into a ModelConfig, and written here into synthetic models. A family adds its own keys and checks.
 */
import { CairnError } from '../../util/errors.js';
import type { Metadata } from '../../gguf/metadata.js';
import { gv } from '../../gguf/values.js';
import type { RopeMode } from '../../kernels/api.js';
import type { ModelConfig, RopeConfig } from '../config.js';
import { YARN_BETA_FAST, YARN_BETA_SLOW, yarnAttnFactor } from '../blocks/yarn-rope.js';
import type { SyntheticModelSpec, SyntheticTensors } from '../synthetic-tensors.js';

/** What a family adds to the shared keys. */
export interface DecoderKeyOptions {
  /**
   * YaRN's mscale_all_dim, for families that read `rope.scaling.yarn_log_multiplier` (deepseek2):
   * it changes the attention factor llama.cpp passes to the rope ops.
   */
  readonly yarnLogMul?: number;
  /**
   * False for a family whose layers may all be Mixture-of-Experts: llama.cpp's default
   * `feed_forward_length` is 0, and nFf is then 0.
   */
  readonly ffnRequired?: boolean;
  /** Read YaRN's ramp ends from `rope.scaling.yarn_beta_fast` / `_slow` (mistral3), else llama.cpp's defaults. */
  readonly yarnBetas?: boolean;
}

/** Reads the shared decoder keys of `arch`; `ropeMode` is the family's rotation layout. */
export function readDecoderConfig(m: Metadata, arch: string, ropeMode: RopeMode, opts: DecoderKeyOptions = {}): ModelConfig {
  const path = m.file.path;
  const k = (suffix: string) => `${arch}.${suffix}`;
  const nEmbd = m.requireNumber(k('embedding_length'));
  const nLayer = m.requireNumber(k('block_count'));
  // These size shapes, loops and kernel parameters: nonsense is refused here, naming the key,
  // rather than by a range check far away or in every forward pass.
  whole(path, k('embedding_length'), nEmbd, 1);
  whole(path, k('block_count'), nLayer, 1);
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
  const nFf =
    uniform(path, k('feed_forward_length'), m.numberOrArray(k('feed_forward_length'))) ?? (opts.ffnRequired === false ? 0 : undefined);
  if (nFf === undefined || (nFf === 0 && opts.ffnRequired !== false))
    throw new CairnError('GGUF_MALFORMED', `${path}: "${k('feed_forward_length')}" is missing`);
  const tokens = m.strings('tokenizer.ggml.tokens');
  const nVocab = m.number(k('vocab_size')) ?? tokens?.length;
  if (!nVocab) throw new CairnError('GGUF_MALFORMED', `${path}: vocabulary size unknown (no tokenizer.ggml.tokens)`);

  const ctxTrain = m.number(k('context_length')) ?? 2048;
  const nRot = m.number(k('rope.dimension_count')) ?? headDim;
  const freqBase = m.number(k('rope.freq_base')) ?? 10000;
  const rmsEps = m.number(k('attention.layer_norm_rms_epsilon')) ?? 1e-5;
  whole(path, k('attention.value_length'), headDimV, 1);
  whole(path, k('feed_forward_length'), nFf, 0);
  whole(path, k('vocab_size'), nVocab, 1);
  whole(path, k('context_length'), ctxTrain, 1);
  if (!(Number.isInteger(nRot) && nRot >= 2 && nRot % 2 === 0 && nRot <= headDim)) {
    throw new CairnError(
      'GGUF_MALFORMED',
      `${path}: "${k('rope.dimension_count')}" is ${nRot}, not an even number from 2 to the head size ${headDim}`,
    );
  }
  if (!(Number.isFinite(freqBase) && freqBase > 0))
    throw new CairnError('GGUF_MALFORMED', `${path}: "${k('rope.freq_base')}" is ${freqBase}, not a positive number`);
  if (!(Number.isFinite(rmsEps) && rmsEps >= 0)) {
    throw new CairnError('GGUF_MALFORMED', `${path}: "${k('attention.layer_norm_rms_epsilon')}" is ${rmsEps}, not a non-negative number`);
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
    ctxTrain,
    rmsEps,
    rope: { mode: ropeMode, nRot, freqBase, ...readRopeScaling(m, arch, ctxTrain, opts) },
  };
}

/** Rope scaling types llama.cpp knows that cairn runs (`longrope` is Phi-3's, with factor tensors). */
const ROPE_SCALING_TYPES = ['none', 'linear', 'yarn'];

/**
 * The rope scaling keys as llama.cpp reads them (llama-model.cpp load_hparams) and turns them into
 * per-context rope constants (llama-context.cpp): the type defaults to linear, the factor (or the
 * older `rope.scale_linear`) sets freqScale = 1/factor unless the type is none, YaRN sets the ramp
 * and the attention factor, and `rope.scaling.attn_factor` scales every rotation.
 */
function readRopeScaling(m: Metadata, arch: string, ctxTrain: number, opts: DecoderKeyOptions): Pick<RopeConfig, 'freqScale' | 'yarn'> {
  const path = m.file.path;
  const k = (suffix: string) => `${arch}.${suffix}`;
  const type = m.string(k('rope.scaling.type')) ?? 'linear';
  if (!ROPE_SCALING_TYPES.includes(type)) {
    throw new CairnError(
      'MODEL_UNSUPPORTED',
      `${path}: rope scaling "${type}" is not supported (supported: ${ROPE_SCALING_TYPES.join(', ')})`,
    );
  }
  const factor = m.number(k('rope.scaling.factor')) ?? m.number(k('rope.scale_linear')) ?? 0;
  if (!(Number.isFinite(factor) && factor >= 0))
    throw new CairnError('GGUF_MALFORMED', `${path}: rope scaling factor ${factor} is not a non-negative number`);
  const freqScale = type === 'none' || factor === 0 ? 1 : Math.fround(1 / Math.fround(factor));
  const ropeAttnFactor = m.number(k('rope.scaling.attn_factor')) ?? 1;
  if (!(Number.isFinite(ropeAttnFactor) && ropeAttnFactor > 0)) {
    throw new CairnError('GGUF_MALFORMED', `${path}: rope attention factor ${ropeAttnFactor} is not a positive number`);
  }
  const extFactor = type === 'yarn' ? 1 : 0;
  const attnFactor = yarnAttnFactor({ freqScale, extFactor, logMul: opts.yarnLogMul, deepseek2: arch === 'deepseek2', ropeAttnFactor });
  if (extFactor === 0 && attnFactor === 1) return { freqScale };
  const origCtx = m.number(k('rope.scaling.original_context_length')) ?? ctxTrain;
  if (!(Number.isInteger(origCtx) && origCtx > 0))
    throw new CairnError('GGUF_MALFORMED', `${path}: rope original context ${origCtx} is not a positive integer`);
  const beta = (key: string, fallback: number): number => {
    const v = opts.yarnBetas ? (m.number(k(key)) ?? fallback) : fallback;
    if (!(Number.isFinite(v) && v > 0)) throw new CairnError('GGUF_MALFORMED', `${path}: "${k(key)}" is ${v}, not a positive number`);
    return v;
  };
  const betaFast = beta('rope.scaling.yarn_beta_fast', YARN_BETA_FAST);
  const betaSlow = beta('rope.scaling.yarn_beta_slow', YARN_BETA_SLOW);
  return { freqScale, yarn: { extFactor, attnFactor, betaFast, betaSlow, origCtx } };
}

/** Throws GGUF_MALFORMED naming `key` unless `v` is a whole number of at least `min`. */
function whole(path: string, key: string, v: number, min: number): void {
  if (!(Number.isSafeInteger(v) && v >= min))
    throw new CairnError('GGUF_MALFORMED', `${path}: "${key}" is ${v}, not a whole number of at least ${min}`);
}

/** Per-layer arrays must be uniform for the families that read them through here; throws MODEL_UNSUPPORTED naming the key otherwise. */
export function uniform(path: string, key: string, v: number | ArrayLike<number> | undefined): number | undefined {
  if (v === undefined || typeof v === 'number') return v;
  const first = v[0];
  for (let i = 1; i < v.length; i++) {
    if (v[i] !== first) throw new CairnError('MODEL_UNSUPPORTED', `${path}: "${key}" varies per layer, which is not supported`);
  }
  return first;
}

/**
 * Writes the shared decoder keys of a synthetic model; `blockCount` (default nLayer) counts layers
 * inference skips too (GLM's multi-token prediction), `ropeDims` (default the head size) is a
 * partial rotation.
 */
export function writeDecoderKeys(
  spec: SyntheticModelSpec,
  out: SyntheticTensors,
  opts: { blockCount?: number; ropeDims?: number } = {},
): void {
  const a = spec.arch;
  const hd = spec.headDim ?? spec.nEmbd / spec.nHead;
  out.meta(`${a}.context_length`, gv.u32(spec.ctx ?? 2048));
  out.meta(`${a}.embedding_length`, gv.u32(spec.nEmbd));
  out.meta(`${a}.block_count`, gv.u32(opts.blockCount ?? spec.nLayer));
  out.meta(`${a}.feed_forward_length`, gv.u32(spec.nFf));
  out.meta(`${a}.attention.head_count`, gv.u32(spec.nHead));
  out.meta(`${a}.attention.head_count_kv`, gv.u32(spec.nKvHead));
  out.meta(`${a}.attention.layer_norm_rms_epsilon`, gv.f32(1e-6));
  out.meta(`${a}.rope.freq_base`, gv.f32(spec.ropeBase ?? 10000));
  out.meta(`${a}.rope.dimension_count`, gv.u32(opts.ropeDims ?? hd));
  if (spec.yarn) {
    out.meta(`${a}.rope.scaling.type`, gv.str('yarn'));
    out.meta(`${a}.rope.scaling.factor`, gv.f32(spec.yarn.factor));
    out.meta(`${a}.rope.scaling.original_context_length`, gv.u32(spec.yarn.origCtx));
  }
  if (spec.linearRopeFactor !== undefined) {
    out.meta(`${a}.rope.scaling.type`, gv.str('linear'));
    out.meta(`${a}.rope.scaling.factor`, gv.f32(spec.linearRopeFactor));
  }
  if (spec.headDim !== undefined) {
    out.meta(`${a}.attention.key_length`, gv.u32(hd));
    out.meta(`${a}.attention.value_length`, gv.u32(hd));
  }
}

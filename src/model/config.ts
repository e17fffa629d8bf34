/**
 * Model hyperparameters, as every family reports them. Each family (families/) reads its own GGUF
 * keys into this shape, adding what only it has; the registry picks the family by the file's
 * `general.architecture`, so an unknown architecture or a feature a family does not run yet fails
 * here, at load, with a message naming it.
 */
import { Metadata } from '../gguf/metadata.js';
import type { GgufFile } from '../gguf/reader.js';
import type { RopeMode } from '../kernels/api.js';
import { familyFor } from './registry.js';

/** How positions are rotated into queries and keys. */
export interface RopeConfig {
  readonly mode: RopeMode;
  /** Dimensions rotated per head (the rest pass through). */
  readonly nRot: number;
  readonly freqBase: number;
  /** Linear position scale (1 / the linear scaling factor); 1 for none. */
  readonly freqScale: number;
  /** ggml's rope_ext extension (YaRN) where the file asks for it; plain rotation when absent. */
  readonly yarn?: YarnConfig;
}

/**
 * The parameters ggml's rope_ext takes beyond plain rotation, as llama.cpp sets them per context:
 * YaRN's ramp between interpolated and extrapolated frequencies and its magnitude correction.
 */
export interface YarnConfig {
  /** Weight of the extrapolation ramp: 1 for YaRN, 0 for a plain rotation scaled by attnFactor. */
  readonly extFactor: number;
  /** The attention factor passed to every rope op (cos and sin are scaled by it). */
  readonly attnFactor: number;
  /** Rotations per original context at which the ramp starts (ggml's beta_fast) and ends (beta_slow). */
  readonly betaFast: number;
  readonly betaSlow: number;
  /** Context length the model was trained with before scaling (n_ctx_orig_yarn). */
  readonly origCtx: number;
}

/** What every family knows of its model's shape; a family's own config extends it. */
export interface ModelConfig {
  /** The GGUF architecture name (`general.architecture`): the key of the model's family. */
  readonly arch: string;
  readonly name: string;
  readonly nLayer: number;
  /** Width of the residual stream (and of the hidden states between pipeline stages). */
  readonly nEmbd: number;
  /** Query heads. */
  readonly nHead: number;
  readonly nKvHead: number;
  /** Per-head dimension of queries and keys. */
  readonly headDim: number;
  /** Per-head dimension of values. */
  readonly headDimV: number;
  /** Hidden width of a dense feed-forward block. */
  readonly nFf: number;
  readonly nVocab: number;
  /** Context length the model was trained with. */
  readonly ctxTrain: number;
  readonly rmsEps: number;
  readonly rope: RopeConfig;
}

/** Reads the model configuration of a GGUF file through its family; unsupported models give a clear error. */
export function readModelConfig(file: GgufFile): ModelConfig {
  const meta = new Metadata(file);
  const arch = meta.requireString('general.architecture');
  return familyFor(arch, file.path).readConfig(meta, arch);
}

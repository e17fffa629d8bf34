/**
 * Building an encoder over a GGUF file: every tensor declared and checked through a TensorSource
 * (views of the mapped file when loading; a dry build for byte accounting), then the forward pass
 * with its activations for `maxTokens` rows.
 */
import type { GgufFile } from '../../gguf/reader.js';
import type { Kernels } from '../../kernels/api.js';
import type { ShardWeights } from '../decoder.js';
import { GgufTensorSource, type TensorBytes } from '../gguf-tensor-source.js';
import type { EncoderConfig } from './config.js';
import { Encoder } from './encoder.js';
import { declareEncoder } from './weights.js';

/** A loaded encoder and the file data it references. */
export interface LoadedEncoder {
  readonly encoder: Encoder;
  readonly weights: ShardWeights;
}

/** Builds the encoder over the mapped file (`bytesOf` gives a tensor's data). */
export function loadEncoder(file: GgufFile, cfg: EncoderConfig, bytesOf: TensorBytes, kernels: Kernels, maxTokens: number): LoadedEncoder {
  const src = new GgufTensorSource(file, { bytesOf, kernels });
  const w = declareEncoder(cfg, src, (part) => src.enter(part));
  return { encoder: new Encoder(cfg, w, kernels, maxTokens), weights: { bytes: src.totalBytes, views: src.views() } };
}

/** Bytes and parameters of the tensors the encoder uses (a dry build: nothing is read or allocated). */
export function encoderBytes(file: GgufFile, cfg: EncoderConfig): { bytes: number; parameters: number } {
  const src = new GgufTensorSource(file);
  declareEncoder(cfg, src, (part) => src.enter(part));
  return { bytes: src.totalBytes, parameters: src.totalParameters };
}

/** Activation bytes of an encoder for `maxTokens` rows, as Encoder allocates them (an estimate for `inspect`). */
export function encoderActivationBytes(cfg: EncoderConfig, maxTokens: number): number {
  const D = cfg.nEmbd;
  const kvw = cfg.nKvHead * cfg.headDim;
  const ffnRows = Math.min(maxTokens, 256);
  const rows = maxTokens * (4 * D + 2 * kvw + (D + 2 * kvw) + 1) + 2 * ffnRows * cfg.nFf;
  // Attention's per-head buffers: queries, keys, transposed values, and a chunk of scores.
  const attention = 3 * maxTokens * cfg.headDim + Math.min(256, maxTokens) * (maxTokens + cfg.headDim);
  return 4 * (rows + attention);
}

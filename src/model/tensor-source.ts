/**
 * How a family declares the tensors of a model part (a layer, the embedding, the head): by name
 * and expected shape, through a TensorSource. The same declarations load a shard from a mapped
 * file, check a file's tensor index, and account for the bytes each part holds and reads per token
 * (so a family's tensor names and shapes are written once). Weights stay in their file type,
 * views of the mapped file; only small vectors become f32.
 */
import type { GgmlType } from '../gguf/ggml-types.js';

/** A weight matrix of `rows` x `cols` in its file type. */
export interface Matrix {
  readonly name: string;
  readonly type: GgmlType;
  readonly rows: number;
  readonly cols: number;
  readonly data: Uint8Array;
}

/** Where a family's declarations go; every method throws a clear error for a missing or misshapen tensor. */
export interface TensorSource {
  /** The model file's path (for messages). */
  readonly path: string;
  /** True when the file has a tensor of this name. */
  has(name: string): boolean;
  /** A rows x cols weight matrix (GGUF dims [cols, rows]), read in full by every token. */
  matrix(name: string, rows: number, cols: number): Matrix;
  /** Like matrix(), or undefined when the file has no such tensor. */
  optionalMatrix(name: string, rows: number, cols: number): Matrix | undefined;
  /** A token embedding table of rows x cols: a token reads one row of it. */
  embedding(name: string, rows: number, cols: number): Matrix;
  /** A vector of `len` elements as f32 (norm weights, biases). */
  vector(name: string, len: number): Float32Array;
  /** Like vector(), or undefined when the file has no such tensor. */
  optionalVector(name: string, len: number): Float32Array | undefined;
  /**
   * A vector every layer may declare but the shard holds once (llama's `rope_freqs`): counted in
   * no layer's bytes but in the shard's shared bytes; the same array comes back each time.
   */
  sharedVector(name: string, len: number, required: boolean): Float32Array | undefined;
}

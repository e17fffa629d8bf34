/**
 * How a family declares the tensors of a model part (a layer, the embedding, the head): by name
 * and expected shape, through a TensorSource. The same declarations load a shard from a mapped
 * file, check a file's tensor index, and account for the bytes each part holds and reads per token
 * (so a family's tensor names and shapes are written once). Weights stay in their file type,
 * views of the mapped file; only small vectors become f32.
 */
import type { GgmlType } from '../gguf/ggml-types.js';
import type { Range, TensorSplit } from './tensor-split.js';

/** A weight matrix of `rows` x `cols` in its file type. */
export interface Matrix {
  readonly name: string;
  readonly type: GgmlType;
  readonly rows: number;
  readonly cols: number;
  readonly data: Uint8Array;
}

/** A matrix a shard's products read, and whether its bytes serve nothing else (no other declaration reads them). */
export interface ProductMatrix {
  readonly matrix: Matrix;
  readonly only: boolean;
}

/**
 * The matrices of `count` experts of one Mixture-of-Experts layer, rows x cols each, stored as one
 * 3-D tensor (GGUF dims [cols, rows, count]) and used in place: expert e is the e-th run of
 * `expertBytes` bytes, so a shard can address (and later hold) experts one by one.
 */
export interface ExpertBank {
  readonly name: string;
  readonly type: GgmlType;
  readonly rows: number;
  readonly cols: number;
  readonly count: number;
  /** Bytes of one expert's matrix. */
  readonly expertBytes: number;
  /** The whole bank (a tensor-parallel rank's: its experts only, expert `first` at the start). */
  readonly data: Uint8Array;
  /** The layer's id of the bank's first expert: 0 unless a rank holds a range of them (expertsRange). */
  readonly first?: number;
}

/** Expert e of a bank as a matrix (a view of the bank's data, not a copy). */
export function expertMatrix(bank: ExpertBank, e: number): Matrix {
  if (!(Number.isInteger(e) && e >= 0 && e < bank.count)) throw new RangeError(`expert ${e} of ${bank.count}`);
  const data = bank.data.length === 0 ? bank.data : bank.data.subarray(e * bank.expertBytes, (e + 1) * bank.expertBytes);
  return { name: `${bank.name}[${e}]`, type: bank.type, rows: bank.rows, cols: bank.cols, data };
}

/** Where a family's declarations go; every method throws a clear error for a missing or misshapen tensor. */
export interface TensorSource {
  /** The model file's path (for messages). */
  readonly path: string;
  /** The tensor-parallel rank the declarations are for (undefined: whole layers, tensor-split.ts). */
  readonly split?: TensorSplit;
  /**
   * The expert-parallel rank the declarations are for: MoE blocks declare only its range of the
   * routed experts (tensor-split.ts's expertRange), everything else whole. Never with `split`.
   */
  readonly expertSplit?: TensorSplit;
  /** True when the file has a tensor of this name. */
  has(name: string): boolean;
  /** A rows x cols weight matrix (GGUF dims [cols, rows]), read in full by every token. */
  matrix(name: string, rows: number, cols: number): Matrix;
  /** Like matrix(), or undefined when the file has no such tensor. */
  optionalMatrix(name: string, rows: number, cols: number): Matrix | undefined;
  /** Rows [start, end) of a rows x cols matrix (an output range of a projection): a view, not a copy. */
  matrixRows(name: string, rows: number, cols: number, range: Range): Matrix;
  /**
   * Columns [start, end) of a rows x cols matrix (an input range of a projection), held as their
   * own compact copy; the range must start and end on quantization blocks of the tensor's type.
   */
  matrixColumns(name: string, rows: number, cols: number, range: Range): Matrix;
  /** A token embedding table of rows x cols: a token reads one row of it. */
  embedding(name: string, rows: number, cols: number): Matrix;
  /**
   * A bank of `count` expert matrices of rows x cols, of which a token uses `used`: `used / count`
   * of its bytes count as read per token.
   */
  experts(name: string, count: number, rows: number, cols: number, used: number): ExpertBank;
  /**
   * Experts [start, end) of a bank of `count` (a tensor-parallel rank's): a bank of end - start
   * experts (its `first` = start), a view of the file, not a copy. Held: those experts' bytes; read
   * per token: `used` x held / count experts, the share of the chosen experts a rank computes on
   * average.
   */
  expertsRange(name: string, count: number, rows: number, cols: number, used: number, range: Range): ExpertBank;
  /** A vector of `len` elements as f32 (norm weights, biases). */
  vector(name: string, len: number): Float32Array;
  /** Like vector(), or undefined when the file has no such tensor. */
  optionalVector(name: string, len: number): Float32Array | undefined;
  /**
   * Elements [start, end) of a vector of `len` (a bias of a split projection), or undefined when
   * absent and not required; only that range counts as held where it is a view (an F32 tensor).
   */
  vectorRange(name: string, len: number, range: Range, required: boolean): Float32Array | undefined;
  /**
   * A vector every layer may declare but the shard holds once (llama's `rope_freqs`): counted in
   * no layer's bytes but in the shard's shared bytes; the same array comes back each time.
   */
  sharedVector(name: string, len: number, required: boolean): Float32Array | undefined;
}

/**
 * How a tensor-parallel group's partial sums travel: f32 (exact: the group's sums differ from one
 * machine's only in the order of float additions), f16 (half the bytes; each partial rounded to 11
 * significant bits, a relative error of at most 2^-11 per value) or q8 (Q8_0 blocks, about 0.27 of
 * the bytes; each value within 1/254 of its 32-value block's largest magnitude, plus the f16
 * rounding of the block's scale, 2^-11 of it). Every rank rounds its own partial the same way
 * before adding, so all ranks still compute the same sums and their residual streams stay equal;
 * what changes is how far those sums are from one machine's (src/mesh/exchange-codec.test.ts).
 */
import { GgmlType, ggmlRowBytes } from '../gguf/ggml-types.js';
import type { Kernels } from '../kernels/index.js';
import { CairnError } from '../util/errors.js';

/** Element type of a group's exchanges. */
export type ExchangeDtype = 'f32' | 'f16' | 'q8';

const TYPE: Record<ExchangeDtype, GgmlType> = { f32: GgmlType.F32, f16: GgmlType.F16, q8: GgmlType.Q8_0 };

/** Encodes and decodes partial sums for the wire. */
export class ExchangeCodec {
  private readonly type: GgmlType;

  constructor(
    private readonly kernels: Kernels,
    readonly dtype: ExchangeDtype,
  ) {
    this.type = TYPE[dtype];
  }

  /** Wire bytes of n values (n a multiple of 32 for q8). */
  bytesFor(n: number): number {
    if (this.dtype === 'q8' && n % 32 !== 0) throw new CairnError('BAD_ARGUMENT', `q8 exchanges need a multiple of 32 values, not ${n}`);
    return ggmlRowBytes(this.type, n);
  }

  /**
   * The wire bytes of `values`, which are replaced in place by what the peers will decode from
   * them (so this rank adds the same numbers its peers do).
   */
  encode(values: Float32Array): Uint8Array {
    const n = values.length;
    if (this.dtype === 'f32') return new Uint8Array(values.buffer, values.byteOffset, 4 * n);
    const bytes = new Uint8Array(this.bytesFor(n));
    this.kernels.quantize(this.type, values, bytes, n);
    this.kernels.dequantize(this.type, bytes, values, n);
    return bytes;
  }

  /** The n values of wire bytes (a new array). */
  decode(bytes: Uint8Array, n: number): Float32Array {
    const out = new Float32Array(n);
    if (this.dtype === 'f32') out.set(new Float32Array(Uint8Array.prototype.slice.call(bytes, 0, 4 * n).buffer));
    else this.kernels.dequantize(this.type, bytes, out, n);
    return out;
  }
}

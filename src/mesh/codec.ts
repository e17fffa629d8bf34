/**
 * Hidden states on the wire: f32 as they are (exact: the pipeline then computes bit for bit what
 * one machine computes), or f16 where the plan says links are slow enough for half the bytes to
 * matter, converted by the native kernels. Buffers grow once and are reused.
 */
import { GgmlType } from '../gguf/ggml-types.js';
import type { Kernels } from '../kernels/index.js';

/** Converts hidden states between f32 and f16 bytes with reusable buffers. */
export class HiddenCodec {
  private f16 = new Uint8Array(0);
  private f32 = new Float32Array(0);

  constructor(private readonly kernels: Kernels) {}

  /** Wire bytes of the first n values of `x` (a view valid until the next call). */
  encode(x: Float32Array, n: number, kind: 'hidden16' | 'hidden32'): Uint8Array {
    if (kind === 'hidden32') return new Uint8Array(x.buffer, x.byteOffset, 4 * n);
    if (this.f16.length < 2 * n) this.f16 = new Uint8Array(2 * n);
    const out = this.f16.subarray(0, 2 * n);
    this.kernels.quantize(GgmlType.F16, x.subarray(0, n), out, n);
    return out;
  }

  /** f32 values of n wire values in `bytes` (a view valid until the next call). */
  decode(bytes: Uint8Array, n: number, kind: 'hidden16' | 'hidden32'): Float32Array {
    if (this.f32.length < n) this.f32 = new Float32Array(n);
    const out = this.f32.subarray(0, n);
    if (kind === 'hidden32') out.set(new Float32Array(Uint8Array.prototype.slice.call(bytes, 0, 4 * n).buffer));
    else this.kernels.dequantize(GgmlType.F16, bytes, out, n);
    return out;
  }
}

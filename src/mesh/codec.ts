/**
 * Hidden states on the wire: f32 in memory, f16 in frames, converted by the native kernels (no
 * JS loop per element). Buffers grow once and are reused, so a step allocates nothing new.
 */
import { GgmlType } from '../gguf/ggml-types.js';
import type { Kernels } from '../kernels/index.js';

/** Converts hidden states between f32 and f16 bytes with reusable buffers. */
export class HiddenCodec {
  private f16 = new Uint8Array(0);
  private f32 = new Float32Array(0);

  constructor(private readonly kernels: Kernels) {}

  /** f16 bytes of the first n values of `x` (a view valid until the next call). */
  encode(x: Float32Array, n: number): Uint8Array {
    if (this.f16.length < 2 * n) this.f16 = new Uint8Array(2 * n);
    const out = this.f16.subarray(0, 2 * n);
    this.kernels.quantize(GgmlType.F16, x.subarray(0, n), out, n);
    return out;
  }

  /** f32 values of n f16 values in `bytes` (a view valid until the next call). */
  decode(bytes: Uint8Array, n: number): Float32Array {
    if (this.f32.length < n) this.f32 = new Float32Array(n);
    const out = this.f32.subarray(0, n);
    // The native kernels read typed arrays at any alignment, but a copy keeps the source free.
    this.kernels.dequantize(GgmlType.F16, bytes.byteOffset % 2 === 0 ? bytes : bytes.slice(), out, n);
    return out;
  }
}

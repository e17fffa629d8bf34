/** Element codecs of the plain float formats (F32, F16, BF16), one element per "block". */
import { bf16ToF32, f32ToBf16, f32ToFp16, readFp16, writeHalfBits } from './half.js';

const f32 = new Float32Array(1);
const f32Bytes = new Uint8Array(f32.buffer);

/** Reads a little-endian f32 at `off`. */
export function readF32(bytes: Uint8Array, off: number): number {
  f32Bytes[0] = bytes[off];
  f32Bytes[1] = bytes[off + 1];
  f32Bytes[2] = bytes[off + 2];
  f32Bytes[3] = bytes[off + 3];
  return f32[0];
}

/** Decodes one F32 element. */
export function dequantizeF32(src: Uint8Array, so: number, dst: Float32Array, dOff: number): void {
  dst[dOff] = readF32(src, so);
}

/** Encodes one F32 element. */
export function quantizeF32(x: Float32Array, xo: number, dst: Uint8Array, dOff: number): void {
  f32[0] = x[xo];
  dst.set(f32Bytes, dOff);
}

/** Decodes one F16 element. */
export function dequantizeF16(src: Uint8Array, so: number, dst: Float32Array, dOff: number): void {
  dst[dOff] = readFp16(src, so);
}

/** Encodes one F16 element (round to nearest even). */
export function quantizeF16(x: Float32Array, xo: number, dst: Uint8Array, dOff: number): void {
  writeHalfBits(dst, dOff, f32ToFp16(x[xo]));
}

/** Decodes one BF16 element. */
export function dequantizeBF16(src: Uint8Array, so: number, dst: Float32Array, dOff: number): void {
  dst[dOff] = bf16ToF32(src[so] | (src[so + 1] << 8));
}

/** Encodes one BF16 element (round to nearest even). */
export function quantizeBF16(x: Float32Array, xo: number, dst: Uint8Array, dOff: number): void {
  writeHalfBits(dst, dOff, f32ToBf16(x[xo]));
}

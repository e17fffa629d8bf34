/**
 * The table of formats the kernels handle, with their block codecs, and the public
 * refDequantize / refQuantize (the reference semantics of Kernels.dequantize / Kernels.quantize).
 */
import { GgmlType, ggmlTypeInfo, ggmlTypeName } from '../../../gguf/ggml-types.js';
import { dequantizeQ8_K, quantizeQ8_K } from './activation-quants.js';
import { dequantizeBF16, dequantizeF16, dequantizeF32, quantizeBF16, quantizeF16, quantizeF32 } from './float-formats.js';
import { dequantizeIQ4_NL, dequantizeIQ4_XS, dequantizeQ2_K, dequantizeQ3_K, dequantizeQ4_K, dequantizeQ5_K, dequantizeQ6_K } from './k-quants.js';
import { quantizeIQ4_NL, quantizeIQ4_XS, quantizeQ2_K, quantizeQ3_K, quantizeQ4_K, quantizeQ5_K, quantizeQ6_K } from './k-quantize.js';
import { IQ_GRID_TYPES, iqGridDecoder } from './iq-quants.js';
import { quantizeIqGrid } from './iq-quantize.js';
import { dequantizeMXFP4, quantizeMXFP4 } from './mxfp4.js';
import {
  dequantizeQ4_0,
  dequantizeQ4_1,
  dequantizeQ5_0,
  dequantizeQ5_1,
  dequantizeQ8_0,
  dequantizeQ8_1,
  quantizeQ4_0,
  quantizeQ4_1,
  quantizeQ5_0,
  quantizeQ5_1,
  quantizeQ8_0,
  quantizeQ8_1,
} from './simple-quants.js';

/** Decodes one block of `src` at byte `so` into `dst` at `dOff`. */
export type BlockDecoder = (src: Uint8Array, so: number, dst: Float32Array, dOff: number) => void;
/** Encodes one block of `x` at `xo` into `dst` at byte `dOff`. */
export type BlockEncoder = (x: Float32Array, xo: number, dst: Uint8Array, dOff: number) => void;

/** How one format is stored and converted. */
export interface FormatCodec {
  readonly type: GgmlType;
  readonly blockSize: number;
  readonly blockBytes: number;
  readonly decode: BlockDecoder;
  readonly encode: BlockEncoder;
}

const codec = (type: GgmlType, blockSize: number, blockBytes: number, decode: BlockDecoder, encode: BlockEncoder): FormatCodec => ({
  type,
  blockSize,
  blockBytes,
  decode,
  encode,
});

const CODECS: ReadonlyMap<number, FormatCodec> = new Map(
  [
    codec(GgmlType.F32, 1, 4, dequantizeF32, quantizeF32),
    codec(GgmlType.F16, 1, 2, dequantizeF16, quantizeF16),
    codec(GgmlType.BF16, 1, 2, dequantizeBF16, quantizeBF16),
    codec(GgmlType.Q4_0, 32, 18, dequantizeQ4_0, quantizeQ4_0),
    codec(GgmlType.Q4_1, 32, 20, dequantizeQ4_1, quantizeQ4_1),
    codec(GgmlType.Q5_0, 32, 22, dequantizeQ5_0, quantizeQ5_0),
    codec(GgmlType.Q5_1, 32, 24, dequantizeQ5_1, quantizeQ5_1),
    codec(GgmlType.Q8_0, 32, 34, dequantizeQ8_0, quantizeQ8_0),
    codec(GgmlType.Q8_1, 32, 36, dequantizeQ8_1, quantizeQ8_1),
    codec(GgmlType.Q2_K, 256, 84, dequantizeQ2_K, quantizeQ2_K),
    codec(GgmlType.Q3_K, 256, 110, dequantizeQ3_K, quantizeQ3_K),
    codec(GgmlType.Q4_K, 256, 144, dequantizeQ4_K, quantizeQ4_K),
    codec(GgmlType.Q5_K, 256, 176, dequantizeQ5_K, quantizeQ5_K),
    codec(GgmlType.Q6_K, 256, 210, dequantizeQ6_K, quantizeQ6_K),
    codec(GgmlType.Q8_K, 256, 292, dequantizeQ8_K, quantizeQ8_K),
    codec(GgmlType.MXFP4, 32, 17, dequantizeMXFP4, quantizeMXFP4),
    codec(GgmlType.IQ4_XS, 256, 136, dequantizeIQ4_XS, quantizeIQ4_XS),
    codec(GgmlType.IQ4_NL, 32, 18, dequantizeIQ4_NL, quantizeIQ4_NL),
    ...IQ_GRID_TYPES.map((type) => codec(type, 256, ggmlTypeInfo(type)!.typeSize, iqGridDecoder(type), (x, xo, dst, dOff) => quantizeIqGrid(type, x, xo, dst, dOff))),
  ].map((c) => [c.type, c]),
);

/** The codec of `type`, or a RangeError naming the type when the kernels do not handle it. */
export function formatCodec(type: number): FormatCodec {
  const c = CODECS.get(type);
  if (!c) throw new RangeError(`unsupported tensor type ${ggmlTypeName(type)} (${type}) for quantization kernels`);
  return c;
}

/** Every type refDequantize/refQuantize accept. */
export const CODEC_TYPES: readonly GgmlType[] = [...CODECS.keys()];

/** Checks that `n` is a non-negative integer multiple of the block size. */
export function checkElementCount(c: FormatCodec, n: number, what = 'n'): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${what} must be a non-negative integer, got ${n}`);
  if (n % c.blockSize !== 0) {
    throw new RangeError(`${ggmlTypeName(c.type)} needs a multiple of ${c.blockSize} elements, got ${what} = ${n}`);
  }
}

/** Bytes of `n` elements (a multiple of the block size) of the codec's format. */
export function formatBytes(c: FormatCodec, n: number): number {
  return (n / c.blockSize) * c.blockBytes;
}

/** Dequantizes n elements of `type` from src into dst (reference twin of Kernels.dequantize). */
export function refDequantize(type: GgmlType, src: Uint8Array, dst: Float32Array, n: number): void {
  const c = formatCodec(type);
  checkElementCount(c, n);
  const bytes = formatBytes(c, n);
  if (src.length < bytes) throw new RangeError(`source holds ${src.length} bytes, ${n} elements of ${ggmlTypeName(type)} need ${bytes}`);
  if (dst.length < n) throw new RangeError(`destination holds ${dst.length} floats, need ${n}`);
  for (let b = 0; b < n / c.blockSize; b++) c.decode(src, b * c.blockBytes, dst, b * c.blockSize);
}

/** Quantizes n f32 elements into dst in `type`'s layout (reference twin of Kernels.quantize). */
export function refQuantize(type: GgmlType, src: Float32Array, dst: Uint8Array, n: number): void {
  const c = formatCodec(type);
  checkElementCount(c, n);
  const bytes = formatBytes(c, n);
  if (src.length < n) throw new RangeError(`source holds ${src.length} floats, need ${n}`);
  if (dst.length < bytes) throw new RangeError(`destination holds ${dst.length} bytes, ${n} elements of ${ggmlTypeName(type)} need ${bytes}`);
  for (let b = 0; b < n / c.blockSize; b++) c.encode(src, b * c.blockSize, dst, b * c.blockBytes);
}

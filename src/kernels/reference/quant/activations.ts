/**
 * Conversion of one f32 activation row into the form llama.cpp's CPU backend pairs with a weight
 * type (its "vec-dot type") before the dot products.
 */
import { GgmlType, ggmlTypeName } from '../../../gguf/ggml-types.js';
import { quantizeActivationQ8_0, quantizeActivationQ8_1, quantizeQ8_K } from './activation-quants.js';
import { bf16ToF32, f32ToBf16, f32ToFp16, fp16ToF32 } from './half.js';
import { isIqGrid } from './iq-quants.js';
import { BLOCK_BYTES, QK, QK_K } from './layouts.js';

/** An activation row ready for dot products: plain floats, or quantized blocks. */
export type ActivationRow = { kind: 'float'; values: Float32Array } | { kind: 'blocks'; type: GgmlType; bytes: Uint8Array };

/** The activation format llama.cpp uses with weights of `wtype`. */
export function vecDotType(wtype: GgmlType): GgmlType {
  if (isIqGrid(wtype)) return GgmlType.Q8_K;
  switch (wtype) {
    case GgmlType.F32:
    case GgmlType.F16:
    case GgmlType.BF16:
      return wtype;
    case GgmlType.Q4_0:
    case GgmlType.Q5_0:
    case GgmlType.Q8_0:
    case GgmlType.MXFP4:
    case GgmlType.IQ4_NL:
      return GgmlType.Q8_0;
    case GgmlType.Q4_1:
    case GgmlType.Q5_1:
      return GgmlType.Q8_1;
    case GgmlType.Q2_K:
    case GgmlType.Q3_K:
    case GgmlType.Q4_K:
    case GgmlType.Q5_K:
    case GgmlType.Q6_K:
    case GgmlType.IQ4_XS:
      return GgmlType.Q8_K;
    default:
      throw new RangeError(`unsupported weight type ${ggmlTypeName(wtype)} (${wtype}) for matmul`);
  }
}

/** Converts x[xo .. xo + cols) for a dot product with weights of `wtype`. */
export function convertActivationRow(wtype: GgmlType, x: Float32Array, xo: number, cols: number): ActivationRow {
  const type = vecDotType(wtype);
  switch (type) {
    case GgmlType.F32:
      return { kind: 'float', values: x.slice(xo, xo + cols) };
    case GgmlType.F16: {
      // Products of two halves are exact in f32, so keeping the rounded values as f32 loses nothing.
      const values = new Float32Array(cols);
      for (let i = 0; i < cols; i++) values[i] = fp16ToF32(f32ToFp16(x[xo + i]));
      return { kind: 'float', values };
    }
    case GgmlType.BF16: {
      const values = new Float32Array(cols);
      for (let i = 0; i < cols; i++) values[i] = bf16ToF32(f32ToBf16(x[xo + i]));
      return { kind: 'float', values };
    }
    case GgmlType.Q8_0:
      return quantizedRow(type, x, xo, cols, QK, BLOCK_BYTES.Q8_0, quantizeActivationQ8_0);
    case GgmlType.Q8_1:
      return quantizedRow(type, x, xo, cols, QK, BLOCK_BYTES.Q8_1, quantizeActivationQ8_1);
    default:
      return quantizedRow(type, x, xo, cols, QK_K, BLOCK_BYTES.Q8_K, quantizeQ8_K);
  }
}

function quantizedRow(
  type: GgmlType,
  x: Float32Array,
  xo: number,
  cols: number,
  blockSize: number,
  blockBytes: number,
  encode: (x: Float32Array, xo: number, dst: Uint8Array, dOff: number) => void,
): ActivationRow {
  const nb = cols / blockSize;
  const bytes = new Uint8Array(nb * blockBytes);
  for (let b = 0; b < nb; b++) encode(x, xo + b * blockSize, bytes, b * blockBytes);
  return { kind: 'blocks', type, bytes };
}

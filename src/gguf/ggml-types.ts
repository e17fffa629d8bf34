/**
 * GGML tensor element types as numbered in GGUF files, with their block geometry. The block size
 * is how many elements share one block; the type size is that block's bytes. Types cairn can
 * compute with are marked `supported`; the rest can still be read and inspected.
 */

/** GGML type ids (the `type` field of a GGUF tensor-info record). */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
}

/** Block geometry and support status of one GGML type. */
export interface GgmlTypeInfo {
  readonly name: string;
  /** Elements per block. */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly typeSize: number;
  /** True when cairn's kernels can use weights of this type. */
  readonly supported: boolean;
}

const info = (name: string, blockSize: number, typeSize: number, supported = false): GgmlTypeInfo => ({
  name,
  blockSize,
  typeSize,
  supported,
});

const TABLE: ReadonlyMap<number, GgmlTypeInfo> = new Map<number, GgmlTypeInfo>([
  [GgmlType.F32, info('F32', 1, 4, true)],
  [GgmlType.F16, info('F16', 1, 2, true)],
  [GgmlType.Q4_0, info('Q4_0', 32, 18, true)],
  [GgmlType.Q4_1, info('Q4_1', 32, 20, true)],
  [GgmlType.Q5_0, info('Q5_0', 32, 22, true)],
  [GgmlType.Q5_1, info('Q5_1', 32, 24, true)],
  [GgmlType.Q8_0, info('Q8_0', 32, 34, true)],
  [GgmlType.Q8_1, info('Q8_1', 32, 36)],
  [GgmlType.Q2_K, info('Q2_K', 256, 84, true)],
  [GgmlType.Q3_K, info('Q3_K', 256, 110, true)],
  [GgmlType.Q4_K, info('Q4_K', 256, 144, true)],
  [GgmlType.Q5_K, info('Q5_K', 256, 176, true)],
  [GgmlType.Q6_K, info('Q6_K', 256, 210, true)],
  [GgmlType.Q8_K, info('Q8_K', 256, 292)],
  [GgmlType.IQ2_XXS, info('IQ2_XXS', 256, 66, true)],
  [GgmlType.IQ2_XS, info('IQ2_XS', 256, 74, true)],
  [GgmlType.IQ3_XXS, info('IQ3_XXS', 256, 98, true)],
  [GgmlType.IQ1_S, info('IQ1_S', 256, 50, true)],
  [GgmlType.IQ4_NL, info('IQ4_NL', 32, 18, true)],
  [GgmlType.IQ3_S, info('IQ3_S', 256, 110, true)],
  [GgmlType.IQ2_S, info('IQ2_S', 256, 82, true)],
  [GgmlType.IQ4_XS, info('IQ4_XS', 256, 136, true)],
  [GgmlType.I8, info('I8', 1, 1)],
  [GgmlType.I16, info('I16', 1, 2)],
  [GgmlType.I32, info('I32', 1, 4)],
  [GgmlType.I64, info('I64', 1, 8)],
  [GgmlType.F64, info('F64', 1, 8)],
  [GgmlType.IQ1_M, info('IQ1_M', 256, 56, true)],
  [GgmlType.BF16, info('BF16', 1, 2, true)],
  [GgmlType.TQ1_0, info('TQ1_0', 256, 54)],
  [GgmlType.TQ2_0, info('TQ2_0', 256, 66)],
  [GgmlType.MXFP4, info('MXFP4', 32, 17, true)],
]);

/** Geometry of a GGML type, or undefined for an id this table does not know. */
export function ggmlTypeInfo(type: number): GgmlTypeInfo | undefined {
  return TABLE.get(type);
}

/** The type's name, or `type<N>` for an unknown id. */
export function ggmlTypeName(type: number): string {
  return TABLE.get(type)?.name ?? `type${type}`;
}

/** Bytes needed by `elements` elements of `type` (elements must be a multiple of the block size). */
export function ggmlRowBytes(type: number, elements: number): number {
  const t = TABLE.get(type);
  if (!t) throw new RangeError(`unknown GGML type ${type}`);
  if (elements % t.blockSize !== 0) {
    throw new RangeError(`${t.name} needs a multiple of ${t.blockSize} elements, got ${elements}`);
  }
  return (elements / t.blockSize) * t.typeSize;
}

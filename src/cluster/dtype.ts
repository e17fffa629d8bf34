/**
 * Payload element types of cluster frames and the byte sizes they imply. A typed payload's length
 * is fully determined by its dtype and shape, which lets the receiver reject a lying header before
 * it allocates anything.
 */

/** Payload element type codes as they appear on the wire (one byte). */
export const DType = {
  /** Raw bytes: the shape, if any, is the application's business and is not checked. */
  raw: 0,
  f32: 1,
  /** IEEE half floats, carried as their 16-bit patterns. */
  f16: 2,
  i32: 3,
  /** llama.cpp Q8_0 blocks: per 32 values, an f16 scale then 32 signed bytes (34 bytes). */
  q8_0: 4,
  /** UTF-8 JSON text; the shape is not checked. */
  json: 5,
} as const;

/** One of the wire dtype codes. */
export type DTypeCode = (typeof DType)[keyof typeof DType];

/** Values per Q8_0 block. */
export const Q8_0_BLOCK_VALUES = 32;
/** Bytes per Q8_0 block: an f16 scale and 32 int8 values. */
export const Q8_0_BLOCK_BYTES = 34;

const ELEMENT_BYTES: Partial<Record<DTypeCode, number>> = { [DType.f32]: 4, [DType.f16]: 2, [DType.i32]: 4 };

/** True when `code` is a dtype this protocol version knows. */
export function isKnownDType(code: number): code is DTypeCode {
  return Number.isInteger(code) && code >= DType.raw && code <= DType.json;
}

/** True when the dtype's payload length follows from its shape (f32, f16, i32, q8_0). */
export function isTypedDType(code: DTypeCode): boolean {
  return code !== DType.raw && code !== DType.json;
}

/** Bytes per element of a plain numeric dtype, or undefined for raw, json and block formats. */
export function elementBytes(code: DTypeCode): number | undefined {
  return ELEMENT_BYTES[code];
}

/** The dtype's name, for messages. */
export function dtypeName(code: number): string {
  const entry = Object.entries(DType).find(([, v]) => v === code);
  return entry ? entry[0] : `unknown(${code})`;
}

/**
 * Payload bytes that a typed dtype with this shape must carry (the shape lists dimensions
 * outermost first; no dimensions means a single value). Returns a string describing the problem
 * when the shape cannot hold this dtype (Q8_0 needs an innermost dimension divisible by 32).
 * The result may exceed 2^53 for absurd shapes; callers compare it against a limit first.
 */
export function typedPayloadBytes(code: DTypeCode, dims: readonly number[]): number | string {
  let values = 1;
  for (const d of dims) values *= d;
  if (code === DType.q8_0) {
    const inner = dims.length === 0 ? 1 : dims[dims.length - 1];
    if (inner % Q8_0_BLOCK_VALUES !== 0) return `q8_0 needs an innermost dimension divisible by ${Q8_0_BLOCK_VALUES}, got ${inner}`;
    return (values / Q8_0_BLOCK_VALUES) * Q8_0_BLOCK_BYTES;
  }
  const size = elementBytes(code);
  if (size === undefined) return `dtype ${dtypeName(code)} has no fixed element size`;
  return values * size;
}

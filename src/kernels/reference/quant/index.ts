/**
 * Reference (TypeScript) implementation of cairn's weight formats: block layouts, conversions,
 * quantizers, and the llama.cpp-compatible dot products the native kernels are tested against.
 */
export { refDequantize, refQuantize, formatCodec, CODEC_TYPES } from './codecs.js';
export type { FormatCodec } from './codecs.js';
export { refMatmul, refGetRows } from './matmul.js';
export { vecDotType, convertActivationRow } from './activations.js';
export type { ActivationRow } from './activations.js';
export { vecDot } from './vec-dot.js';
export { quantizeActivationQ8_0, quantizeActivationQ8_1, quantizeQ8_K } from './activation-quants.js';
export { f32ToFp16, fp16ToF32, f32ToBf16, bf16ToF32 } from './half.js';

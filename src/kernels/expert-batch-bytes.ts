/**
 * Bytes of an expert batch as the native library lays it out (cairn_expert_batch_bytes in
 * native/src/experts.c): a header, per-expert offsets and cursors, the pair order and places, and
 * one activation row per (token, slot) pair, as wide as the widest form the batch may hold (for
 * float weights, the AMX level's F16 parts: 8 bytes a column in steps of 16 and two lines, wider
 * than f32; else the largest of the Q8_0, Q8_1 and Q8_K rows). Memory estimates of a dry build (no
 * kernels) take a shard's batches from here.
 */
import { GgmlType } from '../gguf/ggml-types.js';

const pad64 = (n: number): number => Math.ceil(n / 64) * 64;

/** Whether weights of this type take f32/f16/bf16 activations (their batches hold f32 rows). */
export function takesFloatActivations(t: GgmlType): boolean {
  return t === GgmlType.F32 || t === GgmlType.F16 || t === GgmlType.BF16;
}

/**
 * Bytes a batch of `maxTokens` tokens x `nUsed` of `nExperts` experts, `cols` wide, holds when made
 * for weights of `wtype` (every float type gives the F32 batch's size, every quantized type the same).
 */
export function expertBatchBytes(wtype: GgmlType, nExperts: number, nUsed: number, cols: number, maxTokens: number): number {
  const rowCap = takesFloatActivations(wtype)
    ? Math.ceil(cols / 16) * 16 * 8 + 128
    : Math.max(
        pad64(cols + Math.floor(cols / 32) * 4), // Q8_0: quants, then a scale per 32
        pad64(cols + Math.floor(cols / 32) * 8), // Q8_1: scales and sums per 32
        pad64(cols + Math.floor(cols / 256) * 4 + Math.floor(cols / 16) * 2), // Q8_K: scales per 256, sums per 16
      );
  const pairs = nUsed * maxTokens;
  const perExpert = pad64((nExperts + 1) * 4);
  // Alignment slack, header, offsets and cursors, order and places, then the rows.
  return 64 + 64 + 2 * perExpert + 2 * pad64(pairs * 4) + pairs * rowCap;
}

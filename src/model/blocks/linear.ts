/** A linear projection: a weight matrix in its file type and an optional f32 bias. */
import type { Kernels } from '../../kernels/api.js';
import type { Matrix } from '../tensor-source.js';

/** y = W x (+ b) for each of n rows. */
export interface Linear {
  readonly w: Matrix;
  readonly bias?: Float32Array;
}

/** y (n x rows) = x (n x cols) W^T, plus the bias when there is one. */
export function applyLinear(kernels: Kernels, lin: Linear, x: Float32Array, n: number, y: Float32Array): void {
  const w = lin.w;
  kernels.matmul(w.data, w.type, w.rows, w.cols, x, n, y);
  if (lin.bias) addRowBias(y, lin.bias, n);
}

/**
 * Splits n rows of a fused projection's output (each row the parts' widths end to end: Q, K and V,
 * or gate and up) into each part's own n rows.
 */
export function splitRows(all: Float32Array, n: number, widths: readonly number[], parts: readonly Float32Array[]): void {
  const row = widths.reduce((a, w) => a + w, 0);
  for (let i = 0; i < n; i++) {
    let at = i * row;
    for (let j = 0; j < parts.length; j++) {
      const w = widths[j];
      parts[j].set(all.subarray(at, at + w), i * w);
      at += w;
    }
  }
}

/**
 * Adds `bias` to each of n rows of y. A plain loop: an f32 sum computed in double and rounded to
 * f32 is the f32 sum itself, so this equals the add kernel, without a view per row.
 */
export function addRowBias(y: Float32Array, bias: Float32Array, n: number): void {
  const d = bias.length;
  for (let r = 0, o = 0; r < n; r++, o += d) {
    for (let i = 0; i < d; i++) y[o + i] += bias[i];
  }
}

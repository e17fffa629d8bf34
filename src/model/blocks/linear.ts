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
 * Adds `bias` to each of n rows of y. A plain loop: an f32 sum computed in double and rounded to
 * f32 is the f32 sum itself, so this equals the add kernel, without a view per row.
 */
export function addRowBias(y: Float32Array, bias: Float32Array, n: number): void {
  const d = bias.length;
  for (let r = 0, o = 0; r < n; r++, o += d) {
    for (let i = 0; i < d; i++) y[o + i] += bias[i];
  }
}
